"""The incident timeline: a pure, order-independent fold of events.

Contract:
- ``apply(incident, fact)`` changes only ``incident``; it does no I/O;
- the resulting state depends only on the *set* of facts applied, never on
  their order: every field is a minimum over the facts (checkpoint times are
  the earliest ``occurred_at``; attributes come from the fact with the smallest
  ``(time, values...)`` tuple, so ties break on the values themselves);
- duplicates must be filtered before ``apply`` (by event id): applying the same
  fact twice leaves the state unchanged anyway, but counters elsewhere would not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from projections.duty import to_micros
from schemas.events import Envelope

CHECKPOINTS: tuple[str, ...] = (
    "call", "verify", "depart", "arrive", "diagnose", "repair", "restore",
)
"""Checkpoint names in order; ``Incident.times[k]`` is checkpoint k's time."""
# Indexes into ``Incident.times``: t0 .. t6 of docs/kpis.md.
CALL = CHECKPOINTS.index("call")
VERIFY = CHECKPOINTS.index("verify")
DEPART = CHECKPOINTS.index("depart")
ARRIVE = CHECKPOINTS.index("arrive")
DIAGNOSE = CHECKPOINTS.index("diagnose")
REPAIR = CHECKPOINTS.index("repair")
RESTORE = CHECKPOINTS.index("restore")
STAGES: tuple[str, ...] = CHECKPOINTS[1:]
"""Stage k lasts from checkpoint k-1 to checkpoint k."""

CHECKPOINT_OF_TYPE: dict[str, int] = {
    "call.received": CALL,
    "call.verified": VERIFY,
    "crew.departed": DEPART,
    "crew.arrived": ARRIVE,
    "fault.diagnosed": DIAGNOSE,
    "repair.completed": REPAIR,
    "power.restored": RESTORE,
}


class Fact(NamedTuple):
    """What the fold needs from one event, with time as µs since the epoch."""

    event_id: str
    type: str
    incident_id: str
    at: int
    grid: str | None = None
    area: str | None = None
    priority: str | None = None
    customers: int | None = None
    crew: str | None = None
    into: str | None = None
    agent: str | None = None


def fact_of(event: Envelope) -> Fact:
    """Extract the fold's view of a validated event.

    Attribute access is spelled out per type: probing pydantic models with
    ``getattr(..., default)`` costs microseconds per miss on the hot path.
    """
    kind: str = event.type  # type: ignore[attr-defined]
    at = to_micros(event.occurred_at)
    data: Any = event.data  # type: ignore[attr-defined]
    if kind == "call.received":
        return Fact(event.event_id, kind, event.incident_id, at, data.grid, data.area,
                    data.priority, data.customers_affected, agent=data.agent)
    if kind in _CREW_TYPES:
        return Fact(event.event_id, kind, event.incident_id, at, crew=data.crew)
    if kind == "call.merged":
        return Fact(event.event_id, kind, event.incident_id, at, into=data.into_incident_id)
    return Fact(event.event_id, kind, event.incident_id, at)


_CREW_TYPES = frozenset({"crew.dispatched", "crew.departed", "crew.arrived"})


def _earliest(current: int | None, at: int) -> int:
    return at if current is None or at < current else current


@dataclass(slots=True)
class Incident:
    """Read model of one incident: earliest checkpoints plus attributes."""

    incident_id: str
    times: list[int | None] = field(default_factory=lambda: [None] * len(CHECKPOINTS))
    grid: str | None = None
    area: str | None = None
    priority: str | None = None
    customers: int | None = None
    dispatched_at: int | None = None
    dispatched_crew: str | None = None
    arrived_crew: str | None = None
    rejected_at: int | None = None
    merged_at: int | None = None
    merged_into: str | None = None
    closed_at: int | None = None
    owner: str | None = None
    """The first-contact agent of the earliest call (who owns the incident)."""

    @property
    def is_outage(self) -> bool:
        """False once a ``call.rejected`` or ``call.merged`` event was seen."""
        return self.rejected_at is None and self.merged_at is None

    @property
    def crew(self) -> str | None:
        """The crew that arrived first, else the crew dispatched first."""
        return self.arrived_crew if self.arrived_crew is not None else self.dispatched_crew

    def copy(self) -> Incident:
        return Incident(
            self.incident_id, list(self.times), self.grid, self.area, self.priority,
            self.customers, self.dispatched_at, self.dispatched_crew, self.arrived_crew,
            self.rejected_at, self.merged_at, self.merged_into, self.closed_at, self.owner,
        )


def apply(incident: Incident, fact: Fact) -> None:
    """Fold one (non-duplicate) fact into ``incident`` (see module contract)."""
    at = fact.at
    checkpoint = CHECKPOINT_OF_TYPE.get(fact.type)
    if checkpoint is not None:
        times = incident.times
        previous = times[checkpoint]
        if checkpoint == CALL:
            _take_call_attributes(incident, fact, previous)
        elif checkpoint == ARRIVE and fact.crew is not None and (
                previous is None or (at, fact.crew) < (previous, incident.arrived_crew or "")):
            incident.arrived_crew = fact.crew
        if previous is None or at < previous:
            times[checkpoint] = at
    elif fact.type == "crew.dispatched":
        current = incident.dispatched_at
        if current is None or (at, fact.crew or "") < (current, incident.dispatched_crew or ""):
            incident.dispatched_at = at
            incident.dispatched_crew = fact.crew
    elif fact.type == "call.rejected":
        incident.rejected_at = _earliest(incident.rejected_at, at)
    elif fact.type == "call.merged":
        current = incident.merged_at
        if current is None or (at, fact.into or "") < (current, incident.merged_into or ""):
            incident.merged_at = at
            incident.merged_into = fact.into
    elif fact.type == "incident.closed":
        incident.closed_at = _earliest(incident.closed_at, at)


def _call_key(at: int, grid: str | None, area: str | None, priority: str | None,
              customers: int | None, owner: str | None) -> tuple[int, str, str, str, int, str]:
    return (at, grid or "", area or "", priority or "", -1 if customers is None else customers,
            owner or "")


def _take_call_attributes(incident: Incident, fact: Fact, t0: int | None) -> None:
    new = _call_key(fact.at, fact.grid, fact.area, fact.priority, fact.customers, fact.agent)
    if t0 is not None:
        old = _call_key(t0, incident.grid, incident.area, incident.priority, incident.customers,
                        incident.owner)
        if new >= old:
            return
    incident.grid = fact.grid
    incident.area = fact.area
    incident.priority = fact.priority
    incident.customers = fact.customers
    incident.owner = fact.agent
