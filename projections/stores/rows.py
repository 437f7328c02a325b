"""Column layout shared by the SQL adapters (so SQLite and PostgreSQL agree)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from projections.duty import DutyCalendar, parse_duty_start
from projections.incident import Incident
from projections.totals import FIELDS

INCIDENT_COLUMNS: tuple[str, ...] = (
    "incident_id", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "grid", "area", "priority",
    "customers", "dispatched_at", "dispatched_crew", "arrived_crew", "rejected_at",
    "merged_at", "merged_into", "closed_at", "owner",
)
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


def incident_row(incident: Incident) -> tuple[Any, ...]:
    return (
        incident.incident_id, *incident.times, incident.grid, incident.area,
        incident.priority, incident.customers, incident.dispatched_at,
        incident.dispatched_crew, incident.arrived_crew, incident.rejected_at,
        incident.merged_at, incident.merged_into, incident.closed_at, incident.owner,
    )


def incident_from_row(row: Sequence[Any]) -> Incident:
    return Incident(row[0], list(row[1:8]), *row[8:])
