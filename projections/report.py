"""The duty report of docs/report.md, built from totals (pure).

Contract: ``build_report`` output has exactly the contract keys of docs/report.md, in
that order, plus extra keys (``closed``, ``restoration_anomalies``, ``arrival``,
``restore_after_arrival``, ``breakdowns``, ``conflicting_events``) that extend it, and
``accountability`` per period and overall (``projections/accountability.py``). Means are exact:
integer microsecond sums divided once, so every backend prints the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from projections.accountability import (
    accountability,
    agent_vectors,
    handover_lists,
    latest_shifts,
    overall_agents,
    shifts_by_date,
)
from projections.duty import MICROS_PER_MINUTE, DutyCalendar
from projections.incident import STAGES, Fact, Incident
from projections.sla import SlaLimits
from projections.totals import (
    DEFAULT_LIMITS,
    DIMENSIONS,
    INDEX,
    UNATTRIBUTED,
    Bucket,
    Totals,
    accumulate,
    add_into,
    call_buckets,
    contributions,
    zeros,
)

Report = dict[str, Any]


def _mean(count: int, sum_us: int) -> float | None:
    return sum_us / (count * MICROS_PER_MINUTE) if count else None


def _stat(vector: Totals, name: str) -> dict[str, Any]:
    count = vector[INDEX[f"{name}_count"]]
    return {"count": count, "mean_minutes": _mean(count, vector[INDEX[f"{name}_sum_us"]])}


def statistics(vector: Totals) -> dict[str, Any]:
    """The per-period fields of docs/report.md (plus extensions) for one totals vector."""
    return {
        "calls": vector[INDEX["calls"]],
        "incidents": vector[INDEX["incidents"]],
        "restored": vector[INDEX["restored"]],
        "open_at_handover": vector[INDEX["open_at_handover"]],
        "stages": {stage: _stat(vector, stage) for stage in STAGES},
        "avg_restoration_minutes": _mean(vector[INDEX["restoration_count"]],
                                         vector[INDEX["restoration_sum_us"]]),
        "anomalies": vector[INDEX["anomalies"]],
        "closed": vector[INDEX["closed"]],
        "restoration_anomalies": vector[INDEX["restoration_anomalies"]],
        "arrival": _stat(vector, "arrival"),
        "restore_after_arrival": _stat(vector, "after_arrival"),
    }


def build_report(totals: Mapping[Bucket, Totals], counters: Mapping[str, int],
                 calendar: DutyCalendar, shifts: Sequence[Fact] = (),
                 handover: Iterable[Incident] = ()) -> Report:
    """Assemble the report from bucket totals (see module contract). ``shifts`` are
    the shift-start facts, ``handover`` (at least) the incidents open at the end of
    their period: both are only read for the accountability section."""
    periods: list[tuple[str, Totals]] = sorted(
        (day, vector) for (dimension, _, day), vector in totals.items()
        if dimension == "" and day != UNATTRIBUTED
        and (vector[INDEX["calls"]] or vector[INDEX["incidents"]])
    )
    overall = zeros()
    for _, vector in periods:
        add_into(overall, vector)
    teams = latest_shifts(shifts, calendar)
    handed_over = handover_lists(handover, calendar)
    agents = agent_vectors(totals)
    duty_periods = []
    for day, vector in periods:
        duty_periods.append(period_entry(day, vector, calendar, agents.get(day, {}),
                                         teams.get(day), handed_over.get(day, [])))
    # Each member's vectors over its duty dates, summed column by column in one go.
    by_member: dict[tuple[str, str], list[Totals]] = {}
    for (dimension, member, day), vector in totals.items():
        if dimension in DIMENSIONS and day != UNATTRIBUTED:
            listed = by_member.get((dimension, member))
            if listed is None:
                by_member[(dimension, member)] = [vector]
            else:
                listed.append(vector)
    breakdowns: dict[str, dict[str, Any]] = {dimension: {} for dimension in DIMENSIONS}
    for (dimension, member), vectors in sorted(by_member.items()):
        summed = list(map(sum, zip(*vectors, strict=True)))
        if any(summed):
            breakdowns[dimension][member] = statistics(summed)
    unattributed = totals.get(("", "", UNATTRIBUTED))
    dates = [day for day, _ in periods]
    overall_accountability = accountability(
        overall, overall_agents(agents, dates), None,
        [entry for day in dates for entry in handed_over.get(day, [])])
    return {
        "duty_timezone": calendar.timezone,
        "duty_start": calendar.start_text,
        "duty_periods": duty_periods,
        "overall": {**statistics(overall), "accountability": overall_accountability},
        "unattributed": unattributed[INDEX["incidents"]] if unattributed else 0,
        "rejected_events": counters.get("rejected_events", 0),
        "duplicate_events": counters.get("duplicate_events", 0),
        "conflicting_events": counters.get("conflicting_events", 0),
        "breakdowns": breakdowns,
    }


def period_entry(day: str, vector: Totals, calendar: DutyCalendar,
                 agents: Mapping[str, Totals], shift: Fact | None,
                 handover: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One element of ``duty_periods`` (also the body of a handover sheet)."""
    start, end = calendar.bounds(date.fromisoformat(day))
    return {
        "duty_date": day,
        "start": calendar.format_instant(start),
        "end": calendar.format_instant(end),
        **statistics(vector),
        "accountability": accountability(vector, agents, shift, handover),
    }


def build_sheet(report: Report, day: str, shifts: Sequence[Fact],
                calendar: DutyCalendar) -> dict[str, Any]:
    """The handover sheet of duty date ``day``: its ``duty_periods`` entry of
    ``report`` (an empty period with its team if it has none), plus every shift
    start in the period and the calendar it was cut with."""
    period = next((p for p in report["duty_periods"] if p["duty_date"] == day), None)
    if period is None:
        period = period_entry(day, zeros(), calendar, {}, latest_shifts(shifts, calendar)
                              .get(day), [])
    starts = shifts_by_date(shifts, calendar).get(day, [])
    return {
        "duty_timezone": calendar.timezone,
        "duty_start": calendar.start_text,
        **period,
        "shifts": [{"at": calendar.format_instant(s.at), "team": s.team, "leader": s.leader,
                    "members": list(s.members) if s.members is not None else None}
                   for s in starts],
    }


def recut(incidents: Iterable[Incident], calls: Iterable[Fact],
          calendar: DutyCalendar, limits: SlaLimits = DEFAULT_LIMITS) -> dict[Bucket, Totals]:
    """Totals of the given read-model rows under another ``calendar`` (or limits)."""
    totals: dict[Bucket, Totals] = {}
    for incident in incidents:
        accumulate(totals, contributions(incident, calendar, limits))
    for call in calls:
        for bucket in call_buckets(call, calendar):
            vector = totals.get(bucket)
            if vector is None:
                vector = totals[bucket] = zeros()
            vector[INDEX["calls"]] += 1
    return totals

