"""The write side's decision rule (dispatch.commands) against a table of every
command x incident state x role, written out by hand from the contract."""

from __future__ import annotations

from typing import Any

import pytest

from dispatch.commands import (
    Accepted,
    Command,
    IncidentState,
    Refused,
    decide_call,
    decide_event,
    decide_roster,
)
from projections.crews import CrewState
from projections.incident import Fact, Incident, apply

NOW = "2026-07-01T10:00:00+08:00"
MIN = 60_000_000
INC = "INC-1"

STEPS: dict[str, list[tuple[str, str | None]]] = {
    # state -> the events (type, crew) that produced it, in order
    "open": [("call.received", None)],
    "verified": [("call.received", None), ("call.verified", None)],
    "dispatched": [("call.received", None), ("crew.dispatched", "C1")],
    "en_route": [("call.received", None), ("crew.dispatched", "C1"),
                 ("crew.departed", "C1")],
    "on_site": [("call.received", None), ("crew.dispatched", "C1"), ("crew.departed", "C1"),
                ("crew.arrived", "C1")],
    "restored": [("call.received", None), ("crew.dispatched", "C1"), ("crew.arrived", "C1"),
                 ("power.restored", None)],
    "rejected": [("call.received", None), ("call.rejected", None)],
    "merged": [("call.received", None), ("call.merged", None)],
    "closed": [("call.received", None), ("crew.dispatched", "C1"), ("crew.arrived", "C1"),
               ("power.restored", None), ("incident.closed", None)],
}
STATES = [*STEPS, "unknown"]


def state_of(name: str) -> IncidentState | None:
    if name == "unknown":
        return None
    incident = Incident(INC)
    dispatched = set()
    for minute, (kind, crew) in enumerate(STEPS[name]):
        fact = Fact(f"e{minute}", kind, INC, minute * MIN, "G1", "urban", "normal", crew=crew,
                    into="INC-0" if kind == "call.merged" else None)
        apply(incident, fact)
        if kind == "crew.dispatched" and crew:
            dispatched.add(crew)
    return IncidentState(incident, frozenset(dispatched))


def crews_for(state: str) -> dict[str, CrewState]:
    busy_here = state in ("dispatched", "en_route", "on_site")
    c1_status = {"dispatched": "dispatched", "en_route": "en_route", "on_site": "on_site"}
    return {
        "C1": CrewState("C1", "G1", ("overhead",), c1_status[state] if busy_here else "available",  # type: ignore[arg-type]
                        INC if busy_here else None),
        "C2": CrewState("C2", "G1", (), "available", None),
        "C3": CrewState("C3", "G2", (), "on_site", "INC-OTHER"),
    }


COMMANDS: dict[str, Command] = {
    "verify": Command("call.verified", {"verified_by": "D-1"}),
    "reject": Command("call.rejected", {"reason": "customer side"}),
    "merge": Command("call.merged", {"into_incident_id": "INC-0"}),
    "dispatch C1": Command("crew.dispatched", {"crew": "C1"}),
    "dispatch C2": Command("crew.dispatched", {"crew": "C2", "eta_minutes": 20}),
    "dispatch C3 (busy)": Command("crew.dispatched", {"crew": "C3"}),
    "dispatch C9 (unknown)": Command("crew.dispatched", {"crew": "C9"}),
    "depart C1": Command("crew.departed", {"crew": "C1"}),
    "depart C2": Command("crew.departed", {"crew": "C2"}),
    "arrive C1": Command("crew.arrived", {"crew": "C1"}),
    "arrive C2": Command("crew.arrived", {"crew": "C2"}),
    "diagnose": Command("fault.diagnosed", {"cause": "tree"}),
    "repair": Command("repair.completed"),
    "restore": Command("power.restored", {"customers_restored": 3}),
    "restore remotely": Command("power.restored", {"remote_switching": True}),
    "close": Command("incident.closed", {"satisfied": True}),
    "second call here": Command("call.received", {"grid": "G1", "area": "urban"}),
    "roster here": Command("crew.rostered", {"crew": "C5", "grid": "G1"}),
    "unknown type": Command("crew.teleported", {"crew": "C1"}),
    "reject without reason": Command("call.rejected", {}),
    "dispatch without crew": Command("crew.dispatched", {}),
    "naive time": Command("call.verified", {}, occurred_at="2026-07-01T09:00:00"),
}

ENDED = ("rejected", "merged", "closed")
NOT_DISPATCHED = ("open", "verified", "rejected", "merged")
ARRIVED = ("on_site", "restored", "closed")
INVALID = ("second call here", "roster here", "unknown type", "reject without reason",
           "dispatch without crew", "naive time")

# For a dispatcher: 201 unless listed here (state -> command -> status).
DISPATCHER_REFUSALS: dict[str, dict[str, int]] = {
    **{s: {**{c: 409 for c in COMMANDS}, **{c: 422 for c in INVALID}} for s in ENDED},
    **{s: {"dispatch C3 (busy)": 409, "dispatch C9 (unknown)": 409, "depart C1": 409,
           "depart C2": 409, "arrive C1": 409, "arrive C2": 409, "restore": 409,
           **{c: 422 for c in INVALID}} for s in ("open", "verified")},
    **{s: {"dispatch C3 (busy)": 409, "dispatch C9 (unknown)": 409, "depart C2": 409,
           "arrive C2": 409, "restore": 409, **{c: 422 for c in INVALID}}
       for s in ("dispatched", "en_route")},
    **{s: {"dispatch C3 (busy)": 409, "dispatch C9 (unknown)": 409, "depart C2": 409,
           "arrive C2": 409, **{c: 422 for c in INVALID}} for s in ("on_site", "restored")},
    "unknown": {c: 404 for c in COMMANDS},
}
CREW_CAN = ("depart C1", "arrive C1", "diagnose", "repair", "restore", "restore remotely")


def expected(role: str, state: str, command: str) -> int:
    if role == "viewer":
        return 403
    if role == "dispatcher":
        return DISPATCHER_REFUSALS[state].get(command, 201)
    own = role.removeprefix("crew:")
    kind = COMMANDS[command].type
    crew_kinds = ("crew.departed", "crew.arrived", "fault.diagnosed", "repair.completed",
                  "power.restored")
    if kind not in crew_kinds:
        return 403
    if state == "unknown":
        return 404
    if command in INVALID:
        return 422
    named = COMMANDS[command].data.get("crew")
    if (named is not None and named != own) or own != "C1" or state in NOT_DISPATCHED:
        return 403  # only C1 is ever dispatched in this table
    if state in ENDED:
        return 409
    if command == "restore" and state not in ARRIVED:
        return 409
    assert command in CREW_CAN
    return 201


ROLES = ("viewer", "dispatcher", "crew:C1", "crew:C2")
CASES = [(r, s, c) for r in ROLES for s in STATES for c in COMMANDS]


@pytest.mark.parametrize(("role", "state", "command"), CASES,
                         ids=[f"{r}|{s}|{c}" for r, s, c in CASES])
def test_every_command_in_every_state_for_every_role(role: str, state: str,
                                                     command: str) -> None:
    decision = decide_event(COMMANDS[command], role, incident_id=INC, state=state_of(state),
                            crews=crews_for(state), event_id="ev-new", now=NOW)
    want = expected(role, state, command)
    if want == 201:
        assert isinstance(decision, Accepted), decision
        event: Any = decision.event
        assert (event.event_id, event.incident_id, event.type) == ("ev-new", INC,
                                                                   COMMANDS[command].type)
        assert event.actor == role
        assert event.source == ("dispatcher" if role == "dispatcher" else "crew-app")
        assert event.occurred_at.isoformat() == "2026-07-01T10:00:00+08:00"
    else:
        assert isinstance(decision, Refused), decision
        assert (decision.status, bool(decision.reason)) == (want, True), decision


def test_a_refusal_says_why() -> None:
    busy = decide_event(COMMANDS["dispatch C3 (busy)"], "dispatcher", incident_id=INC,
                        state=state_of("open"), crews=crews_for("open"), event_id="x", now=NOW)
    assert busy == Refused(409, "crew C3 is busy (on_site) on incident INC-OTHER")
    bad = decide_event(COMMANDS["naive time"], "dispatcher", incident_id=INC,
                       state=state_of("open"), crews={}, event_id="x", now=NOW)
    assert bad == Refused(422, "occurred_at: timestamp has no UTC offset")
    other = decide_event(COMMANDS["arrive C1"], "crew:C2", incident_id=INC,
                         state=state_of("dispatched"), crews={}, event_id="x", now=NOW)
    assert other == Refused(403, "crew C2 may not report for crew C1")


@pytest.mark.parametrize("role", ROLES)
def test_only_dispatchers_take_calls_and_roster_crews(role: str) -> None:
    call = decide_call(Command("call.received", {"grid": "G1", "area": "rural"}), role,
                       incident_id="INC-9", event_id="c1", now=NOW)
    entry = decide_roster(Command("crew.rostered", {"crew": "C5", "grid": "G1",
                                                    "skills": ["cable"]}),
                          role, event_id="r1", now=NOW)
    if role == "dispatcher":
        assert isinstance(call, Accepted) and call.event.incident_id == "INC-9"
        assert isinstance(entry, Accepted) and entry.event.incident_id is None
        assert b'"incident_id"' not in entry.raw
    else:
        assert isinstance(call, Refused) and call.status == 403
        assert isinstance(entry, Refused) and entry.status == 403


def test_invalid_calls_and_roster_entries_are_422_naming_the_field() -> None:
    call = decide_call(Command("call.received", {"grid": "G1", "area": "mars"}), "dispatcher",
                       incident_id="INC-9", event_id="c1", now=NOW)
    assert isinstance(call, Refused) and call.status == 422 and call.reason.startswith(
        "data.area")
    entry = decide_roster(Command("crew.rostered", {"crew": "C5"}), "dispatcher",
                          event_id="r1", now=NOW)
    assert isinstance(entry, Refused) and entry.status == 422 and entry.reason.startswith(
        "data.grid")


def test_data_that_cannot_be_an_event_is_422_not_an_error() -> None:
    huge = decide_roster(Command("crew.rostered", {"crew": "C5", "grid": "G1",
                                                   "x": 10**30}), "dispatcher",
                         event_id="r1", now=NOW)
    assert isinstance(huge, Refused) and huge.status == 422
    assert huge.reason.startswith("data: cannot be stored as an event")
