"""Property tests: SLA states and the alerts document against the naive oracle
(tests/sla_oracle.py), over random histories, limits and as-of instants.

Histories mix calls (several per incident, different areas and priorities,
sometimes arriving after later events), arrivals, restorations (also before the
arrival: anomalies), rejections, merges, noise events and duplicates, in random
order and split over two batches. As-of instants are random, or exactly on an
event, a warning threshold or a deadline, where off-by-one mistakes live.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.duty import to_micros
from projections.incident import Incident
from projections.projector import Projector, Record
from projections.sla import RULES, STATES, SlaLimits, alerts_document, rule_state
from projections.stores.memory import MemoryStore
from tests.sla_oracle import Limits, oracle_alerts, rule_states

BASE = datetime(2026, 7, 1, tzinfo=UTC)
AREAS = ("urban", "rural", "remote")
PRIORITIES = ("normal", "vulnerable", "important")
NOISE = ("call.verified", "crew.dispatched", "crew.departed", "fault.diagnosed",
         "repair.completed", "incident.closed")
OFFSETS = (timedelta(0), timedelta(hours=8), timedelta(hours=-5), timedelta(hours=5, minutes=30))
UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

PROPERTY_SETTINGS = settings(max_examples=int(os.environ.get("ORACLE_MAX_EXAMPLES", "150")),
                             deadline=None,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])


def stamp(instant: datetime, offset: timedelta) -> str:
    local = instant.astimezone(timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond:06d}"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


minutes = st.integers(min_value=2, max_value=600).map(lambda n: n / 2)  # halves: exact in µs


@st.composite
def limits(draw: st.DrawFn) -> Limits:
    by_area = {rule: {area: draw(minutes) for area in AREAS} for rule in RULES}
    caps = {rule: draw(st.none() | minutes) for rule in RULES}
    return Limits(by_area, caps)


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 6))):
        incident = f"INC-{n}"
        kinds = (["call.received"] * draw(st.integers(0, 3))
                 + ["crew.arrived"] * draw(st.integers(0, 2))
                 + ["power.restored"] * draw(st.integers(0, 2))
                 + draw(st.lists(st.sampled_from(NOISE), max_size=3)))
        if draw(st.integers(0, 9)) == 0:
            kinds.append(draw(st.sampled_from(("call.rejected", "call.merged"))))
        for i, kind in enumerate(kinds):
            at = BASE + timedelta(seconds=draw(st.integers(0, 36_000)),
                                  microseconds=draw(st.sampled_from((0, 0, 1, 250_000))))
            if kind == "call.received":
                at += timedelta(microseconds=7 * i)  # calls of one incident never tie
                data: dict[str, Any] = {"grid": draw(st.sampled_from(("G-1", "G-2"))),
                                        "area": draw(st.sampled_from(AREAS)),
                                        "agent": draw(st.sampled_from(("AG-1", "AG-2")))}
                priority = draw(st.sampled_from((*PRIORITIES, None)))
                if priority is not None:
                    data["priority"] = priority
            elif kind.startswith("crew."):
                data = {"crew": "C-1"}
            elif kind == "call.rejected":
                data = {"reason": "not ours"}
            elif kind == "call.merged":
                data = {"into_incident_id": "INC-0"}
            else:
                data = {}
            events.append({"event_id": f"{incident}-{i}", "type": kind,
                           "incident_id": incident, "at": at, "data": data})
    return events


def render(events: list[dict[str, Any]], offset: timedelta) -> list[str]:
    return [json.dumps({"event_id": e["event_id"], "type": e["type"],
                        "incident_id": e["incident_id"], "occurred_at": stamp(e["at"], offset),
                        "data": e["data"]}) for e in events]


async def fold(batches: list[list[str]]) -> list[Incident]:
    store = MemoryStore()
    projector = Projector(store, "test")
    position = 0
    for lines in batches:
        records = []
        for line in lines:
            position += 1
            records.append(Record("mem", 0, position, line.encode()))
        prepared = await projector.prepare(records)
        assert not prepared.rejected
        await store.commit(prepared.commit)
    return [i async for i in store.all_incidents()]


def engine_limits(oracle: Limits) -> SlaLimits:
    return SlaLimits({rule: dict(by_area) for rule, by_area in oracle.by_area.items()},
                     dict(oracle.caps))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[str], list[list[str]], datetime, Limits]:
    events = draw(histories())
    lims = draw(limits())
    lines = render(events, draw(st.sampled_from(OFFSETS)))
    copies = draw(st.lists(st.sampled_from(lines), max_size=4)) if lines else []
    shuffled = draw(st.permutations(lines + copies))
    cut = draw(st.integers(0, len(shuffled)))
    # As of: random, or exactly on an event, a warning threshold or a deadline.
    anchor = draw(st.sampled_from([e["at"] for e in events])) if events else BASE
    limit = timedelta(minutes=draw(st.sampled_from(
        [m for by_area in lims.by_area.values() for m in by_area.values()])))
    as_of = draw(st.sampled_from((
        BASE + timedelta(seconds=draw(st.integers(-60, 60_000))),
        anchor, anchor + limit * 0.75, anchor + limit, anchor + limit - timedelta(microseconds=1),
    )))
    return lines, [shuffled[:cut], shuffled[cut:]], as_of, lims


@PROPERTY_SETTINGS
@given(cases())
def test_rule_state_matches_the_oracle(case: tuple[list[str], list[list[str]], datetime,
                                                  Limits]) -> None:
    lines, batches, as_of, lims = case
    incidents = asyncio.run(fold(batches))
    expected = rule_states(lines, as_of, lims)
    engine = engine_limits(lims)
    got = {}
    for incident in incidents:
        for rule in RULES:
            state = rule_state(incident, rule, to_micros(as_of), engine)
            if state is not None:
                got[(incident.incident_id, rule)] = state
    assert got == {key: value["state"] for key, value in expected.items()}


@PROPERTY_SETTINGS
@given(cases())
def test_alerts_document_matches_the_oracle(case: tuple[list[str], list[list[str]], datetime,
                                                       Limits]) -> None:
    lines, batches, as_of, lims = case
    document = alerts_document(asyncio.run(fold(batches)), to_micros(as_of), engine_limits(lims))
    expected = oracle_alerts(lines, as_of, lims)
    assert set(document) == {"as_of", "active", "counts"}
    assert UTC_Z.match(document["as_of"])
    assert parse(document["as_of"]) == as_of
    assert document["counts"] == expected["counts"]
    assert len(document["active"]) == len(expected["active"])
    for got, want in zip(document["active"], expected["active"], strict=True):
        assert set(got) == set(want)
        for key in ("start", "deadline"):
            assert UTC_Z.match(got[key]), got[key]
            assert parse(got[key]) == want[key]
        assert {k: v for k, v in got.items() if k not in ("start", "deadline")} == \
               {k: v for k, v in want.items() if k not in ("start", "deadline")}


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- worked examples (the defaults), readable without hypothesis ------------------------

def incident(**times: int | None) -> Incident:
    """An urban normal incident with checkpoint minutes after BASE (t0, t3, t6)."""
    state = Incident("INC-1", area="urban", priority="normal", grid="G", owner="AG-1")
    for name, index in (("t0", 0), ("t3", 3), ("t6", 6)):
        value = times.get(name)
        state.times[index] = None if value is None else to_micros(BASE) + value * 60_000_000
    return state


def at(minute: float) -> int:
    return to_micros(BASE) + round(minute * 60_000_000)


@pytest.mark.parametrize(("minute", "state"), [
    (-1, None), (0, "ok"), (33.74, "ok"), (33.75, "warning"), (44.99, "warning"),
    (45, "breach"), (1000, "breach"),
])
def test_arrival_thresholds_with_the_urban_default(minute: float, state: str | None) -> None:
    assert rule_state(incident(t0=0), "arrival", at(minute), SlaLimits()) == state


@pytest.mark.parametrize(("t3", "state"), [(45, "met"), (46, "late"), (-5, "anomaly")])
def test_arrival_outcome(t3: int, state: str) -> None:
    assert rule_state(incident(t0=0, t3=t3), "arrival", at(2000), SlaLimits()) == state
    # Before the arrival occurred, it is not known yet.
    before = rule_state(incident(t0=0, t3=t3), "arrival", at(t3 - 1), SlaLimits())
    assert before in (None, "ok", "warning", "breach")


def test_priority_caps_arrival_but_not_restoration() -> None:
    urgent = incident(t0=0, t3=20)
    urgent.priority = "vulnerable"
    assert rule_state(urgent, "arrival", at(29.99), SlaLimits()) == "met"
    slow = incident(t0=0)
    slow.priority = "important"
    slow.area = "remote"
    assert rule_state(slow, "arrival", at(30), SlaLimits()) == "breach"
    restoring = incident(t0=0, t3=20)
    restoring.priority = "important"
    assert rule_state(restoring, "restoration", at(20 + 179), SlaLimits()) == "warning"
    assert rule_state(restoring, "restoration", at(20 + 180), SlaLimits()) == "breach"


def test_rejected_or_merged_is_never_armed_once_known() -> None:
    rejected = incident(t0=0)
    rejected.rejected_at = at(50)
    assert rule_state(rejected, "arrival", at(49), SlaLimits()) == "breach"
    assert rule_state(rejected, "arrival", at(50), SlaLimits()) is None
    merged = incident(t0=0, t3=10)
    merged.merged_at = at(1)
    assert all(rule_state(merged, r, at(500), SlaLimits()) is None for r in RULES)


def test_states_are_the_documented_ones() -> None:
    assert STATES == ("ok", "warning", "breach", "met", "late", "anomaly")
    assert RULES == ("arrival", "restoration")
