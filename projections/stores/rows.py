"""Column layout shared by the SQL adapters (so SQLite and PostgreSQL agree)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple

import orjson

from projections.duty import DutyCalendar, parse_duty_start
from projections.incident import CHECKPOINTS, Fact, Incident
from projections.ports import PeriodContext
from projections.sla import SlaLimits
from projections.totals import FIELDS, Totals, handover_end

CHECKPOINT_COLUMNS: tuple[str, ...] = tuple(f"t{k}" for k in range(len(CHECKPOINTS)))
"""``t0`` .. ``t6``: ``Incident.times`` by checkpoint (docs/kpis.md)."""
INCIDENT_ATTRIBUTES: tuple[str, ...] = tuple(
    f.name for f in fields(Incident) if f.name not in ("incident_id", "times"))
"""The other ``Incident`` fields, in declaration order, each stored in the column of
the same name (a new field needs a migration that adds its column)."""
INCIDENT_COLUMNS: tuple[str, ...] = ("incident_id", *CHECKPOINT_COLUMNS, *INCIDENT_ATTRIBUTES)
"""Every column of ``incidents`` that holds an ``Incident`` field; statements name them
in this order. ``arrived_crews`` (a tuple, the last field) is stored as a JSON array."""
INCIDENT_WRITE_COLUMNS: tuple[str, ...] = (*INCIDENT_COLUMNS, "handover_end")
"""What an upsert writes: the fields, then ``handover_end``, derived from them under the
store's calendar (``totals.handover_end``) so that the handover list is one filtered
scan."""
SHIFT_COLUMNS: tuple[str, ...] = ("event_id", "occurred_us", "team", "leader", "members")
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


assert INCIDENT_ATTRIBUTES[-1] == "arrived_crews"  # the one field stored as JSON
_attributes = attrgetter(*INCIDENT_ATTRIBUTES[:-1])
_FIRST_ATTRIBUTE = 1 + len(CHECKPOINT_COLUMNS)
_CREWS = len(INCIDENT_COLUMNS) - 1


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
    """The values of ``INCIDENT_WRITE_COLUMNS`` for ``incident``; ``handover_end`` needs
    the store's calendar (None without one, e.g. in change-log payloads)."""
    crews = incident.arrived_crews
    return (incident.incident_id, *incident.times, *_attributes(incident),
            orjson.dumps(crews).decode() if crews else None,
            handover_end(incident, calendar) if calendar is not None else None)


def incident_from_row(row: Sequence[Any]) -> Incident:
    """The incident of a row selected as ``INCIDENT_COLUMNS`` (in that order; a longer
    row, as ``incident_row`` makes it, is fine; a shorter one, from before a field
    existed, leaves the later fields at their defaults).

    Positional on purpose (keywords cost 4x on the ingest path): the attribute
    columns follow ``Incident``'s field order by construction."""
    incident = Incident(row[0], list(row[1:_FIRST_ATTRIBUTE]), *row[_FIRST_ATTRIBUTE:_CREWS])
    if len(row) > _CREWS and row[_CREWS]:
        incident.arrived_crews = tuple(orjson.loads(row[_CREWS]))
    return incident


def shift_row(fact: Fact) -> tuple[Any, ...]:
    """The values of ``SHIFT_COLUMNS`` for a shift-start fact."""
    members = orjson.dumps(fact.members).decode() if fact.members is not None else None
    return (fact.event_id, fact.at, fact.team, fact.leader, members)


class PeriodRows(NamedTuple):
    """Where the rows of some duty periods are (``period_rows``)."""

    days: list[str]
    start: int
    """The earliest period start (µs): shift starts are read from here ..."""
    end: int
    """... to the latest end (exclusive), then kept when in one of ``days``."""
    ends: list[int]
    """Each period's end: the ``handover_end`` of its handover incidents."""


def period_rows(days: Collection[str], calendar: DutyCalendar) -> PeriodRows | None:
    """None for no days."""
    wanted = sorted(set(days))
    if not wanted:
        return None
    bounds = [calendar.bounds(date.fromisoformat(day)) for day in wanted]
    return PeriodRows(wanted, min(b[0] for b in bounds), max(b[1] for b in bounds),
                      [b[1] for b in bounds])


def period_context(rows: PeriodRows, calendar: DutyCalendar,
                   agent_rows: Iterable[Sequence[Any]], shift_rows: Iterable[Sequence[Any]],
                   handover_rows: Iterable[Sequence[Any]]) -> PeriodContext:
    """``agent_rows``: ``member, duty_date, *FIELDS`` of ``agent`` totals; the others in
    ``SHIFT_COLUMNS`` / ``INCIDENT_COLUMNS`` order."""
    agents: dict[str, dict[str, Totals]] = {}
    for row in agent_rows:
        agents.setdefault(row[1], {})[row[0]] = list(row[2:])
    wanted = set(rows.days)
    shifts = [shift for shift in map(shift_from_row, shift_rows)
              if calendar.duty_date(shift.at).isoformat() in wanted]
    return PeriodContext(agents, shifts, [incident_from_row(tuple(r)) for r in handover_rows])


def shift_from_row(row: Sequence[Any]) -> Fact:
    members = tuple(orjson.loads(row[4])) if row[4] is not None else None
    return Fact(row[0], "duty.shift_started", "", row[1], team=row[2], leader=row[3],
                members=members)
