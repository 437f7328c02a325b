"""Read-side queries over a store: the duty report and one incident's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from projections.duty import MICROS_PER_MINUTE, DutyCalendar
from projections.incident import CHECKPOINTS, STAGES, Incident
from projections.ports import LoggedEvent, ProjectionStore
from projections.report import Report, build_report, build_sheet, recut
from projections.sla import SlaLimits


async def duty_report(store: ProjectionStore, calendar: DutyCalendar | None = None,
                      sla_limits: SlaLimits | None = None) -> Report:
    """The duty report (docs/report.md). With the store's own calendar and SLA limits it reads the
    maintained totals; with others it re-cuts the incident rows."""
    counters = await store.counters()
    shifts = await store.shifts()
    if (calendar is None or calendar == store.calendar) and (
            sla_limits is None or sla_limits == store.sla_limits):
        return build_report(await store.totals(), counters, store.calendar, shifts,
                            await store.handover_incidents())
    calendar = calendar or store.calendar
    incidents = [i async for i in store.all_incidents()]
    calls = [c async for c in store.all_calls()]
    totals = recut(incidents, calls, calendar, sla_limits or store.sla_limits)
    return build_report(totals, counters, calendar, shifts, incidents)


async def handover_sheet(store: ProjectionStore, duty_date: date,
                         calendar: DutyCalendar | None = None) -> dict[str, Any]:
    """One period's handover sheet: the period as the report has it (or an empty one
    if the period had no call and no incident), every shift start in it, and the
    calendar it was cut with."""
    report = await duty_report(store, calendar)
    calendar = calendar or store.calendar
    day = duty_date.isoformat()
    shifts = await store.shifts()
    return build_sheet(report, day, shifts, calendar)


@dataclass(frozen=True)
class Timeline:
    incident: Incident
    events: list[LoggedEvent]
    calendar: DutyCalendar

    def checkpoints(self) -> list[tuple[str, str | None]]:
        return [(name, None if t is None else self.calendar.format_instant(t))
                for name, t in zip(CHECKPOINTS, self.incident.times, strict=True)]

    def stage_minutes(self) -> dict[str, float | None]:
        times = self.incident.times
        out: dict[str, float | None] = {}
        for k, stage in enumerate(STAGES, start=1):
            start, end = times[k - 1], times[k]
            out[stage] = None if start is None or end is None else (end - start) / MICROS_PER_MINUTE
        return out


async def incident_timeline(store: ProjectionStore, incident_id: str) -> Timeline | None:
    found = await store.load_incidents([incident_id])
    if incident_id not in found:
        return None
    return Timeline(found[incident_id], await store.incident_events(incident_id), store.calendar)
