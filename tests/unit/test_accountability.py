"""Duty accountability (shifts, owners, handover, SLA at the period end, callbacks,
first-visit fix) checked against the naive oracle in ``tests/accountability_oracle.py``.

Random small histories -- several incidents whose calls may tie on time, with and
without agents, repeated arrivals by one or two crews, callbacks before and after
their incident's call, shift starts (some tying on time, some with a null
incident id), rejected and merged incidents, legacy v0 lines, duplicates and the
new kinds of bad input -- around duty-period boundaries on daylight-saving days,
are fed to the real CLI in-process and checked for:

(a) the accountability of every period and overall equals the oracle's, and the
    contract keys of the report still equal ``tests/oracle.py``'s;
(b) any order and any duplication give the same bytes;
(c) split ingests into one SQLite store, and a re-cut, equal ``report --input``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.accountability_oracle import compare_accountability, oracle_accountability
from tests.oracle import Calendar, Rejected, compare_reports, oracle_report, validate
from tests.unit.test_report_oracle import (
    BASE_DATES,
    OFFSETS,
    PROPERTY_SETTINGS,
    STARTS,
    ZONES,
    run_cli,
    stamp,
    write_lines,
)

CHECKPOINT_TYPES = ("call.received", "call.verified", "crew.departed", "crew.arrived",
                    "fault.diagnosed", "repair.completed", "power.restored")
AGENTS = ("AG-1", "AG-2", "AG-3", "", None)
CREWS = ("C1", "C2", "C3")
TEAMS = (("Team A", "Zhang"), ("Team B", "Li"), ("Team C", "Wang"))
FEWER = settings(PROPERTY_SETTINGS, max_examples=max(10, PROPERTY_SETTINGS.max_examples // 3))
"""For the properties that run the CLI several times per example."""


@dataclass
class Line:
    """One event before rendering."""

    event_id: str
    kind: str
    incident_id: str | None
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


def render(line: Line, offset: timedelta | None, legacy: bool = False,
           drop_incident: bool = False) -> str:
    obj: dict[str, Any] = {"event_id": line.event_id, "type": line.kind}
    if line.incident_id is not None or not drop_incident:
        obj["incident_id"] = line.incident_id
    data = dict(line.data)
    if legacy:
        obj["schema_version"] = 0
        obj["time"] = stamp(line.at, offset)
        if "crew" in data:
            data["crew_id"] = data.pop("crew")
    else:
        obj["occurred_at"] = stamp(line.at, offset)
    obj["data"] = data
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


BAD_INPUT = ("satisfied_unreached", "satisfied_no_reached", "shift_no_team",
             "shift_no_leader", "incident_event_no_id", "callback_no_id")


def bad_line(kind: str, n: int, at: datetime) -> str:
    """A line the contract rejects, of one of the new kinds of bad input."""
    stamp_at = stamp(at, None)
    if kind == "satisfied_unreached":
        data: dict[str, Any] = {"reached": False, "satisfied": True}
        return json.dumps({"event_id": f"bad-{n}", "type": "customer.callback",
                           "incident_id": "INC-0", "occurred_at": stamp_at, "data": data})
    if kind == "satisfied_no_reached":
        return json.dumps({"event_id": f"bad-{n}", "type": "customer.callback",
                           "incident_id": "INC-0", "occurred_at": stamp_at,
                           "data": {"satisfied": False}})
    if kind in ("shift_no_team", "shift_no_leader"):
        data = {"team": "Team Z", "leader": "Zed"}
        del data["team" if kind == "shift_no_team" else "leader"]
        return json.dumps({"event_id": f"bad-{n}", "type": "duty.shift_started",
                           "occurred_at": stamp_at, "data": data})
    if kind == "incident_event_no_id":
        return json.dumps({"event_id": f"bad-{n}", "type": "crew.arrived",
                           "incident_id": None, "occurred_at": stamp_at,
                           "data": {"crew": "C1"}})
    return json.dumps({"event_id": f"bad-{n}", "type": "customer.callback",
                       "occurred_at": stamp_at, "data": {"reached": True}})


@dataclass(frozen=True)
class History:
    zone: str
    duty_start: str
    lines: list[str]


@st.composite
def histories(draw: st.DrawFn) -> History:
    zone = draw(st.sampled_from(ZONES))
    duty_start = draw(st.sampled_from(STARTS))
    base = draw(st.sampled_from(BASE_DATES))
    calendar = Calendar(zone, duty_start)
    boundaries = [calendar.start_of(base + timedelta(days=d)) for d in (-1, 0, 1, 2)]
    lines: list[Line] = []
    counter = iter(range(100_000))

    def new(kind: str, incident_id: str | None, at: datetime,
            data: dict[str, Any] | None = None) -> None:
        # Random prefixes: ids do not sort in creation order, so ties are real tests.
        prefix = draw(st.sampled_from("abcxyz"))
        lines.append(Line(f"{prefix}{next(counter)}", kind, incident_id, at, data or {}))

    def near(anchor: datetime) -> datetime:
        return anchor + timedelta(minutes=draw(st.integers(-26 * 60, 26 * 60)),
                                  seconds=draw(st.sampled_from((0, 0, 30))))

    def call_data() -> dict[str, Any]:
        data: dict[str, Any] = {"grid": draw(st.sampled_from(("G1", "G2"))),
                                "area": draw(st.sampled_from(("urban", "rural", "remote")))}
        priority = draw(st.sampled_from((None, "normal", "vulnerable", "important")))
        if priority is not None:
            data["priority"] = priority
        agent = draw(st.sampled_from(AGENTS))
        if agent is not None:
            data["agent"] = agent
        return data

    for n in range(draw(st.integers(1, 5))):
        incident_id = f"INC-{n}"
        anchor = draw(st.sampled_from(boundaries))
        t0 = anchor if draw(st.booleans()) else near(anchor)
        times = [t0]
        for _ in range(6):
            step = draw(st.one_of(st.integers(0, 200), st.integers(-30, -1), st.just(0)))
            times.append(times[-1] + timedelta(minutes=step))
        present = draw(st.lists(st.booleans(), min_size=7, max_size=7))
        if present[0] or draw(st.booleans()):
            new("call.received", incident_id, t0, call_data())
            for _ in range(draw(st.integers(0, 2))):  # more calls, often at the same time
                when = t0 if draw(st.integers(0, 3)) else t0 + timedelta(
                    minutes=draw(st.integers(-60, 60)))
                new("call.received", incident_id, when, call_data())
        for k in range(1, 7):
            if not present[k]:
                continue
            if CHECKPOINT_TYPES[k] == "crew.arrived":
                for _ in range(draw(st.integers(1, 3))):
                    when = times[3] + timedelta(minutes=draw(st.sampled_from((0, 0, 40, -10))))
                    new("crew.arrived", incident_id, when, {"crew": draw(st.sampled_from(CREWS))})
            elif CHECKPOINT_TYPES[k] == "crew.departed":
                new("crew.departed", incident_id, times[k], {"crew": "C1"})
            else:
                new(CHECKPOINT_TYPES[k], incident_id, times[k])
        for _ in range(draw(st.integers(0, 3))):  # callbacks, some before the call
            reached = draw(st.booleans())
            data: dict[str, Any] = {"reached": reached}
            if reached:
                satisfied = draw(st.sampled_from((True, False, None)))
                if satisfied is not None:
                    data["satisfied"] = satisfied
            if draw(st.booleans()):
                data["agent"] = draw(st.sampled_from(("AG-1", "AG-9")))
            when = times[6] + timedelta(minutes=draw(st.integers(-600, 600)))
            new("customer.callback", incident_id, when, data)
        ending = draw(st.sampled_from((None, None, None, None, "call.rejected", "call.merged")))
        if ending == "call.rejected":
            new(ending, incident_id, times[1], {"reason": "customer side"})
        elif ending == "call.merged":
            new(ending, incident_id, times[1], {"into_incident_id": "INC-0"})
        if not any(line.incident_id == incident_id for line in lines):
            new("call.received", incident_id, t0, call_data())
    if draw(st.booleans()):  # an incident known only by a callback so far
        new("customer.callback", "INC-LATE", near(boundaries[1]), {"reached": False})
    shift_times: list[datetime] = []
    for _ in range(draw(st.integers(0, 4))):
        if shift_times and draw(st.booleans()):
            at = draw(st.sampled_from(shift_times))  # a tie on time
        else:
            at = draw(st.sampled_from(boundaries)) + timedelta(
                minutes=draw(st.sampled_from((0, 0, -1, 1, 11 * 60, 23 * 60))))
        shift_times.append(at)
        team, leader = draw(st.sampled_from(TEAMS))
        data = {"team": team, "leader": leader}
        if draw(st.booleans()):
            data["members"] = ["M1", "M2"]
        new("duty.shift_started", None, at, data)

    rendered: list[str] = []
    for line in lines:
        legacy = draw(st.integers(0, 9)) == 0
        rendered.append(render(line, draw(st.sampled_from(OFFSETS)), legacy=legacy,
                               drop_incident=draw(st.booleans())))
    for _ in range(draw(st.integers(0, 3))):  # duplicates, maybe re-serialised
        line = draw(st.sampled_from(lines))
        rendered.append(render(line, draw(st.sampled_from(OFFSETS))))
    for n in range(draw(st.integers(0, 2))):
        rendered.append(bad_line(draw(st.sampled_from(BAD_INPUT)), n, boundaries[1]))
    order = draw(st.permutations(range(len(rendered))))
    return History(zone, duty_start, [rendered[i] for i in order])


def options(history: History) -> list[str]:
    return ["--duty-timezone", history.zone, "--duty-start", history.duty_start]


def report_text(folder: Path, history: History, lines: list[str], name: str = "in") -> str:
    events = write_lines(folder / f"{name}.jsonl", lines)
    out = folder / f"{name}.json"
    run_cli("report", "--input", str(events), "--output", str(out), *options(history))
    return out.read_text(encoding="utf-8")


# -- (a) engine == oracle -------------------------------------------------------------

@PROPERTY_SETTINGS
@given(histories())
def test_accountability_matches_the_oracle(history: History) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = json.loads(report_text(Path(tmp), history, history.lines))
    problems = compare_accountability(
        engine, oracle_accountability(history.lines, history.zone, history.duty_start))
    problems += compare_reports(engine, oracle_report(history.lines, history.zone,
                                                      history.duty_start))
    assert not problems, "\n".join(problems)


# -- (b) permutation and duplication --------------------------------------------------

@FEWER
@given(histories(), st.data())
def test_any_order_and_duplication_give_the_same_bytes(history: History,
                                                       data: st.DataObject) -> None:
    shuffled = list(data.draw(st.permutations(history.lines), label="permutation"))
    copies = data.draw(st.lists(st.sampled_from(history.lines), max_size=4), label="copies")
    for copy in copies:
        shuffled.insert(data.draw(st.integers(0, len(shuffled)), label="at"), copy)
    valid = 0
    for copy in copies:
        try:
            validate(copy)
            valid += 1
        except Rejected:
            pass
    with tempfile.TemporaryDirectory() as tmp:
        first = json.loads(report_text(Path(tmp), history, history.lines, "first"))
        second = json.loads(report_text(Path(tmp), history, shuffled, "second"))
    first["duplicate_events"] += valid
    first["rejected_events"] += len(copies) - valid
    assert second == first


# -- (c) split ingests and a re-cut ---------------------------------------------------

@FEWER
@given(histories(), st.data())
def test_split_ingests_and_recut_equal_report_from_input(history: History,
                                                         data: st.DataObject) -> None:
    lines = history.lines
    parts = data.draw(st.lists(st.integers(0, 2), min_size=len(lines), max_size=len(lines)),
                      label="part of each line")
    batch = str(data.draw(st.sampled_from([1, 3, 10_000]), label="batch size"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        whole = report_text(folder, history, lines, "whole")
        store = f"sqlite:///{folder / 'store.db'}"
        for n in range(3):
            part = write_lines(folder / f"part{n}.jsonl",
                               [line for line, p in zip(lines, parts, strict=True) if p == n])
            run_cli("ingest", str(part), "--store", store, "--batch-size", batch, *options(history))
        from_store = folder / "from-store.json"
        run_cli("report", "--store", store, "--output", str(from_store))
        other = folder / "other-store.db"
        run_cli("ingest", str(folder / "whole.jsonl"), "--store", f"sqlite:///{other}",
                "--duty-timezone", "UTC", "--duty-start", "00:00")
        recut = folder / "recut.json"
        run_cli("report", "--store", f"sqlite:///{other}", "--output", str(recut),
                *options(history))
        assert from_store.read_text(encoding="utf-8") == whole
        assert recut.read_text(encoding="utf-8") == whole
