"""Response schemas of the HTTP API, for ``/openapi.json``.

Handlers return the same JSON the CLI prints (built by ``projections``), as
bytes; these models describe it. ``tests/api`` validates real responses against
the published document, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NO_NUL = r"^[^\x00]*$"
"""Path and query text: no NUL character (an event cannot hold one, and PostgreSQL
text cannot either, so such a value can only be a mistake: 422, not a store error)."""


class Open(BaseModel):
    """Documented keys; newer versions may add keys (clients ignore unknown ones)."""

    model_config = ConfigDict(extra="allow")


class StageStat(Open):
    count: int = Field(description="incidents with both checkpoints and a non-negative stage")
    mean_minutes: float | None = Field(description="mean of those, null when count is 0")


class Stages(Open):
    verify: StageStat
    depart: StageStat
    arrive: StageStat
    diagnose: StageStat
    repair: StageStat
    restore: StageStat


class Statistics(Open):
    calls: int
    incidents: int
    restored: int
    open_at_handover: int
    stages: Stages
    avg_restoration_minutes: float | None
    anomalies: int
    closed: int
    restoration_anomalies: int
    arrival: StageStat
    restore_after_arrival: StageStat


class DutyPeriod(Statistics):
    duty_date: str = Field(description="local date on which the period starts (YYYY-MM-DD)")
    start: str = Field(description="RFC 3339, in the duty time zone")
    end: str = Field(description="RFC 3339, exclusive")


class ReportWindow(Open):
    first: str | None = Field(alias="from", description="first duty date reported, or null")
    last: str | None = Field(alias="to", description="last duty date reported, or null")
    as_of: str | None = Field(description="events that occurred by then only, or null")
    known_at: str | None = Field(description="events recorded by then only, or null")


class Report(Open):
    duty_timezone: str
    duty_start: str
    duty_periods: list[DutyPeriod]
    overall: Statistics
    unattributed: int
    rejected_events: int
    duplicate_events: int
    breakdowns: dict[str, dict[str, Statistics]] = Field(
        description="per grid, area and crew: statistics over all the periods")
    window: ReportWindow | None = Field(
        None, description="present when from, to, as_of or known_at was given")


IncidentState = Literal["open", "restored", "closed", "rejected", "merged"]


class Checkpoints(Open):
    call: str | None
    verify: str | None
    depart: str | None
    arrive: str | None
    diagnose: str | None
    repair: str | None
    restore: str | None


class StageMinutes(Open):
    verify: float | None
    depart: float | None
    arrive: float | None
    diagnose: float | None
    repair: float | None
    restore: float | None


class SlaRule(Open):
    state: Literal["ok", "warning", "breach", "met", "late", "anomaly"]
    deadline: str = Field(description="RFC 3339 UTC")
    limit_minutes: float
    minutes_left: float | None = Field(
        description="until the deadline, negative past it; null once the clock stopped")


class SlaRules(Open):
    arrival: SlaRule | None = Field(description="null while not armed (no call yet)")
    restoration: SlaRule | None = Field(description="null while not armed (no arrival yet)")


class IncidentSummary(Open):
    incident_id: str
    state: IncidentState
    duty_date: str | None = Field(description="duty period of its first call; null if none")
    grid: str | None
    area: str | None
    priority: str | None
    customers_affected: int | None
    crew: str | None
    merged_into: str | None
    checkpoints: Checkpoints
    stages_minutes: StageMinutes
    owner: str | None = Field(description="first-contact agent of the earliest call")
    sla: SlaRules = Field(description="the SLA rules as of the moment of the answer")


class IncidentPage(Open):
    total: int = Field(description="incidents matching the filters")
    limit: int
    offset: int
    items: list[IncidentSummary]


class IncidentDetail(Open):
    """What ``dispatch incident ID --format json`` prints."""

    incident_id: str
    outage: bool
    grid: str | None
    area: str | None
    priority: str | None
    crew: str | None
    merged_into: str | None
    checkpoints: Checkpoints
    stages_minutes: StageMinutes
    events: list[dict[str, object]] = Field(description="accepted events, event-time order")


class Alert(Open):
    incident_id: str
    rule: Literal["arrival", "restoration"]
    level: Literal["warning", "breach"]
    start: str
    deadline: str
    limit_minutes: float
    grid: str | None
    area: str | None
    priority: str | None
    owner: str | None


class StateCounts(Open):
    ok: int
    warning: int
    breach: int
    met: int
    late: int
    anomaly: int


class AlertCounts(Open):
    arrival: StateCounts
    restoration: StateCounts


class Alerts(Open):
    as_of: str = Field(description="RFC 3339 UTC")
    active: list[Alert] = Field(description="by deadline, then incident id, then rule")
    counts: AlertCounts


class HandoverSheet(Open):
    """What ``dispatch handover DATE --format json`` prints (docs/accountability.md)."""

    duty_date: str
    start: str
    end: str


class Status(Open):
    change_seq: int = Field(description="newest change sequence (the stream's ids)")
    pruned_through: int = Field(description="changes up to this sequence are no longer kept")
    retention_days: float
    duty_timezone: str
    duty_start: str
    current_duty_date: str = Field(description="duty date of the period running now")
    stage_norms_minutes: dict[str, float]
    live: bool = Field(description="the change feed is following the store")
    subscribers: int


class Error(Open):
    error: str


class FieldError(Open):
    field: str
    message: str


class ValidationFailure(Open):
    error: str
    fields: list[FieldError]


class Session(Open):
    token: str = Field(min_length=1)
