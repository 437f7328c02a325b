"""The simulator's duty-accountability events: shift starts (with mid-period team
changes), callbacks (some never made, some unreached first, some dissatisfied) and
re-dispatches that keep the first-visit fix rate below 1; and the engine's
accountability over a simulated history equals the naive oracle's."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.cli import main
from dispatch.simulation import SimulationPlan, simulate, simulate_lines, write_jsonl
from dispatch.simulation.emission import TEAMS
from projections.duty import DutyCalendar, to_micros
from schemas import InvalidEvent, parse_event
from tests.accountability_oracle import compare_accountability, oracle_accountability

PLAN = SimulationPlan(seed=31, start=date(2026, 7, 1), days=8, storm_days=(2, 5))


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return [dict(e) for e in simulate(PLAN)]


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["occurred_at"]))


def test_every_period_starts_with_a_shift_and_some_teams_are_relieved(
        events: list[dict[str, Any]]) -> None:
    calendar = DutyCalendar()
    shifts: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["type"] == "duty.shift_started":
            assert event["incident_id"] is None
            shifts[calendar.duty_date(to_micros(at(event)))].append(event)
    assert sorted(shifts) == [PLAN.start + timedelta(days=d) for d in range(PLAN.days)]
    teams = {team: leader for team, leader, _ in TEAMS}
    changed = 0
    for day, starts in shifts.items():
        starts.sort(key=at)
        begin, _ = calendar.bounds(day)
        assert to_micros(at(starts[0])) - begin <= 2 * 3_600_000_000  # at the start
        for start in starts:
            assert teams[start["data"]["team"]] == start["data"]["leader"]
        assert len(starts) <= 2
        changed += len(starts) == 2
        if len(starts) == 2:
            assert starts[0]["data"]["team"] != starts[1]["data"]["team"]
    assert 1 <= changed < PLAN.days, "some, not all, periods have a mid-period team change"


def test_callbacks_come_between_restoration_and_closure_in_every_variety(
        events: list[dict[str, Any]]) -> None:
    by_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_incident[str(event["incident_id"])].append(event)
    kinds: Counter[str] = Counter()
    for incident_events in by_incident.values():
        times = {e["type"]: at(e) for e in incident_events}
        callbacks = sorted((e for e in incident_events if e["type"] == "customer.callback"),
                           key=at)
        if "power.restored" not in times:
            assert not callbacks
            continue
        if not callbacks:
            kinds["never called back"] += 1
            continue
        for callback in callbacks:
            assert times["power.restored"] <= at(callback)
            if "incident.closed" in times:
                assert at(callback) <= times["incident.closed"]
        first, last = callbacks[0]["data"], callbacks[-1]["data"]
        if not first["reached"]:
            kinds["unreached first"] += 1
        if last["reached"]:
            kinds[{True: "satisfied", False: "dissatisfied", None: "no verdict"}[
                last.get("satisfied")]] += 1
        else:
            kinds["never reached"] += 1
    assert set(kinds) == {"never called back", "unreached first", "satisfied",
                          "dissatisfied", "no verdict", "never reached"}, kinds
    assert kinds["satisfied"] > kinds["dissatisfied"] > 0


def test_simulated_history_accountability_equals_the_oracle(tmp_path: Path) -> None:
    plan = SimulationPlan(seed=5, start=date(2026, 3, 28), days=3, storm_days=(1,),
                          duty_timezone="Europe/Berlin", duplicate_rate=0.02, shuffle=True,
                          late_rate=0.02, skew_rate=0.02, malformed_rate=0.005)
    path = tmp_path / "events.jsonl"
    write_jsonl(simulate_lines(plan), path)
    out = tmp_path / "report.json"
    assert main(["report", "--input", str(path), "--output", str(out),
                 "--duty-timezone", "Europe/Berlin"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert compare_accountability(report, oracle_accountability(lines, "Europe/Berlin")) == []
    fixes = [p["accountability"]["first_visit_fix"] for p in report["duty_periods"]]
    assert all(f is not None and 0.5 < f < 1 for f in fixes[:3]), fixes
    teams = [p["accountability"]["team"] for p in report["duty_periods"][:3]]
    assert None not in teams


def test_malformed_copies_of_duty_events_are_still_invalid() -> None:
    plan = SimulationPlan(seed=2, days=2, malformed_rate=0.5)
    bad = [item.text for item in simulate_lines(plan) if not isinstance(item, dict)]
    duty = [text for text in bad if "duty.shift_started" in text]
    assert duty, "some malformed lines should come from shift starts"
    for text in bad:
        with pytest.raises(InvalidEvent):
            parse_event(text)
