"""Crew roster and status projection (projections.crews) on hand-made facts,
and order independence checked with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.crews import (
    RosterEntry,
    arrivals_between,
    crew_statuses,
    crews_at,
    roster,
    roster_entry,
)
from projections.incident import Fact, Incident, apply
from schemas import parse_event

MIN = 60_000_000


def entry(crew: str, grid: str = "G1", at: int = 0, event_id: str = "r") -> RosterEntry:
    return RosterEntry(crew, grid, ("overhead",), at, event_id + crew)


def fold(facts: list[Fact]) -> dict[str, Incident]:
    incidents: dict[str, Incident] = {}
    for fact in facts:
        apply(incidents.setdefault(fact.incident_id, Incident(fact.incident_id)), fact)
    return incidents


def crew_fact(kind: str, incident: str, crew: str, minute: int) -> Fact:
    return Fact(f"{kind}-{incident}-{crew}-{minute}", kind, incident, minute * MIN, crew=crew)


def call(incident: str, minute: int = 0) -> Fact:
    return Fact(f"call-{incident}", "call.received", incident, minute * MIN, "G1", "urban",
                "normal")


def end(kind: str, incident: str, minute: int) -> Fact:
    return Fact(f"{kind}-{incident}", kind, incident, minute * MIN)


def test_latest_roster_entry_wins_whatever_the_order() -> None:
    old, new = entry("C1", "G1", 1, "a"), entry("C1", "G2", 2, "a")
    assert roster([old, new])["C1"].grid == "G2"
    assert roster([new, old])["C1"].grid == "G2"
    tie_small, tie_big = entry("C2", "G1", 5, "a"), entry("C2", "G9", 5, "b")
    assert roster([tie_big, tie_small])["C2"].grid == "G9"


def test_roster_entry_of_an_event() -> None:
    event = parse_event('{"event_id": "r1", "type": "crew.rostered", '
                        '"occurred_at": "2026-07-01T08:00:00+08:00", '
                        '"data": {"crew": "C7", "grid": "URB-2", "skills": ["cable"]}}')
    got = roster_entry(event)  # type: ignore[arg-type]
    assert (got.crew, got.grid, got.skills, got.event_id) == ("C7", "URB-2", ("cable",), "r1")


def test_status_follows_the_crew_through_an_incident() -> None:
    crews = roster([entry("C1"), entry("C2")])
    facts = [call("I1")]

    def status() -> tuple[str, str | None]:
        state = crew_statuses(crews, facts, fold(facts))["C1"]
        return state.status, state.incident_id

    assert status() == ("available", None)
    facts.append(crew_fact("crew.dispatched", "I1", "C1", 1))
    assert status() == ("dispatched", "I1")
    facts.append(crew_fact("crew.departed", "I1", "C1", 2))
    assert status() == ("en_route", "I1")
    facts.append(crew_fact("crew.arrived", "I1", "C1", 3))
    assert status() == ("on_site", "I1")
    facts.append(end("power.restored", "I1", 9))
    assert status() == ("available", None)
    assert crew_statuses(crews, facts, fold(facts))["C2"].status == "available"


def test_rejected_merged_and_closed_incidents_free_their_crews() -> None:
    crews = roster([entry("C1"), entry("C2"), entry("C3")])
    facts = [call("I1"), call("I2"), call("I3"),
             crew_fact("crew.dispatched", "I1", "C1", 1), end("call.rejected", "I1", 2),
             crew_fact("crew.dispatched", "I2", "C2", 1), end("call.merged", "I2", 2),
             crew_fact("crew.dispatched", "I3", "C3", 1), end("incident.closed", "I3", 2)]
    facts[6] = Fact("m", "call.merged", "I2", 2 * MIN, into="I1")
    states = crew_statuses(crews, facts, fold(facts))
    assert {s.status for s in states.values()} == {"available"}


def test_the_latest_active_assignment_decides() -> None:
    crews = roster([entry("C1")])
    facts = [call("I1"), call("I2"), crew_fact("crew.dispatched", "I1", "C1", 1),
             crew_fact("crew.arrived", "I1", "C1", 2), crew_fact("crew.dispatched", "I2", "C1", 5)]
    state = crew_statuses(crews, facts, fold(facts))["C1"]
    assert (state.status, state.incident_id) == ("dispatched", "I2")
    facts.append(end("power.restored", "I2", 6))
    state = crew_statuses(crews, facts, fold(facts))["C1"]
    assert (state.status, state.incident_id) == ("on_site", "I1")


def test_unrostered_crews_are_not_listed_and_helpers_count() -> None:
    facts = [call("I1"), call("I2"), crew_fact("crew.dispatched", "I1", "X", 1),
             crew_fact("crew.arrived", "I1", "X", 2), crew_fact("crew.arrived", "I2", "X", 30),
             crew_fact("crew.arrived", "I2", "X", 31)]
    assert crew_statuses({}, facts, fold(facts)) == {}
    assert crews_at(facts, "I1", "crew.dispatched") == {"X"}
    assert crews_at(facts, "I2", "crew.dispatched") == set()
    assert arrivals_between(facts, 0, 10 * MIN) == {"X": 1}
    assert arrivals_between(facts, 0, 40 * MIN) == {"X": 2}


FACTS = st.lists(st.one_of(
    st.builds(crew_fact, st.sampled_from(["crew.dispatched", "crew.departed", "crew.arrived"]),
              st.sampled_from(["I1", "I2", "I3"]), st.sampled_from(["C1", "C2"]),
              st.integers(0, 20)),
    st.builds(end, st.sampled_from(["power.restored", "call.rejected", "incident.closed"]),
              st.sampled_from(["I1", "I2", "I3"]), st.integers(0, 20)),
), max_size=14)


@settings(max_examples=150, deadline=None)
@given(FACTS, st.randoms())
def test_status_does_not_depend_on_the_order_of_facts(facts: list[Fact], rnd: object) -> None:
    crews = roster([entry("C1"), entry("C2")])
    base = [call("I1"), call("I2"), call("I3"), *facts]
    shuffled = list(base)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert crew_statuses(crews, base, fold(base)) == crew_statuses(crews, shuffled,
                                                                   fold(shuffled))
