"""Whole-history folds for analysts: an event set from files or a store, one fold.

Contract:
- ``load_files`` validates every line (a rejected line reaches ``on_rejected`` with
  its line number and reason), keeps the first copy of each event id, counts the
  others as duplicates, and knows for each event its *known time*: the earliest
  ``recorded_at`` among its copies, or ``occurred_at`` when no copy has one;
- ``load_store`` reads a store's event log (original bytes, and the recorded time
  the store kept: the earliest ``recorded_at`` of the copies, else the ingestion
  time); its counters are the store's;
- ``fold_history`` runs the same fold as every other runner
  (``projector.fold_batch``) over the events a ``Window`` keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from projections.duty import DutyCalendar
from projections.history import Window, select
from projections.incident import Fact, Incident
from projections.ports import ProjectionStore, Rejected
from projections.projector import facts_of, fold_batch
from projections.runners.embedded import IngestSummary, Progress, _parsed, default_parse_workers
from projections.runners.files import file_source, read_records
from projections.totals import Bucket, Totals


@dataclass(slots=True)
class EventSet:
    facts: list[Fact] = field(default_factory=list)
    """First copy of every valid event, in input order."""
    known: dict[str, int] = field(default_factory=dict)
    """Event id -> known time (µs)."""
    rejected: int = 0
    duplicates: int = 0
    lines: int = 0
    stopped_at: Rejected | None = None
    """With ``strict``: the first rejected line (nothing after it was read)."""

    def counters(self) -> dict[str, int]:
        return {"rejected_events": self.rejected, "duplicate_events": self.duplicates}


def add_copy(events: EventSet, seen: set[str], fact: Fact) -> None:
    """Take one valid copy of an event into ``events`` (see module contract)."""
    known = fact.at if fact.recorded is None else fact.recorded
    if fact.event_id in seen:
        events.duplicates += 1
        if known < events.known[fact.event_id]:
            events.known[fact.event_id] = known
        return
    seen.add(fact.event_id)
    events.facts.append(fact)
    events.known[fact.event_id] = known


def load_files(paths: Sequence[Path], *, strict: bool = False,
               on_rejected: Callable[[Rejected], None] | None = None,
               progress: Progress | None = None, batch_size: int = 10_000,
               parse_workers: int | None = None) -> EventSet:
    """The event set of ``paths`` read in order (see module contract)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    events = EventSet()
    seen: set[str] = set()
    summary = IngestSummary()
    if parse_workers is None:
        parse_workers = default_parse_workers(sum(p.stat().st_size for p in paths))
    pool = (ProcessPoolExecutor(parse_workers, mp_context=get_context("forkserver"))
            if parse_workers else None)
    try:
        for path in paths:
            size = path.stat().st_size
            batches = read_records(path, file_source(path), 0, batch_size)
            for records, parsed in _parsed(batches, pool, ahead=2 * max(parse_workers, 1)):
                for record, fact in zip(records, parsed, strict=True):
                    events.lines += 1
                    if isinstance(fact, str):
                        rejected = Rejected(record, fact)
                        if strict:
                            events.stopped_at = rejected
                            return events
                        events.rejected += 1
                        if on_rejected is not None:
                            on_rejected(rejected)
                        continue
                    add_copy(events, seen, fact)
                if progress is not None:
                    summary.lines = events.lines
                    summary.rejected = events.rejected
                    progress(path.name, records[-1].next_position, size, summary)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return events


async def load_store(store: ProjectionStore) -> EventSet:
    """The event set kept in ``store``'s event log (see module contract)."""
    events = EventSet()
    counters = await store.counters()
    events.rejected = counters.get("rejected_events", 0)
    events.duplicates = counters.get("duplicate_events", 0)
    chunk: list[tuple[bytes, int | None]] = []

    def flush() -> None:
        for (_, recorded), fact in zip(chunk, facts_of([raw for raw, _ in chunk]),
                                       strict=True):
            if isinstance(fact, str):  # the store accepted it once: the contract tightened
                continue
            events.facts.append(fact)
            # Rows older than the recorded_us column fall back to the event's own time.
            events.known[fact.event_id] = (recorded if recorded is not None
                                           else fact.recorded if fact.recorded is not None
                                           else fact.at)
        chunk.clear()

    async for logged in store.history_events():
        events.lines += 1
        chunk.append((logged.raw, logged.recorded))
        if len(chunk) >= 10_000:
            flush()
    flush()
    return events


def fold_history(events: EventSet, calendar: DutyCalendar,
                 window: Window) -> tuple[dict[str, Incident], dict[Bucket, Totals]]:
    """Incidents and bucket totals of the events ``window`` keeps (the one fold)."""
    return fold_batch({}, select(events.facts, events.known, window), calendar)
