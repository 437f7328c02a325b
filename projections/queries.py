"""Read-side queries over a store: the duty report and one incident's timeline."""

from __future__ import annotations

from dataclasses import dataclass

from projections.duty import MICROS_PER_MINUTE, DutyCalendar
from projections.incident import CHECKPOINTS, STAGES, Incident
from projections.ports import LoggedEvent, ProjectionStore
from projections.report import Report, build_report, recut


async def duty_report(store: ProjectionStore, calendar: DutyCalendar | None = None) -> Report:
    """The duty report (docs/report.md). With the store's own calendar it reads the
    maintained totals; with another one it re-cuts the incident rows."""
    counters = await store.counters()
    if calendar is None or calendar == store.calendar:
        return build_report(await store.totals(), counters, store.calendar)
    incidents = [i async for i in store.all_incidents()]
    calls = [c async for c in store.all_calls()]
    return build_report(recut(incidents, calls, calendar), counters, calendar)


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
