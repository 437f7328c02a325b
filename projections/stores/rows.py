"""Column layout shared by the SQL adapters (so SQLite and PostgreSQL agree)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from projections.duty import DutyCalendar, parse_duty_start
from projections.incident import Fact, Incident
from projections.sla import SlaLimits
from projections.totals import FIELDS, handover_end

INCIDENT_COLUMNS: tuple[str, ...] = (
    "incident_id", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "grid", "area", "priority",
    "customers", "dispatched_at", "dispatched_crew", "arrived_crew", "rejected_at",
    "merged_at", "merged_into", "closed_at", "owner", "call_event_id", "callbacks",
    "arrived_crews", "handover_end",
)
"""``handover_end`` is derived (``totals.handover_end`` under the store's calendar), so
that the handover list is one filtered scan; ``arrived_crews`` is a JSON array."""
_WIDTH = len(INCIDENT_COLUMNS)
SHIFT_COLUMNS: tuple[str, ...] = ("event_id", "occurred_us", "team", "leader", "members")
TOTALS_KEY: tuple[str, ...] = ("dimension", "member", "duty_date")
TOTALS_COLUMNS: tuple[str, ...] = TOTALS_KEY + FIELDS
COUNTERS: tuple[str, ...] = ("rejected_events", "duplicate_events")


def calendar_meta(calendar: DutyCalendar) -> list[tuple[str, str]]:
    """The ``meta`` rows that fix a store's duty calendar at creation."""
    return [("duty_timezone", calendar.timezone), ("duty_start", calendar.start_text)]


def calendar_from_meta(meta: Mapping[str, str]) -> DutyCalendar | None:
    """The calendar recorded in ``meta``, or None for a store not yet stamped."""
    if "duty_timezone" not in meta:
        return None
    return DutyCalendar(meta["duty_timezone"], parse_duty_start(meta["duty_start"]))


def limits_meta(limits: SlaLimits) -> list[tuple[str, str]]:
    """The ``meta`` row that fixes the SLA limits a store's totals are kept for."""
    text = orjson.dumps({"by_area": limits.by_area, "priority": limits.priority,
                         "priorities": list(limits.priorities)}, option=orjson.OPT_SORT_KEYS)
    return [("sla_limits", text.decode())]


def limits_from_meta(meta: Mapping[str, str]) -> SlaLimits | None:
    """The limits recorded in ``meta``, or None for a store that has none yet."""
    if "sla_limits" not in meta:
        return None
    saved = orjson.loads(meta["sla_limits"])
    return SlaLimits(saved["by_area"], saved["priority"], tuple(saved["priorities"]))


def incident_row(incident: Incident, calendar: DutyCalendar | None = None) -> tuple[Any, ...]:
    """The row of ``INCIDENT_COLUMNS``; ``handover_end`` needs the store's calendar
    (None without one, e.g. in change-log payloads)."""
    crews = incident.arrived_crews
    return (
        incident.incident_id, *incident.times, incident.grid, incident.area,
        incident.priority, incident.customers, incident.dispatched_at,
        incident.dispatched_crew, incident.arrived_crew, incident.rejected_at,
        incident.merged_at, incident.merged_into, incident.closed_at, incident.owner,
        incident.call_event_id, incident.callbacks,
        orjson.dumps(crews).decode() if crews else None,
        handover_end(incident, calendar) if calendar is not None else None,
    )


def incident_from_row(row: Sequence[Any]) -> Incident:
    """The incident of a row selected with ``INCIDENT_COLUMNS`` (rows written before
    the accountability columns existed read as: no owner, no callbacks, no crews)."""
    if len(row) < _WIDTH:  # a shorter payload, e.g. an older change-log entry
        row = (*row, *[None] * (_WIDTH - len(row)))
    crews = row[22]
    return Incident(
        row[0], list(row[1:8]), grid=row[8], area=row[9], priority=row[10],
        customers=row[11], dispatched_at=row[12], dispatched_crew=row[13],
        arrived_crew=row[14], rejected_at=row[15], merged_at=row[16], merged_into=row[17],
        closed_at=row[18], owner=row[19], call_event_id=row[20], callbacks=row[21] or 0,
        arrived_crews=tuple(orjson.loads(crews)) if crews else ())


def shift_row(fact: Fact) -> tuple[Any, ...]:
    members = orjson.dumps(fact.members).decode() if fact.members is not None else None
    return (fact.event_id, fact.at, fact.team, fact.leader, members)


def shift_from_row(row: Sequence[Any]) -> Fact:
    members = tuple(orjson.loads(row[4])) if row[4] is not None else None
    return Fact(row[0], "duty.shift_started", "", row[1], team=row[2], leader=row[3],
                members=members)
