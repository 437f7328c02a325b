"""Whole fetches for the Faust worker: Faust's group, no per-message machinery.

Faust keeps the consumer group (membership, static names, rebalancing and its
callbacks), the consumer thread that talks to Kafka, the app's lifecycle and
its timers. What it loses is its per-message delivery loop (the fetcher's
``Consumer._drain_messages``): for every record it builds a ``Message``, routes
it through the conductor into a stream queue, wraps it in an ``Event``, tracks
it and acks it one by one, which costs more than folding the event does.

Here the fetcher's loop hands each fetch (a ``{partition: [records]}`` map from
the consumer thread, up to ``broker_max_poll_records`` records) as one list of
``Message`` tuples to ``Batches``; the worker's projection task takes them out
in bulk. Nothing here decides what is applied: ``PartitionProjector`` admits
only messages that continue a partition exactly where the store left it, so a
fetch that straddles a rebalance, or is taken after its partition was revoked,
is harmless (re-deliveries are skipped, gaps are sought back).

Contract:
- ``Batches.put`` waits while ``limit`` messages or more are pending
  (back-pressure on the fetcher, as Faust's stream buffer did); ``take(most)``
  waits until something is pending and returns at most ``most`` messages, in
  the order they were put; ``discard(partitions)`` drops what is pending of
  those partitions (revoked: their new owner reads them);
- ``fetch_loop`` keeps fetching until ``stopped()`` is true and delivers only
  the records of ``topic``;
- ``parsed_batches`` yields ``(batch, parse(values))`` in the order the batches
  were taken, and takes and parses the next batch while its consumer works on
  the current one (a commit waiting on PostgreSQL leaves the CPU to the parse).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from projections.runners.stream import Message

P = TypeVar("P")
PARSE_TURN = 500
"""Messages parsed between two turns of the event loop (a few milliseconds)."""


class Batches:
    """A bounded hand-over of fetched messages between two tasks of one event loop."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._pending: list[Message] = []
        self._filled = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def put(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        while len(self._pending) >= self.limit:
            self._drained.clear()
            await self._drained.wait()
        self._pending.extend(messages)
        self._filled.set()

    async def take(self, most: int) -> list[Message]:
        while not self._pending:
            self._filled.clear()
            await self._filled.wait()
        if len(self._pending) <= most:
            taken, self._pending = self._pending, []
        else:
            taken, self._pending = self._pending[:most], self._pending[most:]
        if len(self._pending) < self.limit:
            self._drained.set()
        return taken

    async def wait_pending(self) -> None:
        """Return once something is pending (at once if it already is)."""
        while not self._pending:
            self._filled.clear()
            await self._filled.wait()

    def discard(self, partitions: Collection[int]) -> int:
        """Drop the pending messages of ``partitions``; returns how many."""
        if not partitions or not self._pending:
            return 0
        kept = [m for m in self._pending if m.partition not in partitions]
        dropped = len(self._pending) - len(kept)
        self._pending = kept
        if len(kept) < self.limit:
            self._drained.set()
        return dropped


class Record(Protocol):
    """What the loop reads of a fetched record (aiokafka's ``ConsumerRecord``)."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


class TopicPartition(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


RecordMap = Mapping[Any, Sequence[Any]]
"""``{TopicPartition: [Record, ...]}``, each list in offset order."""


class FetchingConsumer(Protocol):
    """The part of Faust's ``Consumer`` the loop drives. ``_wait_next_records`` waits
    while the flow is stopped (a rebalance is under way), fetches the active
    partitions through the consumer thread and returns ``(records, active)``."""

    async def _wait_next_records(self, timeout: float  # noqa: ASYNC109 (Faust's signature)
                                 ) -> tuple[RecordMap | None, Any]: ...


def messages_of(records: RecordMap, topic: str) -> list[Message]:
    """The records of ``topic`` as messages, partition after partition. A record
    without a value (a tombstone, never produced by us) becomes an empty value,
    which the projection rejects to the dead letters like any invalid message."""
    out: list[Message] = []
    for tp, batch in records.items():
        if tp.topic != topic:
            continue
        partition = tp.partition
        out.extend(Message(partition, r.offset, r.value if r.value is not None else b"")
                   for r in batch)
    return out


async def fetch_loop(consumer: FetchingConsumer, topic: str, batches: Batches,
                     stopped: Callable[[], bool], *, fetch_wait: float = 1.0) -> None:
    """Fetch until ``stopped()``; every fetch of ``topic`` goes to ``batches`` whole.
    A fetch waits at most ``fetch_wait`` seconds for records."""
    while not stopped():
        records, _active = await consumer._wait_next_records(fetch_wait)
        if not records or stopped():
            # An empty fetch may come back at once (flow stopped mid-rebalance):
            # never spin without giving the loop a turn.
            await asyncio.sleep(0)
            continue
        await batches.put(messages_of(records, topic))


async def parse_in_turns(messages: Sequence[Message],
                         parse: Callable[[Sequence[bytes]], list[P]]) -> list[P]:
    """``parse`` of the messages' values, a slice at a time, yielding to the event
    loop between slices so that the commit in flight is not held up."""
    out: list[P] = []
    for start in range(0, len(messages), PARSE_TURN):
        out += parse([m.value for m in messages[start:start + PARSE_TURN]])
        await asyncio.sleep(0)
    return out


async def parsed_batches(batches: Batches, most: int,
                         parse: Callable[[Sequence[bytes]], list[P]]
                         ) -> AsyncIterator[tuple[list[Message], list[P]]]:
    """Batches of at most ``most`` messages with their parse, one batch prepared ahead.

    The batch ahead grows while its consumer is busy: whatever arrives meanwhile is
    taken and parsed too, up to ``most``, so a consumer slower than the fetches gets
    full batches (fewer, larger transactions); a consumer that waits gets what is
    there at once (latency)."""
    wanted = asyncio.Event()
    """Set while the consumer waits for the next batch."""

    async def prepare() -> tuple[list[Message], list[P]]:
        batch = await batches.take(most)
        parsed = await parse_in_turns(batch, parse)
        while len(batch) < most and not wanted.is_set():
            if not len(batches):
                pending = asyncio.ensure_future(batches.wait_pending())
                asked = asyncio.ensure_future(wanted.wait())
                try:
                    await asyncio.wait((pending, asked), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    pending.cancel()
                    asked.cancel()
                continue
            more = await batches.take(most - len(batch))
            parsed += await parse_in_turns(more, parse)
            batch += more
        return batch, parsed

    ahead = asyncio.ensure_future(prepare())
    try:
        while True:
            wanted.set()
            try:
                batch, parsed = await ahead
            finally:
                wanted.clear()
            ahead = asyncio.ensure_future(prepare())
            yield batch, parsed
    finally:
        ahead.cancel()
