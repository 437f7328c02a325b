"""The outbox relay: events written by commands, published to Kafka after the commit.

Contract: every outbox row is published to the events topic exactly once, with
its key (the incident id, or ``crew:<id>``) and exactly the bytes
``dispatch produce`` would send, plus the headers ``event_id`` and
``outbox_seq``; it is marked published only after Kafka acknowledged it, and
the mark stores, in the same transaction, the topic offsets the relay had
reached.

- A crash between the commit and the publish loses nothing: the row stays
  unpublished and is sent after the restart.
- A crash (or a failed mark) between the acknowledgement and the mark repeats
  nothing: before it publishes anything, a relay that starts, or recovers from
  an error, reads the topic back from the stored offsets and marks published
  every unpublished row whose ``event_id`` it finds there (``recover``).
- One relay per store: ``claim_event_relay`` decides; a ``dispatch serve`` that
  is not the relay keeps asking, and takes over when the relaying one dies.

The command side already folded every event it wrote, so a worker folding the
topic into the same store sees them all as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from projections.ports import EVENT_RELAY, OutboxEntry, PositionKey, ProjectionStore

BATCH = 500
RECOVERY_SCAN = 1_000_000
"""At most this many unpublished rows are matched against the topic in one recovery."""


class EventLog(Protocol):
    """Where the relay publishes (the Kafka events topic); blocking calls."""

    def publish(self, rows: Sequence[tuple[int, OutboxEntry]]) -> dict[PositionKey, int]:
        """Publish every row (header ``outbox_seq`` = its sequence); per partition,
        the offset after the last one written. Raises if any was not acknowledged."""

    def ends(self) -> dict[PositionKey, int]:
        """The end offset of every partition."""

    def published_since(self, positions: Mapping[PositionKey, int]
                        ) -> tuple[set[str], dict[PositionKey, int]]:
        """The event ids published at or after ``positions``, and the offsets read up to."""


class OutboxRelay:
    def __init__(self, store_factory: Callable[[], ProjectionStore], log: EventLog,
                 interval: float = 0.2) -> None:
        self._store_factory = store_factory
        self.log = log
        self.interval = interval
        self.published = 0
        self.recovered = 0
        self.claimed = False
        self._ready = False
        """True once this connection holds the claim and has recovered."""

    async def run(self) -> None:
        """Relay until cancelled; errors are reported, and the relay starts over
        (new connection, claim, recovery)."""
        store = self._store_factory()
        try:
            while True:
                try:
                    await store.open()  # idempotent
                    sent = await self.step(store)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Kafka or the store is away: retry later
                    print(f"dispatch serve: outbox relay: {type(exc).__name__}: {exc}",
                          file=sys.stderr, flush=True)
                    sent = 0
                    self._ready = self.claimed = False
                    with contextlib.suppress(Exception):
                        await store.close()
                    store = self._store_factory()  # a fresh connection next time
                    await asyncio.sleep(2.0)
                if not sent:
                    await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    async def step(self, store: ProjectionStore) -> int:
        """Claim and recover if not done on this connection, then publish one batch."""
        if not self._ready:
            if not await store.claim_event_relay():
                return 0
            self.claimed = True
            await self.recover(store)
            self._ready = True
        return await self.drain(store)

    async def recover(self, store: ProjectionStore) -> int:
        """Mark published what an earlier relay published but did not mark (module
        contract); returns how many rows."""
        positions = await store.positions(EVENT_RELAY)
        if not positions:
            # The first relay of this store: nothing of it can be on the topic yet, so
            # later recoveries need read no further back than today's end.
            await store.mark_published([], await asyncio.to_thread(self.log.ends))
            return 0
        rows = await store.unpublished(RECOVERY_SCAN)
        if not rows:
            return 0
        found, reached = await asyncio.to_thread(self.log.published_since, positions)
        done = [seq for seq, entry in rows if entry.event_id in found]
        await store.mark_published(done, reached)
        self.recovered += len(done)
        return len(done)

    async def drain(self, store: ProjectionStore) -> int:
        """Publish one batch of unpublished rows, then mark them; returns how many."""
        rows = await store.unpublished(BATCH)
        if not rows:
            return 0
        reached = await asyncio.to_thread(self.log.publish, rows)
        await store.mark_published([seq for seq, _ in rows], reached)
        self.published += len(rows)
        return len(rows)
