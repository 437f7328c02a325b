"""Whole-history folds for analysts: an event set from files or a store, one fold.

Contract:
- ``load_store`` reads a store's event log: the original bytes, and each event's
  *known time*, the recorded time the store kept (the earliest ``recorded_at``
  among its copies, else the ingestion time, or the occurrence time for files read
  as they stand); its counters are the store's;
- ``fold_history`` runs the same fold as every other runner
  (``projector.fold_batch``) over the events a ``Window`` keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from projections.duty import DutyCalendar
from projections.history import Window, select
from projections.incident import Fact, Incident
from projections.ports import ProjectionStore
from projections.projector import facts_of, fold_batch
from projections.sla import SlaLimits
from projections.totals import Bucket, Totals


@dataclass(slots=True)
class EventSet:
    facts: list[Fact] = field(default_factory=list)
    """First copy of every valid event, in input order."""
    known: dict[str, int] = field(default_factory=dict)
    """Event id -> known time (µs)."""
    rejected: int = 0
    duplicates: int = 0
    conflicts: int = 0
    lines: int = 0

    def counters(self) -> dict[str, int]:
        return {"rejected_events": self.rejected, "duplicate_events": self.duplicates,
                "conflicting_events": self.conflicts}


async def load_store(store: ProjectionStore) -> EventSet:
    """The event set kept in ``store``'s event log (see module contract)."""
    events = EventSet()
    counters = await store.counters()
    events.rejected = counters.get("rejected_events", 0)
    events.duplicates = counters.get("duplicate_events", 0)
    events.conflicts = counters.get("conflicting_events", 0)
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


def fold_history(events: EventSet, calendar: DutyCalendar, window: Window,
                 limits: SlaLimits | None = None
                 ) -> tuple[dict[str, Incident], dict[Bucket, Totals], list[Fact]]:
    """Incidents, bucket totals and shift starts of the events ``window`` keeps (the
    one fold)."""
    kept = select(events.facts, events.known, window)
    incidents, totals = (fold_batch({}, kept, calendar) if limits is None
                         else fold_batch({}, kept, calendar, limits))
    return incidents, totals, [f for f in kept if f.type == "duty.shift_started"]
