"""Rebuild read models from the event log (a Kafka topic), in bulk, into a fresh store.

The same projection as the worker (``Projector``: validation, dead letters,
duplicates and conflicts, the fold), fed large chunks read straight from the
log, validated ahead in worker processes. Contract:
- the store must hold no events (a fresh store, built beside the live one);
  with ``resume`` a store holding this consumer's positions for the topic is
  continued from them instead (an interrupted replay);
- each chunk is one transaction holding its read-model rows and the next
  offset of every partition it covers, stored under ``consumer`` exactly as
  ``PartitionProjector`` stores them, so a worker of that consumer group started
  on the store continues exactly where the replay stopped; the last transaction
  stores the stop offset of every partition, also those where nothing was read;
- ``from_us``/``to_us`` select messages by their log timestamp (the first offset
  whose timestamp is at or after ``from_us``, up to the first one after
  ``to_us``); without ``to_us`` the replay stops at the end of each partition as
  it was when the replay started;
- an event without ``recorded_at`` counts as recorded at its message's log
  timestamp (when the worker that read it live would have seen it), not at the
  time of the replay;
- rejected messages (invalid, or conflicting copies) reach ``on_rejected`` and,
  when given, the dead-letter port, before the commit that skips them.

Into a fresh store the replay reads nothing back (what earlier chunks committed
is remembered), so the next chunk is folded while the previous one commits;
only an event id seen before waits for that commit (its bytes are read back).

This is the exact engine. A replay into a fresh store runs on the columnar engine
by default (``projections.runners.replay_columnar``: the same rows, one
transaction), and falls back to this one when that engine cannot map the messages.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, cast

from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.ports import Commit, ProjectionStore, Record, Rejected
from projections.projector import Projector, _now_micros, facts_of
from projections.runners.embedded import _abandon, _start_pool
from projections.runners.stream import DeadLetters
from projections.sla import SlaLimits

PARSE_CHUNK = 2_000
"""Messages per task sent to a parse worker."""


class LogMessage(NamedTuple):
    partition: int
    offset: int
    value: bytes
    timestamp_us: int | None
    """The message's log timestamp (µs), None when the log keeps none."""


class PartitionedLog(Protocol):
    """What the replay reads: one topic of a partitioned log (Kafka)."""

    topic: str

    def bounds(self, from_us: int | None,
               to_us: int | None) -> dict[int, tuple[int, int]]:
        """Per partition, the first offset to read and the offset to stop before."""

    def read(self, starts: dict[int, int], stops: dict[int, int],
             max_messages: int) -> Iterator[list[LogMessage]]:
        """The messages from ``starts`` up to (not including) ``stops``, in offset order
        within each partition, in lists of at most ``max_messages``."""


class StoreNotEmpty(Exception):
    """The target store already holds events (refused unless resuming)."""


@dataclass(slots=True)
class ReplaySummary:
    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    total: int = 0
    """Messages between the start and stop offsets (what the replay reads)."""
    seconds: float = 0.0
    start: dict[int, int] = field(default_factory=dict)
    stop: dict[int, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("read and validate", "fold", "commit"), 0.0))
    """Seconds spent waiting for each step in this process (validation runs ahead)."""
    step: str = ""
    """What the replay is doing, for progress output (the columnar engine's steps after
    its last chunk: folding, committing, done); "" while chunks are replayed."""


Progress = Callable[[ReplaySummary], None]


def planned(log: PartitionedLog, from_us: int | None = None, to_us: int | None = None,
            reached: dict[int, int] | None = None) -> ReplaySummary:
    """A summary holding what a replay of ``log`` between ``from_us`` and ``to_us``
    reads (``PartitionedLog.bounds``): the start and stop offset of every partition
    (the start moved on to ``reached``, where given: a resumed replay) and the
    total."""
    summary = ReplaySummary()
    for partition, (first, stop) in log.bounds(from_us, to_us).items():
        start = (reached or {}).get(partition, first)
        summary.start[partition] = start
        summary.stop[partition] = max(start, stop)
    summary.total = sum(summary.stop[p] - summary.start[p] for p in summary.start)
    return summary


Parsed = list[Fact | str]


def stamped(parsed: Parsed, messages: Sequence[LogMessage]) -> Parsed:
    """The facts, an event without ``recorded_at`` recorded at its log timestamp."""
    out: Parsed = []
    for item, message in zip(parsed, messages, strict=True):
        if (not isinstance(item, str) and item.recorded is None
                and message.timestamp_us is not None):
            item = item._replace(recorded=message.timestamp_us)
        out.append(item)
    return out


async def replay(store: ProjectionStore, log: PartitionedLog, consumer: str, *,
                 from_us: int | None = None, to_us: int | None = None,
                 resume: bool = False, chunk: int = 50_000, parse_workers: int = 0,
                 columnar: bool = True, ingestion_clock: Callable[[], int] = _now_micros,
                 on_rejected: Callable[[Rejected], None] | None = None,
                 dead_letters: DeadLetters | None = None,
                 progress: Progress | None = None) -> ReplaySummary:
    """Replay ``log`` into ``store`` (see module contract). With ``columnar``, a replay
    into a fresh store runs on the columnar engine instead
    (``projections.runners.replay_columnar``: one transaction; the exact path when the
    engine cannot map the messages), ``chunk`` messages validated at a time, and
    ``parse_workers`` does not apply.
    ``ingestion_clock`` (µs) stamps the events that carry no ``recorded_at`` and whose message has
    no log timestamp."""
    started = time.perf_counter()
    stored = await store.positions(consumer)
    ours = {p: v for (source, p), v in stored.items() if source == log.topic}
    if await store.event_count() and not (resume and ours):
        raise StoreNotEmpty(
            "the store already holds events: replay builds a fresh store beside the live "
            "one (give an empty store)" + (", or --resume to continue a replay into it"
                                            if not resume else
                                            f"; it has no positions of {consumer!r} on "
                                            f"{log.topic!r} to resume from"))
    summary = planned(log, from_us, to_us, ours if resume else {})
    if columnar and not ours:
        from projections.columnar import NotColumnar
        from projections.runners.replay_columnar import replay_columnar
        try:
            await replay_columnar(store, log, consumer, summary, on_rejected=on_rejected,
                                  dead_letters=dead_letters, progress=progress,
                                  clock=ingestion_clock, chunk=chunk)
            summary.seconds = time.perf_counter() - started
            return summary
        except NotColumnar as exc:  # rolled back: read the log again, message by message
            if await store.event_count():  # a store without transactions kept a part
                raise StoreNotEmpty(f"the columnar replay stopped ({exc}) and the store "
                                    "kept part of it: replay into an empty store again "
                                    "with the exact engine") from exc
            summary.messages = summary.accepted = 0
            summary.phases, summary.step = ReplaySummary().phases, ""
    expected = {(log.topic, p): ours.get(p, 0) for p in summary.start}
    """What the store holds for each partition (what the next commit must find)."""
    remembered = _Remembered(store, complete=not ours)
    projector = Projector(cast(ProjectionStore, remembered), consumer, clock=ingestion_clock)
    # The change log feeds live clients of a running store; nobody follows one being
    # rebuilt, and writing a change per incident per chunk would slow the replay down.
    keep_changes, store.change_log = store.change_log, False
    pool = _start_pool(parse_workers) if parse_workers else None
    try:
        chunks = _parsed(log.read(summary.start, summary.stop, chunk), pool,
                         ahead=max(parse_workers, 1))
        phases = summary.phases
        while True:
            clock = time.perf_counter()
            item = next(chunks, None)
            if item is None:
                break
            messages, parsed = item
            records = [Record(log.topic, m.partition, m.offset + 1, m.value) for m in messages]
            now = time.perf_counter()
            phases["read and validate"] += now - clock
            clock = now
            if remembered.complete:
                # Folded while the previous chunk commits (it reads only memory, or
                # waits for that commit first: ``_Remembered.known_events``).
                prepared = await projector.prepare(records, expected, parsed=parsed)
                phases["fold"] += time.perf_counter() - clock
                await _reject(prepared.rejected, on_rejected, dead_letters)
                clock = time.perf_counter()
                if remembered.inflight is not None:
                    await remembered.inflight
                remembered.inflight = asyncio.ensure_future(_commit(store, prepared.commit))
                phases["commit"] += time.perf_counter() - clock
            else:
                async with store.writing():
                    prepared = await projector.prepare(records, expected, parsed=parsed)
                    now = time.perf_counter()
                    phases["fold"] += now - clock
                    clock = now
                    await _reject(prepared.rejected, on_rejected, dead_letters)
                    await store.commit(prepared.commit)
                phases["commit"] += time.perf_counter() - clock
            remembered.keep(prepared.commit)
            # What was committed stays (remembered) to the end: keep the cyclic collector
            # from walking that ever larger heap again and again.
            gc.freeze()
            expected.update(prepared.commit.positions)
            summary.messages += len(records)
            summary.accepted += prepared.accepted
            summary.duplicates += prepared.commit.duplicates
            summary.rejected += prepared.commit.rejected
            summary.conflicts += prepared.commit.conflicts
            if progress is not None:
                progress(summary)
        if remembered.inflight is not None:
            clock = time.perf_counter()
            await remembered.inflight
            phases["commit"] += time.perf_counter() - clock
    except BaseException:
        committing = remembered.inflight
        if committing is not None and not committing.done():
            # Not left running on a connection the caller is about to close.
            committing.cancel()
            with suppress(BaseException):
                await committing
        if pool is not None:  # interrupted or failed: stop the parse workers at once
            _abandon(pool)
            pool = None
        raise
    finally:
        gc.unfreeze()  # back to the collector: the caller may live on
        store.change_log = keep_changes
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    # Partitions where nothing was read still start the worker at the stop offset.
    final = {(log.topic, p): summary.stop[p] for p in summary.stop}
    if any(expected[key] != position for key, position in final.items()):
        async with store.writing():
            await store.commit(Commit(consumer, final, expected=dict(expected)))
    summary.seconds = time.perf_counter() - started
    return summary


async def _commit(store: ProjectionStore, commit: Commit) -> None:
    async with store.writing():
        await store.commit(commit)


async def _reject(rejected: list[Rejected], on_rejected: Callable[[Rejected], None] | None,
                  dead_letters: DeadLetters | None) -> None:
    if rejected:
        if on_rejected is not None:
            for one in rejected:
                on_rejected(one)
        if dead_letters is not None:
            await dead_letters.send(rejected)


class _Remembered:
    """The projector's view of the store being rebuilt: what earlier chunks committed,
    kept in memory, so a chunk needs no read from the store. Valid because nobody
    else writes a store that is being rebuilt; ``complete`` is False when the store
    held events before (a resumed replay), and then every read goes to the store.
    Only an event id seen before is looked up (for its original bytes)."""

    def __init__(self, store: ProjectionStore, complete: bool) -> None:
        self.store = store
        self.complete = complete
        self.calendar: DutyCalendar = store.calendar
        self.sla_limits: SlaLimits = store.sla_limits
        self.event_ids: set[str] = set()
        self.incidents: dict[str, Incident] = {}
        self.inflight: asyncio.Future[None] | None = None
        """The commit still running, if any: a read from the store waits for it."""

    async def known_events(self, event_ids: Sequence[str]) -> dict[str, bytes]:
        if self.complete:
            event_ids = [e for e in event_ids if e in self.event_ids]
            if not event_ids:
                return {}
        if self.inflight is not None:
            await asyncio.shield(self.inflight)  # one connection; and its rows are wanted
        return await self.store.known_events(event_ids)

    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        if not self.complete:
            return await self.store.load_incidents(incident_ids)
        # The fold never changes the states it is given (it works on copies).
        return {i: self.incidents[i] for i in incident_ids if i in self.incidents}

    def keep(self, commit: Commit) -> None:
        if self.complete:
            self.event_ids.update(e.event_id for e in commit.events)
            self.incidents.update((i.incident_id, i) for i in commit.incidents)


def _parsed(chunks: Iterator[list[LogMessage]], pool: ProcessPoolExecutor | None,
            ahead: int) -> Iterator[tuple[list[LogMessage], Parsed]]:
    """Chunks with their parse results, in order, keeping ``ahead`` in flight."""
    if pool is None:
        for messages in chunks:
            yield messages, stamped(facts_of([m.value for m in messages]), messages)
        return
    pending: deque[tuple[list[LogMessage], list[Future[Parsed]]]] = deque()
    for messages in chunks:
        raws = [m.value for m in messages]
        pending.append((messages, [pool.submit(facts_of, raws[i:i + PARSE_CHUNK])
                                   for i in range(0, len(raws), PARSE_CHUNK)]))
        if len(pending) > ahead:
            yield _joined(*pending.popleft())
    while pending:
        yield _joined(*pending.popleft())


def _joined(messages: list[LogMessage],
            futures: list[Future[Parsed]]) -> tuple[list[LogMessage], Parsed]:
    parsed: Parsed = []
    for future in futures:
        parsed += future.result()
    return messages, stamped(parsed, messages)
