"""Crews: the roster and each crew's status, a pure projection of events.

Contract:
- ``roster(entries)``: the latest ``crew.rostered`` entry per crew wins (latest
  ``occurred_at``, ties: the larger event id), whatever the order they come in;
- ``crew_statuses(roster, facts, incidents)``: every rostered crew's status,
  from the crew facts (``crew.dispatched``/``crew.departed``/``crew.arrived``)
  of every incident and those incidents' folded state:
  a crew is *assigned* to an incident when any crew fact names it there, and
  the assignment is *active* while the incident is an outage neither restored
  nor closed (rejected, merged, restored or closed incidents free their crews).
  With no active assignment the crew is ``available``; otherwise the active
  assignment with the latest crew fact decides: ``on_site`` once the crew
  arrived there, ``en_route`` once it departed, else ``dispatched``;
- the result depends only on the set of facts, not on their order, so events
  from files, Kafka and commands give the same answer. No I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from projections.duty import to_micros
from projections.incident import RESTORE, Fact, Incident
from schemas.events import CrewRostered

CREW_FACT_TYPES = frozenset({"crew.dispatched", "crew.departed", "crew.arrived"})
Status = Literal["available", "dispatched", "en_route", "on_site"]


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One ``crew.rostered`` event's content, time in µs since the epoch."""

    crew: str
    grid: str
    skills: tuple[str, ...]
    at: int
    event_id: str


@dataclass(frozen=True, slots=True)
class CrewState:
    crew: str
    grid: str
    skills: tuple[str, ...]
    status: Status
    incident_id: str | None
    """The incident of the active assignment; None when available."""

    def as_document(self) -> dict[str, Any]:
        return {"crew": self.crew, "grid": self.grid, "skills": list(self.skills),
                "status": self.status, "incident_id": self.incident_id}


def roster_entry(event: CrewRostered) -> RosterEntry:
    data = event.data
    return RosterEntry(data.crew, data.grid, tuple(data.skills), to_micros(event.occurred_at),
                       event.event_id)


def roster(entries: Iterable[RosterEntry]) -> dict[str, RosterEntry]:
    """The current entry of every crew (module contract)."""
    latest: dict[str, RosterEntry] = {}
    for entry in entries:
        current = latest.get(entry.crew)
        if current is None or (entry.at, entry.event_id) > (current.at, current.event_id):
            latest[entry.crew] = entry
    return latest


def is_ended(incident: Incident | None) -> bool:
    """True when an incident no longer holds a crew: rejected, merged, restored or closed."""
    if incident is None:
        return False
    return (not incident.is_outage or incident.times[RESTORE] is not None
            or incident.closed_at is not None)


@dataclass(slots=True)
class _Assignment:
    last: tuple[int, str] = (-(2**63), "")
    departed: bool = False
    arrived: bool = False


def assignments(facts: Iterable[Fact]) -> dict[str, dict[str, _Assignment]]:
    """crew -> incident -> what the crew did there."""
    found: dict[str, dict[str, _Assignment]] = defaultdict(dict)
    for fact in facts:
        if fact.type not in CREW_FACT_TYPES or fact.crew is None:
            continue
        assignment = found[fact.crew].setdefault(fact.incident_id, _Assignment())
        assignment.last = max(assignment.last, (fact.at, fact.event_id))
        if fact.type == "crew.departed":
            assignment.departed = True
        elif fact.type == "crew.arrived":
            assignment.arrived = True
    return found


def crew_statuses(entries: Mapping[str, RosterEntry], facts: Iterable[Fact],
                  incidents: Mapping[str, Incident]) -> dict[str, CrewState]:
    """Every rostered crew's state (module contract), by crew id."""
    by_crew = assignments(facts)
    states: dict[str, CrewState] = {}
    for crew, entry in sorted(entries.items()):
        active = [(a.last, incident_id, a) for incident_id, a in by_crew.get(crew, {}).items()
                  if not is_ended(incidents.get(incident_id))]
        if not active:
            states[crew] = CrewState(crew, entry.grid, entry.skills, "available", None)
            continue
        _, incident_id, current = max(active, key=lambda item: (item[0], item[1]))
        status: Status = ("on_site" if current.arrived else
                          "en_route" if current.departed else "dispatched")
        states[crew] = CrewState(crew, entry.grid, entry.skills, status, incident_id)
    return states


def crews_at(facts: Iterable[Fact], incident_id: str, kind: str) -> set[str]:
    """The crews named by ``kind`` facts (e.g. ``crew.dispatched``) of one incident."""
    return {f.crew for f in facts
            if f.incident_id == incident_id and f.type == kind and f.crew is not None}


def arrivals_between(facts: Iterable[Fact], start_us: int, end_us: int) -> dict[str, int]:
    """Per crew, how many distinct incidents it arrived at in ``[start_us, end_us)``."""
    seen: dict[str, set[str]] = defaultdict(set)
    for fact in facts:
        if fact.type == "crew.arrived" and fact.crew is not None and start_us <= fact.at < end_us:
            seen[fact.crew].add(fact.incident_id)
    return {crew: len(incidents) for crew, incidents in seen.items()}
