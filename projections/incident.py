"""The incident timeline: a pure, order-independent fold of events.

Contract:
- ``apply(incident, fact)`` changes only ``incident``; it does no I/O;
- the resulting state depends only on the *set* of facts applied, never on
  their order: every field is a minimum, a maximum or a union over the facts
  (checkpoint times are the earliest ``occurred_at``; grid, area, priority,
  customers and the owner (first-contact agent) come from the earliest
  ``call.received``, ties broken by the smallest ``event_id``; crews from the
  smallest ``(time, crew)``; callback outcomes are flags that are only ever set;
  the arrived crews are a set);
- duplicates must be filtered before ``apply`` (by event id): applying the same
  fact twice leaves the state unchanged anyway, but counters elsewhere would not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from projections.duty import to_micros
from schemas import plain
from schemas.events import Envelope
from schemas.lean import LeanEvent
from schemas.plain import PlainEvent

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
    """``call.received``: the first-contact agent ("" counts as none)."""
    reached: bool | None = None
    satisfied: bool | None = None
    team: str | None = None
    leader: str | None = None
    members: tuple[str, ...] | None = None
    recorded: int | None = None
    """``recorded_at`` in µs, when the event carries one (for known-at questions)."""


DUTY_PREFIX = "duty."
"""Types that concern the duty service, not an incident: their ``incident_id`` is ""."""

CALLED_BACK, REACHED, SATISFIED, DISSATISFIED = 1, 2, 4, 8
"""Bits of ``Incident.callbacks``: at least one callback / reached / satisfied /
reached and not satisfied."""


def fact_of(event: Envelope) -> Fact:
    """Extract the fold's view of a validated event.

    Attribute access is spelled out per type: probing pydantic models with
    ``getattr(..., default)`` costs microseconds per miss on the hot path.
    """
    kind: str = event.type  # type: ignore[attr-defined]
    at = to_micros(event.occurred_at)
    data: Any = event.data  # type: ignore[attr-defined]
    recorded_at = event.recorded_at
    recorded = None if recorded_at is None else to_micros(recorded_at)
    if kind == "call.received":
        return Fact(event.event_id, kind, event.incident_id, at, data.grid, data.area,
                    data.priority, data.customers_affected, agent=data.agent or None,
                    recorded=recorded)
    if kind in _CREW_TYPES:
        return Fact(event.event_id, kind, event.incident_id, at, crew=data.crew,
                    recorded=recorded)
    if kind == "call.merged":
        return Fact(event.event_id, kind, event.incident_id, at, into=data.into_incident_id,
                    recorded=recorded)
    if kind == "customer.callback":
        return Fact(event.event_id, kind, event.incident_id, at, agent=data.agent or None,
                    reached=data.reached, satisfied=data.satisfied, recorded=recorded)
    if kind == "duty.shift_started":
        members = tuple(data.members) if data.members is not None else None
        return Fact(event.event_id, kind, "", at, team=data.team, leader=data.leader,
                    members=members, recorded=recorded)
    if kind == "crew.rostered":
        # No incident: the fold skips it; the event log keeps it under incident "".
        return Fact(event.event_id, kind, "", at, grid=data.grid, crew=data.crew,
                    recorded=recorded)
    return Fact(event.event_id, kind, event.incident_id or "", at, recorded=recorded)


_CREW_TYPES = frozenset({"crew.dispatched", "crew.departed", "crew.arrived"})


def fact_of_lean(event: LeanEvent) -> Fact:
    """``fact_of`` for an event the lean check accepted (``schemas.lean``): the same
    fact pydantic's model would give (tests/unit/test_lean.py). The tuples are built
    whole, in ``Fact``'s field order: keyword construction costs a Python call."""
    event_id, kind, incident_id, at, recorded, data = event
    get = data.get
    if kind == "call.received":
        return _new(Fact, (event_id, kind, incident_id, at, data["grid"], data["area"],
                           get("priority", "normal"), get("customers_affected"), None, None,
                           get("agent") or None, None, None, None, None, None, recorded))
    if kind in _CREW_TYPES:
        return _new(Fact, (event_id, kind, incident_id, at, None, None, None, None,
                           data["crew"], None, None, None, None, None, None, None, recorded))
    if kind == "call.merged":
        return _new(Fact, (event_id, kind, incident_id, at, None, None, None, None, None,
                           data["into_incident_id"], None, None, None, None, None, None,
                           recorded))
    if kind == "customer.callback":
        return _new(Fact, (event_id, kind, incident_id, at, None, None, None, None, None,
                           None, get("agent") or None, data["reached"], get("satisfied"),
                           None, None, None, recorded))
    if kind == "duty.shift_started":
        members = get("members")
        return Fact(event_id, kind, "", at, team=data["team"], leader=data["leader"],
                    members=tuple(members) if members is not None else None,
                    recorded=recorded)
    if kind == "crew.rostered":
        return Fact(event_id, kind, "", at, grid=data["grid"], crew=data["crew"],
                    recorded=recorded)
    return _new(Fact, (event_id, kind, incident_id or "", at, None, None, None, None, None,
                       None, None, None, None, None, None, None, recorded))


_new = tuple.__new__
_intern = sys.intern


def fact_of_plain(event: PlainEvent, at: int, recorded: int | None) -> Fact:
    """``fact_of`` for an event the typed decode accepted (``schemas.plain.parse_plain``
    and the instants it gives): the same fact pydantic's model would give
    (tests/unit/test_lean.py). Incident ids are interned: an incident's events share
    one string once folded."""
    return _PLAIN_FACTS[type(event)](event, at, recorded)


def _call_received(e: plain.CallReceivedPlain, at: int, recorded: int | None) -> Fact:
    d = e.data
    return _new(Fact, (e.event_id, "call.received", _intern(e.incident_id), at, d.grid, d.area,
                       d.priority, d.customers_affected, None, None, d.agent or None, None,
                       None, None, None, None, recorded))


def _crew(kind: str) -> Callable[[Any, int, int | None], Fact]:
    def crew_fact(e: plain.CrewArrivedPlain, at: int, recorded: int | None) -> Fact:
        return _new(Fact, (e.event_id, kind, _intern(e.incident_id), at, None, None, None,
                           None, e.data.crew, None, None, None, None, None, None, None,
                           recorded))
    return crew_fact


def _merged(e: plain.CallMergedPlain, at: int, recorded: int | None) -> Fact:
    return _new(Fact, (e.event_id, "call.merged", _intern(e.incident_id), at, None, None,
                       None, None, None, e.data.into_incident_id, None, None, None, None,
                       None, None, recorded))


def _callback(e: plain.CustomerCallbackPlain, at: int, recorded: int | None) -> Fact:
    d = e.data
    return _new(Fact, (e.event_id, "customer.callback", _intern(e.incident_id), at, None,
                       None, None, None, None, None, d.agent or None, d.reached, d.satisfied,
                       None, None, None, recorded))


def _shift(e: plain.ShiftStartedPlain, at: int, recorded: int | None) -> Fact:
    d = e.data
    return _new(Fact, (e.event_id, "duty.shift_started", "", at, None, None, None, None, None,
                       None, None, None, None, d.team, d.leader, d.members, recorded))


def _rostered(e: plain.CrewRosteredPlain, at: int, recorded: int | None) -> Fact:
    return _new(Fact, (e.event_id, "crew.rostered", "", at, e.data.grid, None, None, None,
                       e.data.crew, None, None, None, None, None, None, None, recorded))


def _plain_fact(kind: str) -> Callable[[Any, int, int | None], Fact]:
    def bare_fact(e: plain.RepairCompletedPlain, at: int, recorded: int | None) -> Fact:
        return _new(Fact, (e.event_id, kind, _intern(e.incident_id), at, None, None, None,
                           None, None, None, None, None, None, None, None, None, recorded))
    return bare_fact


_PLAIN_FACTS: dict[type, Callable[[Any, int, int | None], Fact]] = {
    plain.CallReceivedPlain: _call_received,
    plain.CallVerifiedPlain: _plain_fact("call.verified"),
    plain.CallRejectedPlain: _plain_fact("call.rejected"),
    plain.CallMergedPlain: _merged,
    plain.CrewDispatchedPlain: _crew("crew.dispatched"),
    plain.CrewDepartedPlain: _crew("crew.departed"),
    plain.CrewArrivedPlain: _crew("crew.arrived"),
    plain.FaultDiagnosedPlain: _plain_fact("fault.diagnosed"),
    plain.RepairCompletedPlain: _plain_fact("repair.completed"),
    plain.PowerRestoredPlain: _plain_fact("power.restored"),
    plain.IncidentClosedPlain: _plain_fact("incident.closed"),
    plain.CustomerCallbackPlain: _callback,
    plain.ShiftStartedPlain: _shift,
    plain.CrewRosteredPlain: _rostered,
}
"""One builder per event type: the tuples are built whole, in ``Fact``'s order."""


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
    """First-contact agent of the earliest call (首问负责)."""
    call_event_id: str | None = None
    """``event_id`` of the call that t0 and the call attributes come from (tie rule)."""
    callbacks: int = 0
    """``CALLED_BACK | REACHED | SATISFIED | DISSATISFIED`` bits seen so far."""
    arrived_crews: tuple[str, ...] = ()
    """Distinct crews over the ``crew.arrived`` events, sorted."""

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
            self.call_event_id, self.callbacks, self.arrived_crews,
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
        elif checkpoint == ARRIVE and fact.crew is not None:
            if previous is None or (at, fact.crew) < (previous, incident.arrived_crew or ""):
                incident.arrived_crew = fact.crew
            if fact.crew not in incident.arrived_crews:
                incident.arrived_crews = tuple(sorted((*incident.arrived_crews, fact.crew)))
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
    elif fact.type == "customer.callback":
        flags = CALLED_BACK
        if fact.reached:
            flags |= REACHED
            if fact.satisfied is True:
                flags |= SATISFIED
            elif fact.satisfied is False:
                flags |= DISSATISFIED
        incident.callbacks |= flags


def _take_call_attributes(incident: Incident, fact: Fact, t0: int | None) -> None:
    """The earliest call wins; equal times go to the smallest ``event_id``."""
    if t0 is not None and (fact.at, fact.event_id) >= (t0, incident.call_event_id or ""):
        return
    incident.grid = fact.grid
    incident.area = fact.area
    incident.priority = fact.priority
    incident.customers = fact.customers
    incident.owner = fact.agent
    incident.call_event_id = fact.event_id
