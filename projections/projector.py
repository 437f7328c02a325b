"""The projection step shared by every runner (embedded ingest, Faust worker, replay).

``fold_batch`` is the pure part: given the stored states of the incidents a batch
touches and the batch's new facts, it returns the new states and the exact
totals deltas. ``Projector`` wraps it with the store port: parse and reject,
drop duplicates, load, fold, and hand the runner a ``Commit`` that it writes in
one transaction together with the consumer positions.

Duty events (``duty.*``, e.g. a shift start) belong to no incident: they are
logged and deduplicated like every event (with incident id ""), touch no
incident and no totals, and reach the store as ``Commit.shifts`` rows, from
which the report reads each period's team and leader.

An ``event_id`` seen before (earlier in the batch, or in the store) marks a
duplicate when the copy is the same event, and a conflict when its content
differs (``schemas.identity``): the later copy is then rejected with a reason
that says ``conflict``, dead-lettered like an invalid message and counted in
``conflicting_events``; the first accepted copy stands.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from projections.duty import DutyCalendar
from projections.incident import (
    DUTY_PREFIX,
    Fact,
    Incident,
    apply,
    fact_of,
    fact_of_lean,
    fact_of_plain,
)
from projections.ports import (
    Commit,
    LoggedEvent,
    PositionKey,
    ProjectionStore,
    Record,
    Rejected,
)
from projections.sla import SlaLimits
from projections.totals import (
    CALLS,
    DEFAULT_LIMITS,
    Bucket,
    Totals,
    call_buckets,
    contributions,
    zeros,
)
from schemas.events import NO_INCIDENT_TYPES
from schemas.identity import difference
from schemas.lean import parse_event_lean
from schemas.parsing import InvalidEvent, parse_event
from schemas.plain import parse_plain


def fold_batch(
    stored: Mapping[str, Incident], facts: Sequence[Fact], calendar: DutyCalendar,
    limits: SlaLimits = DEFAULT_LIMITS,
) -> tuple[dict[str, Incident], dict[Bucket, Totals]]:
    """Apply ``facts`` (already free of duplicates) to the ``stored`` incidents.

    Returns the new state of every touched incident and the totals delta
    (new contributions minus old ones, plus one call per ``call.received``).
    Duty facts are ignored here (they belong to no incident).
    Pure: ``stored`` is not modified.
    """
    touched: dict[str, Incident] = {}
    added: dict[Bucket, list[Totals]] = defaultdict(list)
    retracted: dict[Bucket, list[Totals]] = defaultdict(list)
    calls: Counter[Bucket] = Counter()
    for fact in facts:
        if fact.type in NO_INCIDENT_TYPES:
            continue  # a roster entry: crews are projected elsewhere (projections.crews)
        incident = touched.get(fact.incident_id)
        if incident is None:
            if fact.type.startswith(DUTY_PREFIX):
                continue
            previous = stored.get(fact.incident_id)
            if previous is None:
                incident = Incident(fact.incident_id)
            else:
                for bucket, vector in contributions(previous, calendar, limits):
                    retracted[bucket].append(vector)
                incident = previous.copy()
            touched[fact.incident_id] = incident
        apply(incident, fact)
        if fact.type == "call.received":
            calls.update(call_buckets(fact, calendar))
    for incident in touched.values():
        for bucket, vector in contributions(incident, calendar, limits):
            added[bucket].append(vector)
    deltas: dict[Bucket, Totals] = {}
    # Column sums over many vectors at once: zip and sum run in C.
    for bucket in added.keys() | retracted.keys() | calls.keys():
        delta = [sum(column) for column in zip(*added.get(bucket, ()), strict=True)] or zeros()
        for column, value in enumerate(
                sum(c) for c in zip(*retracted.get(bucket, ()), strict=True)):
            delta[column] -= value
        delta[CALLS] += calls.get(bucket, 0)
        if any(delta):
            deltas[bucket] = delta
    return touched, deltas


def facts_of(raws: Sequence[bytes]) -> list[Fact | str]:
    """Each message's fact, or the one-line reason it is rejected. Pure, and its
    result pickles cheaply, so it can run in a worker process. The lean check
    (``schemas.plain``, then ``schemas.lean``) takes the plain events; pydantic decides
    the rest."""
    out: list[Fact | str] = []
    typed, lean = parse_plain, parse_event_lean
    for raw in raws:
        found = typed(raw)
        if found is not None:
            out.append(fact_of_plain(*found))
            continue
        event = lean(raw)
        if event is not None:
            out.append(fact_of_lean(event))
            continue
        try:
            out.append(fact_of(parse_event(raw)))
        except InvalidEvent as exc:
            out.append(exc.reason)
    return out


@dataclass(slots=True)
class PreparedBatch:
    """A batch folded and ready to commit; ``rejected`` must reach the dead-letter
    place before ``commit`` is written (so none is lost if the runner dies)."""

    commit: Commit
    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    """Invalid messages and conflicting copies (``commit.conflicts`` of them)."""
    previous: dict[str, Incident] = field(default_factory=dict)
    """Stored state of the touched incidents before this batch."""
    known: dict[str, bytes] = field(default_factory=dict)
    """event id -> accepted copy, for every valid event of the batch once committed."""
    states: dict[str, Incident] = field(default_factory=dict)
    """incident id -> its state once the batch is committed (``commit.incidents``)."""


def _now_micros() -> int:
    return time.time_ns() // 1000


class Projector:
    """Parses, deduplicates and folds batches against a store (see module doc)."""

    def __init__(self, store: ProjectionStore, consumer: str,
                 clock: Callable[[], int] | None = _now_micros) -> None:
        self.store = store
        self.consumer = consumer
        self.clock = clock
        """Ingestion time (µs): the recorded time of events that carry no ``recorded_at``.
        None: they count as recorded when they occurred (a file read as it stands)."""

    async def prepare(self, records: Sequence[Record],
                      expected: Mapping[PositionKey, int] | None = None,
                      parsed: Sequence[Fact | str] | None = None,
                      ahead: PreparedBatch | None = None) -> PreparedBatch:
        """Fold ``records``. ``expected`` are the positions this consumer believes
        are stored; the commit fails if another consumer moved them meanwhile.
        ``parsed`` is ``facts_of`` of the records' bytes, if already computed
        (e.g. in a worker process).

        ``ahead``: a batch whose commit is still in flight, which the store's reads
        do not show yet; its events and incident states are taken as committed. Only
        valid if nothing else can commit those incidents before this batch does
        (``PartitionProjector`` checks that the database still holds the
        in-flight batch's write block)."""
        if parsed is None:
            parsed = facts_of([record.raw for record in records])
        calendar = self.store.calendar
        rejected: list[Rejected] = []
        facts: list[Fact] = []
        logged: list[LoggedEvent] = []
        positions: dict[PositionKey, int] = {}
        valid: list[tuple[Record, Fact]] = []
        for record, fact in zip(records, parsed, strict=True):
            positions[(record.source, record.partition)] = record.next_position
            if isinstance(fact, str):
                rejected.append(Rejected(record, fact))
            else:
                valid.append((record, fact))
        # Every copy is measured against the accepted one: stored, or else the first
        # copy in this batch.
        accepted = await self._known([f.event_id for _, f in valid], ahead) if valid else {}
        duplicates = conflicts = 0
        ingested = self.clock() if self.clock is not None else None
        first: dict[str, int] = {}
        """event id -> index in ``logged`` of the copy accepted in this batch"""
        updates: dict[str, int] = {}
        for record, fact in valid:
            recorded = (fact.recorded if fact.recorded is not None
                        else ingested if ingested is not None else fact.at)
            earlier = accepted.get(fact.event_id)
            if earlier is None:
                accepted[fact.event_id] = record.raw
                first[fact.event_id] = len(logged)
                facts.append(fact)
                logged.append(LoggedEvent(fact.event_id, fact.incident_id, fact.type, fact.at,
                                          record.raw, recorded))
                continue
            differs = difference(earlier, record.raw)
            if differs is None:
                duplicates += 1
                # The event is known from its earliest recorded copy.
                index = first.get(fact.event_id)
                if index is None:
                    updates[fact.event_id] = min(recorded, updates.get(fact.event_id, recorded))
                elif recorded < (logged[index].recorded or recorded + 1):
                    logged[index] = logged[index]._replace(recorded=recorded)
            else:
                conflicts += 1
                rejected.append(Rejected(record, _conflict(fact.event_id, differs)))
        if conflicts:
            rejected.sort(key=lambda r: (r.record.source, r.record.partition,
                                         r.record.next_position))
        shifts = [f for f in facts if f.type.startswith(DUTY_PREFIX)]
        wanted = {f.incident_id for f in facts}
        wanted.discard("")  # duty facts: no incident
        stored = await self._incidents(wanted, ahead)
        incidents, deltas = fold_batch(stored, facts, calendar, self.store.sla_limits)
        commit = Commit(
            consumer=self.consumer,
            positions=positions,
            expected={k: v for k, v in (expected or {}).items() if k in positions},
            events=logged,
            incidents=list(incidents.values()),
            calls=[f for f in facts if f.type == "call.received"],
            deltas=deltas,
            shifts=shifts,
            rejected=len(rejected) - conflicts,
            duplicates=duplicates,
            conflicts=conflicts,
            recorded_updates=updates,
        )
        return PreparedBatch(commit, accepted=len(facts), rejected=rejected, previous=stored,
                             known=accepted, states=incidents)

    async def _known(self, event_ids: list[str],
                     ahead: PreparedBatch | None) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(event_ids))
        if ahead is None:
            return await self.store.known_events(wanted)
        pending = ahead.known
        known = {i: pending[i] for i in wanted if i in pending}
        rest = [i for i in wanted if i not in pending]
        if rest:
            known.update(await self.store.known_events(rest))
        return known

    async def _incidents(self, wanted: set[str],
                         ahead: PreparedBatch | None) -> dict[str, Incident]:
        if ahead is None:
            return await self.store.load_incidents(wanted)
        pending = ahead.states
        # fold_batch copies what it changes, so the in-flight states can be shared.
        found = {i: pending[i] for i in wanted if i in pending}
        rest = wanted - found.keys()
        if rest:
            found.update(await self.store.load_incidents(rest))
        return found


def _conflict(event_id: str, differs: str) -> str:
    return (f"conflict: event_id {event_id!r} was already accepted with different content "
            f"({differs}); the first copy stands")
