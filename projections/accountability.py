"""Duty accountability: who was on duty, who owns what, what was handed over (pure).

Per duty period (see ``docs/accountability.md``):

- ``team``, ``leader``: from the latest shift start (by time, then event id) in the
  period; None if no shift started in it;
- ``agents``: per first-contact owner of the period's incidents, from the ``agent``
  buckets of the totals (owner None, listed last, for calls taken without an agent);
- ``handover``: the period's incidents open at its end, by t0 then id, with the
  last checkpoint reached before the end and the minutes open at the end;
- ``sla``: per rule, the count of each state as of the period end;
- ``callbacks`` and ``first_visit_fix``: over the period's restored incidents.

Everything but the team and the handover list comes from the maintained totals
vectors, so it is exact and identical on every backend; the team comes from the
stored shift facts and the handover list from the stored incident rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from projections.duty import MICROS_PER_MINUTE, DutyCalendar
from projections.incident import CALL, CHECKPOINTS, Fact, Incident
from projections.sla import RULES, STATES
from projections.totals import (
    AGENT,
    INDEX,
    NO_AGENT,
    SLA_INDEX,
    UNATTRIBUTED,
    Bucket,
    Totals,
    add_into,
    handover_end,
    zeros,
)

HANDOVER_CHECKPOINTS = CHECKPOINTS[:-1]
"""``last_checkpoint`` is one of these: an open incident has not been restored."""


def _mean(count: int, sum_us: int) -> float | None:
    return sum_us / (count * MICROS_PER_MINUTE) if count else None


def latest_shifts(shifts: Iterable[Fact], calendar: DutyCalendar) -> dict[str, Fact]:
    """Duty date -> the shift start that sets the period's team and leader."""
    latest: dict[str, Fact] = {}
    for shift in shifts:
        day = calendar.duty_date(shift.at).isoformat()
        current = latest.get(day)
        if current is None or (shift.at, shift.event_id) > (current.at, current.event_id):
            latest[day] = shift
    return latest


def shifts_by_date(shifts: Iterable[Fact], calendar: DutyCalendar) -> dict[str, list[Fact]]:
    """Duty date -> every shift start in the period, in time (then id) order."""
    out: dict[str, list[Fact]] = {}
    for shift in sorted(shifts, key=lambda s: (s.at, s.event_id)):
        out.setdefault(calendar.duty_date(shift.at).isoformat(), []).append(shift)
    return out


def handover_entry(incident: Incident, end: int) -> dict[str, Any]:
    """One line of a handover list (``incident`` open at ``end``)."""
    times = incident.times
    t0 = times[CALL]
    assert t0 is not None  # only attributed incidents are handed over
    last = max(k for k in range(len(HANDOVER_CHECKPOINTS))
               if times[k] is not None and times[k] < end)  # type: ignore[operator]
    return {
        "incident_id": incident.incident_id,
        "owner": incident.owner,
        "grid": incident.grid,
        "area": incident.area,
        "priority": incident.priority,
        "last_checkpoint": HANDOVER_CHECKPOINTS[last],
        "minutes_open": (end - t0) / MICROS_PER_MINUTE,
    }


def handover_lists(incidents: Iterable[Incident],
                   calendar: DutyCalendar) -> dict[str, list[dict[str, Any]]]:
    """Duty date -> its handover list, sorted by t0 then incident id. ``incidents``
    may hold any incidents: those not open at their period's end are left out."""
    found: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for incident in incidents:
        end = handover_end(incident, calendar)
        if end is None:
            continue
        t0 = incident.times[CALL]
        assert t0 is not None
        day = calendar.duty_date(t0).isoformat()
        found.setdefault(day, []).append((t0, incident.incident_id,
                                          handover_entry(incident, end)))
    return {day: [entry for *_, entry in sorted(items, key=lambda e: e[:2])]
            for day, items in found.items()}


def agent_vectors(totals: Mapping[Bucket, Totals]) -> dict[str, dict[str, Totals]]:
    """Duty date -> owner -> totals vector, from the ``agent`` buckets."""
    out: dict[str, dict[str, Totals]] = {}
    for (dimension, member, day), vector in totals.items():
        if dimension == AGENT and day != UNATTRIBUTED:
            out.setdefault(day, {})[member] = vector
    return out


def _agents(by_member: Mapping[str, Totals]) -> list[dict[str, Any]]:
    def order(member: str) -> tuple[bool, str]:
        return (member == NO_AGENT, member)

    return [
        {
            "agent": None if member == NO_AGENT else member,
            "incidents_owned": vector[INDEX["incidents"]],
            "restored": vector[INDEX["restored"]],
            "avg_restoration_minutes": _mean(vector[INDEX["restoration_count"]],
                                             vector[INDEX["restoration_sum_us"]]),
        }
        for member, vector in sorted(by_member.items(), key=lambda item: order(item[0]))
        if vector[INDEX["incidents"]]
    ]


def accountability(vector: Totals, agents: Mapping[str, Totals], shift: Fact | None,
                   handover: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``accountability`` object of one period (or of all of them: no shift)."""
    fixed_count = vector[INDEX["first_visit_count"]]
    return {
        "team": shift.team if shift is not None else None,
        "leader": shift.leader if shift is not None else None,
        "agents": _agents(agents),
        "handover": list(handover),
        "sla": {rule: {state: vector[SLA_INDEX[rule, state]] for state in STATES}
                for rule in RULES},
        "callbacks": {
            "restored": vector[INDEX["restored"]],
            "called_back": vector[INDEX["callback_called"]],
            "reached": vector[INDEX["callback_reached"]],
            "satisfied": vector[INDEX["callback_satisfied"]],
            "dissatisfied": vector[INDEX["callback_dissatisfied"]],
        },
        "first_visit_fix": (vector[INDEX["first_visit_fixed"]] / fixed_count
                            if fixed_count else None),
    }


def overall_agents(per_date: Mapping[str, Mapping[str, Totals]],
                   dates: Iterable[str]) -> dict[str, Totals]:
    """Owner -> the sum of its vectors over ``dates``."""
    out: dict[str, Totals] = {}
    for day in dates:
        for member, vector in per_date.get(day, {}).items():
            add_into(out.setdefault(member, zeros()), vector)
    return out


