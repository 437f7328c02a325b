"""The change log: what each committed batch changed, for live subscribers (pure part).

Contract:
- every committed batch appends, in the same transaction, one change per
  incident it touched (``incident``: the incident's full new state) and one per
  duty period whose totals it moved or whose team it set (``period``: the
  period's full new statistics, if it has any), plus any extra changes the runner adds (``alert``
  transitions of the SLA layer);
- changes are numbered by a store-wide sequence that increases in commit order,
  so a reader that has seen every change up to ``seq`` and reads ``> seq`` later
  misses none and sees none twice;
- payloads are full states, not deltas: applying one twice, or applying an older
  snapshot read over REST and then the change, gives the same result;
- the stored payload is compact (an incident row, a totals vector: the writer
  pays one ``orjson.dumps``); ``public_data`` turns it into the JSON the API
  serves, with the calendar of the store. A period's accountability block is
  not stored: its team, owners and handover list are read when the change is
  sent (``PeriodDetail``), its counts come from the change's own totals;
- changes older than the retention are pruned by the writers; a reader whose
  last ``seq`` is below ``ChangeWindow.pruned_through`` must re-read the state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, NamedTuple

import orjson

from projections.accountability import handover_lists, latest_shifts
from projections.duty import MICROS_PER_MINUTE, DutyCalendar
from projections.incident import CALL, CHECKPOINTS, RESTORE, STAGES, Fact, Incident
from projections.ports import Change, NewChange, PeriodContext
from projections.report import period_entry, statistics
from projections.sla import RULES, SlaLimits, rule_clock, rule_state, utc_text
from projections.stores.rows import incident_from_row, incident_row
from projections.totals import AGENT, UNATTRIBUTED, Bucket, Totals

KINDS: tuple[str, ...] = ("incident", "period", "alert")
PRUNE_EVERY_US = 60 * 1_000_000
"""A writer prunes at most this often, or twice per retention if that is shorter."""


def incident_state(incident: Incident) -> str:
    """``rejected``, ``merged``, ``closed``, ``restored`` or ``open``."""
    if incident.rejected_at is not None:
        return "rejected"
    if incident.merged_at is not None:
        return "merged"
    if incident.closed_at is not None:
        return "closed"
    if incident.times[RESTORE] is not None:
        return "restored"
    return "open"


def sla_summary(incident: Incident, as_of_us: int, limits: SlaLimits) -> dict[str, Any]:
    """Per SLA rule, as of ``as_of_us``: null when not armed, else its ``state``,
    ``deadline`` (RFC 3339 UTC), ``limit_minutes`` and ``minutes_left`` (negative
    once past the deadline; null once the stop checkpoint is in)."""
    out: dict[str, Any] = {}
    for rule in RULES:
        state = rule_state(incident, rule, as_of_us, limits)
        clock = rule_clock(incident, rule, limits, as_of_us)
        if state is None or clock is None:
            out[rule] = None
            continue
        running = state in ("ok", "warning", "breach")
        out[rule] = {"state": state, "deadline": utc_text(clock.deadline),
                     "limit_minutes": clock.limit_minutes,
                     "minutes_left": (clock.deadline - as_of_us) / MICROS_PER_MINUTE
                     if running else None}
    return out


def incident_summary(incident: Incident, calendar: DutyCalendar,
                     limits: SlaLimits | None = None, as_of_us: int | None = None
                     ) -> dict[str, Any]:
    """The public view of one incident row (``/api/incidents`` items, ``incident``
    changes): state, attributes, checkpoint instants and stage minutes, and with
    ``limits`` its SLA rules as of ``as_of_us``."""
    times = incident.times
    stages: dict[str, float | None] = {}
    for k, stage in enumerate(STAGES, start=1):
        start, end = times[k - 1], times[k]
        stages[stage] = None if start is None or end is None else (
            (end - start) / MICROS_PER_MINUTE)
    t0 = times[CALL]
    return {
        "incident_id": incident.incident_id,
        "state": incident_state(incident),
        "duty_date": None if t0 is None else calendar.duty_date(t0).isoformat(),
        "grid": incident.grid,
        "area": incident.area,
        "priority": incident.priority,
        "customers_affected": incident.customers,
        "crew": incident.crew,
        "merged_into": incident.merged_into,
        "checkpoints": {name: None if t is None else calendar.format_instant(t)
                        for name, t in zip(CHECKPOINTS, times, strict=True)},
        "stages_minutes": stages,
        "owner": incident.owner,
        **({} if limits is None or as_of_us is None
           else {"sla": sla_summary(incident, as_of_us, limits)}),
    }


class PeriodDetail(NamedTuple):
    """The parts of some periods' accountability blocks that are not in their
    service-wide totals, ready to use (``period_detail``)."""

    agents: Mapping[str, Mapping[str, Totals]]
    teams: Mapping[str, Fact]
    handover: Mapping[str, list[dict[str, Any]]]


def period_detail(context: PeriodContext, calendar: DutyCalendar) -> PeriodDetail:
    return PeriodDetail(context.agents, latest_shifts(context.shifts, calendar),
                        handover_lists(context.handover, calendar))


def period_summary(duty_date: str, vector: Totals, calendar: DutyCalendar,
                   detail: PeriodDetail | None = None) -> dict[str, Any]:
    """One duty period as the report prints it (``duty_periods`` entries); without
    ``detail`` (read with ``ProjectionStore.period_context``), its statistics only."""
    if detail is not None:
        return period_entry(duty_date, vector, calendar, detail.agents.get(duty_date, {}),
                            detail.teams.get(duty_date), detail.handover.get(duty_date, []))
    start, end = calendar.bounds(date.fromisoformat(duty_date))
    return {"duty_date": duty_date, "start": calendar.format_instant(start),
            "end": calendar.format_instant(end), **statistics(vector)}


def service_days(deltas: Mapping[Bucket, Totals], shifts: Iterable[Fact] = (),
                 calendar: DutyCalendar | None = None) -> list[str]:
    """The duty dates whose report period a batch changes, sorted: its service-wide
    or per-owner totals move, or (with the store's ``calendar``) one of its
    ``shifts`` starts in it (a new team)."""
    days = {day for (dimension, _, day) in deltas
            if dimension in ("", AGENT) and day != UNATTRIBUTED}
    if calendar is not None:
        days.update(calendar.duty_date(shift.at).isoformat() for shift in shifts)
    return sorted(days)


def incident_changes(incidents: list[Incident]) -> list[NewChange]:
    return [NewChange("incident", i.incident_id, orjson.dumps(incident_row(i)))
            for i in incidents]


def period_changes(rows: Mapping[str, Totals]) -> list[NewChange]:
    """``rows``: the committed service-wide totals of the moved duty dates."""
    return [NewChange("period", day, orjson.dumps(list(vector)))
            for day, vector in sorted(rows.items())]


def public_data(change: Change, calendar: DutyCalendar, limits: SlaLimits | None = None,
                as_of_us: int | None = None, detail: PeriodDetail | None = None
                ) -> dict[str, Any]:
    """What subscribers receive for ``change``: an ``incident_summary`` (with its SLA
    rules as of ``as_of_us`` when ``limits`` are given), a ``period_summary`` (with
    its accountability block when ``detail`` is given), or an alert payload as the
    SLA layer wrote it."""
    stored = orjson.loads(change.data)
    if change.kind == "incident":
        return incident_summary(incident_from_row(stored), calendar, limits, as_of_us)
    if change.kind == "period":
        return period_summary(change.key, stored, calendar, detail)
    result: dict[str, Any] = stored
    return result


def retention_cutoff(now_us: int, retention_days: float) -> int:
    """Changes committed before this instant (µs) may be pruned."""
    return now_us - int(retention_days * 86_400 * 1_000_000)


def prune_due(now_us: int, last_pruned_us: int, retention_days: float) -> bool:
    every = min(PRUNE_EVERY_US, int(retention_days * 86_400 * 1_000_000) // 2)
    return now_us - last_pruned_us >= every
