"""Commands become events: the write side's decision rule, a pure function.

A command is what a person asks for now (a call-taker takes a call, a
dispatcher sends a crew, a crew reports its arrival). Unlike events from files
and Kafka, which are facts accepted in any order, a command is checked against
the current state first. Contract of ``decide_call``, ``decide_roster`` and
``decide_event``: given the command, the caller's role and the state, return
``Accepted`` (the complete event to write, already validated as an event) or
``Refused`` (an HTTP status and a one-line reason), in this order of checks:

- 403 outside the role: viewers may not write; a ``crew:<id>`` role may only
  report ``crew.departed``, ``crew.arrived``, ``fault.diagnosed``,
  ``repair.completed`` and ``power.restored``, only for its own crew and only
  on an incident its crew is dispatched to; dispatchers may do everything;
- 404 the incident does not exist (incident events only);
- 422 the event would not be valid (the message names the field at fault);
- 409 it cannot be true now: any command on a rejected, merged or closed
  incident; dispatching an unknown crew or one busy on another incident;
  departing or arriving with a crew not dispatched to the incident; power
  restored before any crew arrived, unless ``data.remote_switching`` is true.

No I/O: the event id and "now" are inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from projections.crews import CrewState
from projections.incident import ARRIVE, Incident
from schemas.events import Envelope
from schemas.parsing import InvalidEvent, parse_event

VIEWER = "viewer"
DISPATCHER = "dispatcher"
CREW_PREFIX = "crew:"
CREW_REPORTS = frozenset({"crew.departed", "crew.arrived", "fault.diagnosed",
                          "repair.completed", "power.restored"})
"""What a crew's own token may post."""
INCIDENT_COMMANDS = frozenset({"call.verified", "call.rejected", "call.merged",
                               "crew.dispatched", *CREW_REPORTS, "incident.closed"})
"""Types accepted by ``decide_event`` (a new call is ``decide_call``)."""


@dataclass(frozen=True, slots=True)
class Command:
    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: str | None = None
    """RFC 3339 text as sent; None means now."""


@dataclass(frozen=True, slots=True)
class IncidentState:
    """What the decision needs to know of one incident."""

    incident: Incident
    dispatched: frozenset[str] = frozenset()
    """Crews that a ``crew.dispatched`` event sent to it."""


@dataclass(frozen=True, slots=True)
class Accepted:
    event: Envelope
    raw: bytes
    """The event as written to the log and published."""


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    reason: str


Decision = Accepted | Refused


def crew_of(role: str) -> str | None:
    """The crew id of a ``crew:<id>`` role, else None."""
    return role.removeprefix(CREW_PREFIX) if role.startswith(CREW_PREFIX) else None


def source_of(role: str) -> str:
    return "crew-app" if role.startswith(CREW_PREFIX) else "dispatcher"


def decide_call(command: Command, role: str, *, incident_id: str, event_id: str,
                now: str) -> Decision:
    """A new incident and its first ``call.received`` (dispatchers only)."""
    if role != DISPATCHER:
        return Refused(403, f"role {role} may not take calls")
    return _build(command, role, "call.received", incident_id, event_id, now)


def decide_roster(command: Command, role: str, *, event_id: str, now: str) -> Decision:
    """A ``crew.rostered`` entry (dispatchers only)."""
    if role != DISPATCHER:
        return Refused(403, f"role {role} may not roster crews")
    return _build(command, role, "crew.rostered", None, event_id, now)


def decide_event(command: Command, role: str, *, incident_id: str,
                 state: IncidentState | None, crews: Mapping[str, CrewState],
                 event_id: str, now: str) -> Decision:
    """Any other event of an existing incident (module contract)."""
    own_crew = crew_of(role)
    if role == VIEWER or (role != DISPATCHER and own_crew is None):
        return Refused(403, f"role {role} may only read")
    if own_crew is not None and command.type not in CREW_REPORTS:
        return Refused(403, f"a crew may not post {command.type}")
    if state is None:
        return Refused(404, f"no incident {incident_id!r}")
    if command.type not in INCIDENT_COMMANDS:
        where = ("POST /api/incidents" if command.type == "call.received" else
                 "POST /api/crews" if command.type == "crew.rostered" else None)
        hint = f" (use {where})" if where else ""
        return Refused(422, f"type: {command.type!r} is not an incident command{hint}")
    decision = _build(command, role, command.type, incident_id, event_id, now)
    if isinstance(decision, Refused):
        return decision
    data: Any = decision.event.data  # type: ignore[attr-defined]
    named: str | None = getattr(data, "crew", None)
    if own_crew is not None:
        if named is not None and named != own_crew:
            return Refused(403, f"crew {own_crew} may not report for crew {named}")
        if own_crew not in state.dispatched:
            return Refused(403, f"crew {own_crew} is not dispatched to {incident_id}")
    return _conflict(command.type, data, named, incident_id, state, crews) or decision


def _conflict(kind: str, data: Any, crew: str | None, incident_id: str,
              state: IncidentState, crews: Mapping[str, CrewState]) -> Refused | None:
    incident = state.incident
    if incident.rejected_at is not None:
        return Refused(409, f"incident {incident_id} was rejected")
    if incident.merged_at is not None:
        return Refused(409, f"incident {incident_id} was merged into {incident.merged_into}")
    if incident.closed_at is not None:
        return Refused(409, f"incident {incident_id} is closed")
    if kind == "crew.dispatched" and crew is not None:
        known = crews.get(crew)
        if known is None:
            return Refused(409, f"crew {crew} is not rostered")
        if known.status != "available" and known.incident_id != incident_id:
            return Refused(409, f"crew {crew} is busy ({known.status}) on "
                                f"incident {known.incident_id}")
    if kind in ("crew.departed", "crew.arrived") and crew not in state.dispatched:
        return Refused(409, f"crew {crew} is not dispatched to {incident_id}")
    if (kind == "power.restored" and incident.times[ARRIVE] is None
            and getattr(data, "remote_switching", None) is not True):
        return Refused(409, "power.restored before any crew arrived "
                            "(set data.remote_switching to true for a remote switch)")
    return None


def _build(command: Command, role: str, kind: str, incident_id: str | None, event_id: str,
           now: str) -> Decision:
    if not isinstance(command.data, Mapping):
        return Refused(422, "data: must be an object")
    event: dict[str, Any] = {
        "event_id": event_id, "type": kind, "occurred_at": command.occurred_at or now,
        "recorded_at": now, "source": source_of(role), "actor": role,
        "data": dict(command.data)}
    if incident_id is not None:
        event["incident_id"] = incident_id
    try:
        raw = orjson.dumps(event)
    except orjson.JSONEncodeError as exc:  # e.g. integers beyond 64 bits, lone surrogates
        return Refused(422, f"data: cannot be stored as an event ({exc})")
    try:
        parsed = parse_event(raw)
    except InvalidEvent as exc:
        return Refused(422, exc.reason)
    return Accepted(parsed, raw)
