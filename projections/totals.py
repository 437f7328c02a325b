"""Duty-period totals: integer vectors that add up, so updates are exact deltas.

Contract:
- every statistic of docs/kpis.md is derived from a ``Totals`` vector of
  integers (counts and sums of microseconds); vectors add and subtract exactly,
  so the read model can be maintained by retracting an incident's old
  contribution and adding its new one, in any order, on any backend, and give
  bit-identical means;
- a *bucket* is ``(dimension, member, duty_date)``: dimension ``""`` (member
  ``""``) is the whole service; ``grid``, ``area`` and ``crew`` are breakdowns;
  ``agent`` is the first-contact owner (member ``""``: no agent on the call);
  duty date ``""`` holds outage incidents that have no call yet (unattributed);
- the accountability counts (callbacks, first-visit fix, SLA states as of the
  period end) are part of the same vector, so they are maintained the same way.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from datetime import date

from projections.duty import DutyCalendar
from projections.incident import (
    ARRIVE,
    CALL,
    CALLED_BACK,
    DISSATISFIED,
    REACHED,
    RESTORE,
    SATISFIED,
    STAGES,
    Fact,
    Incident,
)
from projections.sla import RULES, STATES, SlaLimits, rule_state

FIELDS: tuple[str, ...] = (
    "calls",
    "incidents",
    "restored",
    "open_at_handover",
    "closed",
    "anomalies",
    "restoration_count",
    "restoration_sum_us",
    "restoration_anomalies",
    "arrival_count",
    "arrival_sum_us",
    "after_arrival_count",
    "after_arrival_sum_us",
    *(f"{stage}_{part}" for stage in STAGES for part in ("count", "sum_us")),
    "callback_called",
    "callback_reached",
    "callback_satisfied",
    "callback_dissatisfied",
    "first_visit_count",
    "first_visit_fixed",
    *(f"sla_{rule}_{state}" for rule in RULES for state in STATES),
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}
WIDTH = len(FIELDS)

Bucket = tuple[str, str, str]
Totals = list[int]
DIMENSIONS: tuple[str, ...] = ("grid", "area", "crew")
"""The breakdowns of the report; ``agent`` buckets feed the accountability section."""
AGENT = "agent"
NO_AGENT = ""
NO_MEMBER = "(none)"
UNATTRIBUTED = ""

CALLS = INDEX["calls"]
INCIDENTS = INDEX["incidents"]
RESTORED = INDEX["restored"]
OPEN = INDEX["open_at_handover"]
CLOSED = INDEX["closed"]
ANOMALIES = INDEX["anomalies"]
RESTORATION_ANOMALIES = INDEX["restoration_anomalies"]


def _count_index(name: str) -> int:
    """Index of duration ``name``'s count; its sum of microseconds is the next one."""
    count_at = INDEX[f"{name}_count"]
    if FIELDS[count_at + 1] != f"{name}_sum_us":
        raise RuntimeError(f"totals field {name}_sum_us must follow {name}_count")
    return count_at


RESTORATION = _count_index("restoration")
ARRIVAL = _count_index("arrival")
AFTER_ARRIVAL = _count_index("after_arrival")
STAGE_COUNTS: tuple[int, ...] = tuple(_count_index(stage) for stage in STAGES)
"""Count index of each stage, in stage order."""
CALLBACK_CALLED = INDEX["callback_called"]
CALLBACK_REACHED = INDEX["callback_reached"]
CALLBACK_SATISFIED = INDEX["callback_satisfied"]
CALLBACK_DISSATISFIED = INDEX["callback_dissatisfied"]
FIRST_VISIT_COUNT = INDEX["first_visit_count"]
FIRST_VISIT_FIXED = INDEX["first_visit_fixed"]
SLA_INDEX: dict[tuple[str, str], int] = {
    (rule, state): INDEX[f"sla_{rule}_{state}"] for rule in RULES for state in STATES}
DEFAULT_LIMITS = SlaLimits()


def zeros() -> Totals:
    return [0] * WIDTH


def _add_duration(vector: Totals, start: int | None, end: int | None, count_at: int) -> bool:
    """Add ``end - start`` to the count at ``count_at`` and the sum after it if both
    exist and it is not negative; returns True when it was negative (an anomaly)."""
    if start is None or end is None:
        return False
    span = end - start
    if span < 0:
        return True
    vector[count_at] += 1
    vector[count_at + 1] += span
    return False


def incident_totals(incident: Incident, period_end: int | None,
                    limits: SlaLimits = DEFAULT_LIMITS) -> Totals:
    """The contribution of one outage incident to its period's totals; the SLA
    states are those as of ``period_end`` under ``limits``."""
    vector = zeros()
    times = incident.times
    t0, t3, t6 = times[CALL], times[ARRIVE], times[RESTORE]
    vector[INCIDENTS] = 1
    if t6 is not None:
        vector[RESTORED] = 1
    if period_end is not None and (t6 is None or t6 >= period_end):
        vector[OPEN] = 1
    if incident.closed_at is not None:
        vector[CLOSED] = 1
    anomalies = 0
    # Stage k runs from checkpoint k-1 to checkpoint k.
    for k, count_at in enumerate(STAGE_COUNTS, start=1):
        if _add_duration(vector, times[k - 1], times[k], count_at):
            anomalies += 1
    vector[ANOMALIES] = anomalies
    if _add_duration(vector, t0, t6, RESTORATION):
        vector[RESTORATION_ANOMALIES] = 1
    _add_duration(vector, t0, t3, ARRIVAL)
    _add_duration(vector, t3, t6, AFTER_ARRIVAL)
    if t6 is not None:
        _add_accountability(vector, incident, t3)
    if period_end is not None:
        for rule in RULES:
            state = rule_state(incident, rule, period_end, limits)
            if state is not None:
                vector[SLA_INDEX[rule, state]] = 1
    return vector


def _add_accountability(vector: Totals, incident: Incident, t3: int | None) -> None:
    """Callbacks and first-visit fix: counted over restored incidents only."""
    flags = incident.callbacks
    if flags & CALLED_BACK:
        vector[CALLBACK_CALLED] = 1
        if flags & REACHED:
            vector[CALLBACK_REACHED] = 1
        if flags & DISSATISFIED:
            vector[CALLBACK_DISSATISFIED] = 1
        elif flags & SATISFIED:
            vector[CALLBACK_SATISFIED] = 1
    if t3 is not None:
        vector[FIRST_VISIT_COUNT] = 1
        if len(incident.arrived_crews) == 1:
            vector[FIRST_VISIT_FIXED] = 1


def members(incident: Incident) -> tuple[tuple[str, str], ...]:
    """The ``(dimension, member)`` pairs an incident counts in, the whole first."""
    return (
        ("", ""),
        ("grid", incident.grid or NO_MEMBER),
        ("area", incident.area or NO_MEMBER),
        ("crew", incident.crew or NO_MEMBER),
        (AGENT, incident.owner or NO_AGENT),
    )


def contributions(incident: Incident, calendar: DutyCalendar,
                  limits: SlaLimits = DEFAULT_LIMITS) -> Iterator[tuple[Bucket, Totals]]:
    """Every bucket an incident adds to, with the vector it adds (nothing if it is
    not an outage incident)."""
    if not incident.is_outage:
        return
    t0 = incident.times[CALL]
    if t0 is None:
        yield ("", "", UNATTRIBUTED), incident_totals(incident, None)
        return
    duty = calendar.duty_date(t0)
    vector = incident_totals(incident, calendar.bounds(duty)[1], limits)
    key = duty.isoformat()
    for dimension, member in members(incident):
        yield (dimension, member, key), vector


def handover_end(incident: Incident, calendar: DutyCalendar) -> int | None:
    """The end of the incident's duty period if it is an outage incident still open
    then (t6 missing or not before the end): it is on that period's handover list."""
    t0 = incident.times[CALL]
    if t0 is None or not incident.is_outage:
        return None
    end = calendar.bounds(calendar.duty_date(t0))[1]
    t6 = incident.times[RESTORE]
    return end if t6 is None or t6 >= end else None


def call_buckets(fact: Fact, calendar: DutyCalendar) -> tuple[Bucket, ...]:
    """Buckets whose ``calls`` a ``call.received`` fact increments."""
    key = calendar.duty_date(fact.at).isoformat()
    return (("", "", key), ("grid", fact.grid or NO_MEMBER, key),
            ("area", fact.area or NO_MEMBER, key))


def add_into(target: Totals, vector: Totals, sign: int = 1) -> None:
    """``target += sign * vector``, in place."""
    if sign == 1:
        target[:] = map(operator.add, target, vector)  # column by column, in C
    elif sign == -1:
        target[:] = map(operator.sub, target, vector)
    else:
        for i, value in enumerate(vector):
            if value:
                target[i] += sign * value


def accumulate(target: dict[Bucket, Totals], items: Iterable[tuple[Bucket, Totals]],
               sign: int = 1) -> None:
    """``target[bucket] += sign * vector`` for each item."""
    for bucket, vector in items:
        current = target.get(bucket)
        if current is None:
            current = target[bucket] = zeros()
        add_into(current, vector, sign)


def duty_date_of(bucket: Bucket) -> date | None:
    return date.fromisoformat(bucket[2]) if bucket[2] else None
