"""Column layout shared by the SQL adapters (so SQLite and PostgreSQL agree)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any

from projections.duty import DutyCalendar, parse_duty_start
from projections.incident import CHECKPOINTS, Incident
from projections.totals import FIELDS

CHECKPOINT_COLUMNS: tuple[str, ...] = tuple(f"t{k}" for k in range(len(CHECKPOINTS)))
"""``t0`` .. ``t6``: ``Incident.times`` by checkpoint (docs/kpis.md)."""
INCIDENT_ATTRIBUTES: tuple[str, ...] = tuple(
    f.name for f in fields(Incident) if f.name not in ("incident_id", "times"))
"""The other ``Incident`` fields, in declaration order, each stored in the column of
the same name (a new field needs a migration that adds its column)."""
INCIDENT_COLUMNS: tuple[str, ...] = ("incident_id", *CHECKPOINT_COLUMNS, *INCIDENT_ATTRIBUTES)
"""Every column of ``incidents``; statements name them in this order."""
CALL_COLUMNS: tuple[str, ...] = ("event_id", "incident_id", "occurred_us", "grid", "area")
POSITION_COLUMNS: tuple[str, ...] = ("consumer", "source", "partition", "next_position")
TOTALS_KEY: tuple[str, ...] = ("dimension", "member", "duty_date")
TOTALS_COLUMNS: tuple[str, ...] = TOTALS_KEY + FIELDS
COUNTERS: tuple[str, ...] = ("rejected_events", "duplicate_events", "conflicting_events")


def calendar_meta(calendar: DutyCalendar) -> list[tuple[str, str]]:
    """The ``meta`` rows that fix a store's duty calendar at creation."""
    return [("duty_timezone", calendar.timezone), ("duty_start", calendar.start_text)]


def calendar_from_meta(meta: Mapping[str, str]) -> DutyCalendar | None:
    """The calendar recorded in ``meta``, or None for a store not yet stamped."""
    if "duty_timezone" not in meta:
        return None
    return DutyCalendar(meta["duty_timezone"], parse_duty_start(meta["duty_start"]))


_attributes = attrgetter(*INCIDENT_ATTRIBUTES)
_FIRST_ATTRIBUTE = 1 + len(CHECKPOINT_COLUMNS)


def incident_row(incident: Incident) -> tuple[Any, ...]:
    """The values of ``INCIDENT_COLUMNS`` for ``incident``."""
    return (incident.incident_id, *incident.times, *_attributes(incident))


def incident_from_row(row: Sequence[Any]) -> Incident:
    """The incident of a row selected as ``INCIDENT_COLUMNS`` (in that order).

    Positional on purpose (keywords cost 4x on the ingest path): the attribute
    columns follow ``Incident``'s field order by construction."""
    return Incident(row[0], list(row[1:_FIRST_ATTRIBUTE]), *row[_FIRST_ATTRIBUTE:])
