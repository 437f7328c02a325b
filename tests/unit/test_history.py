"""Analysts' history against the naive oracle (tests/history_oracle.py).

Random histories (the report oracle's strategy: permutations, duplicates, DST
zones, skew, legacy and malformed lines) get assorted ``recorded_at`` values (kept,
dropped, moved; copies of one event may disagree) and customer counts, and random
windows. The real CLI (in-process) must agree with the oracle for ``report`` with
``--from/--to/--as-of/--known-at``, ``compare`` and ``reliability``; a store must
give the same bytes as the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.cli import main
from projections.history import Window, change_percent, major_event_threshold, parse_instant
from tests import history_oracle as oracle
from tests.oracle import compare_reports
from tests.unit.test_report_oracle import (
    PROPERTY_SETTINGS,
    History,
    histories,
    write_lines,
)


@dataclass(frozen=True)
class Case:
    history: History
    first: date | None
    last: date | None
    as_of: str | None
    known_at: str | None

    @property
    def lines(self) -> list[str]:
        return self.history.lines

    def calendar_options(self) -> list[str]:
        return ["--duty-timezone", self.history.zone, "--duty-start", self.history.duty_start]

    def window_options(self, dates: bool = True) -> list[str]:
        out = []
        if dates and self.first is not None:
            out += ["--from", self.first.isoformat()]
        if dates and self.last is not None:
            out += ["--to", self.last.isoformat()]
        if self.as_of is not None:
            out += ["--as-of", self.as_of]
        if self.known_at is not None:
            out += ["--known-at", self.known_at]
        return out


def _dates_in(lines: list[str]) -> list[datetime]:
    found = []
    for line in lines:
        try:
            obj = json.loads(line)
            at = datetime.fromisoformat(obj.get("occurred_at") or obj["time"])
            if at.tzinfo is not None:
                found.append(at.astimezone(UTC))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return found or [datetime(2026, 7, 1, tzinfo=UTC)]


@st.composite
def cases(draw: st.DrawFn, all_recorded: bool = False) -> Case:
    history = draw(histories())
    customers: dict[str, Any] = {}
    lines = []
    for line in history.lines:
        try:
            obj = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
            lines.append(line)
            continue
        how = "keep" if all_recorded else draw(st.sampled_from(("keep", "drop", "move")))
        occurred = obj.get("occurred_at") or obj.get("time")
        if how == "drop" or (all_recorded and not isinstance(occurred, str)):
            obj.pop("recorded_at", None)
        elif how == "move" or (all_recorded and "recorded_at" not in obj):
            try:
                at = datetime.fromisoformat(occurred)
            except (TypeError, ValueError):
                at = None
            if at is not None and at.tzinfo is not None:
                shift = timedelta(minutes=draw(st.integers(-120, 48 * 60)))
                obj["recorded_at"] = (at + shift).isoformat()
        if obj.get("type") == "call.received":
            key = str(obj.get("event_id"))
            if key not in customers:
                customers[key] = draw(st.sampled_from(("absent", None, 0, 1, 7, 250, 4000)))
            if customers[key] == "absent":
                obj["data"].pop("customers_affected", None)
            else:
                obj["data"]["customers_affected"] = customers[key]
        lines.append(json.dumps(obj))
    instants = sorted(_dates_in(lines))
    around = st.sampled_from(instants).flatmap(
        lambda at: st.integers(-36 * 60, 36 * 60).map(lambda m: at + timedelta(minutes=m)))
    days = st.sampled_from(instants).flatmap(
        lambda at: st.integers(-2, 2).map(lambda d: (at + timedelta(days=d)).date()))
    first = draw(st.none() | days)
    last = draw(st.none() | days)
    if first is not None and last is not None and first > last:
        first, last = last, first
    as_of = draw(st.none() | around)
    known_at = draw(st.none() | around)
    return Case(History(history.zone, history.duty_start, lines), first, last,
                None if as_of is None else as_of.isoformat(timespec="seconds"),
                None if known_at is None else known_at.isoformat(timespec="seconds"))


def run_json(folder: Path, *argv: str) -> Any:
    out = folder / "out.json"
    if argv[0] == "report":
        argv = (*argv, "--output", str(out))
        assert main(list(argv)) == 0
        return json.loads(out.read_text(encoding="utf-8"))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(list(argv)) == 0, argv
    return json.loads(buffer.getvalue())


@PROPERTY_SETTINGS
@given(cases())
def test_windowed_report_matches_oracle(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        events = write_lines(Path(tmp) / "in.jsonl", case.lines)
        engine = run_json(Path(tmp), "report", "--input", str(events),
                          *case.calendar_options(), *case.window_options())
    want = oracle.history_report(case.lines, case.history.zone, case.history.duty_start,
                                 first=case.first, last=case.last, as_of=case.as_of,
                                 known_at=case.known_at)
    problems = compare_reports(engine, want)
    assert not problems, "\n".join(problems)
    if case.window_options():
        assert engine["window"]["from"] == (case.first and case.first.isoformat())


@PROPERTY_SETTINGS
@given(cases(), st.data())
def test_compare_matches_oracle(case: Case, data: st.DataObject) -> None:
    days = sorted({date.fromisoformat(p["duty_date"]) for p in oracle.history_report(
        case.lines, case.history.zone, case.history.duty_start)["duty_periods"]}
        or {date(2026, 7, 1)})
    pick = st.sampled_from(days)
    base = tuple(sorted((data.draw(pick), data.draw(pick))))
    against = tuple(sorted((data.draw(pick), data.draw(pick))))
    with tempfile.TemporaryDirectory() as tmp:
        events = write_lines(Path(tmp) / "in.jsonl", case.lines)
        engine = run_json(Path(tmp), "compare", "--input", str(events),
                          "--base", f"{base[0]}..{base[1]}",
                          "--against", f"{against[0]}..{against[1]}",
                          *case.calendar_options())
    want = oracle.compare(case.lines, case.history.zone, case.history.duty_start,
                          base, against)  # type: ignore[arg-type]
    assert engine["base"] == {"from": base[0].isoformat(), "to": base[1].isoformat()}
    assert engine["against"] == {"from": against[0].isoformat(), "to": against[1].isoformat()}
    problems = oracle.close(engine, want)
    assert not problems, "\n".join(problems)


@PROPERTY_SETTINGS
@given(cases(), st.integers(1, 2_000_000))
def test_reliability_matches_oracle(case: Case, served: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        events = write_lines(Path(tmp) / "in.jsonl", case.lines)
        engine = run_json(Path(tmp), "reliability", "--input", str(events),
                          "--customers-served", str(served), *case.calendar_options(),
                          *case.window_options())
    want = oracle.reliability(case.lines, case.history.zone, case.history.duty_start, served,
                              first=case.first, last=case.last, as_of=case.as_of,
                              known_at=case.known_at)
    problems = oracle.close(engine, want)
    assert not problems, "\n".join(problems)


@PROPERTY_SETTINGS
@given(cases(all_recorded=True), st.sampled_from([1, 3, 10_000]))
def test_store_gives_the_bytes_of_the_file(case: Case, batch: int) -> None:
    """Every event carries recorded_at here, so a store knows what the file knows."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        events = write_lines(folder / "in.jsonl", case.lines)
        store = f"sqlite:///{folder / 'store.db'}"
        assert main(["ingest", str(events), "--store", store, "--batch-size", str(batch),
                     *case.calendar_options()]) == 0
        for command in (["report"], ["reliability", "--customers-served", "1000"]):
            outputs = []
            for source in (["--input", str(events)], ["--store", store]):
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    assert main([*command, *source, *case.calendar_options(),
                                 *case.window_options()]) == 0
                outputs.append(buffer.getvalue())
            assert outputs[0] == outputs[1]


# -- the oracle itself, on numbers worked out by hand -------------------------------------

def _event(event_id: str, kind: str, incident: str, local: str,
           **data: Any) -> str:
    base = {"call.received": {"grid": "G1", "area": "urban"}}.get(kind, {})
    return json.dumps({"event_id": event_id, "type": kind, "incident_id": incident,
                       "occurred_at": f"2026-{local}+08:00", "data": {**base, **data}})


HAND = [
    # day 07-01: A 100 customers x 60 min; B (3 min, momentary: left out)
    _event("a0", "call.received", "A", "07-01T09:00:00", customers_affected=100),
    _event("a6", "power.restored", "A", "07-01T10:00:00"),
    _event("b0", "call.received", "B", "07-01T11:00:00", customers_affected=50),
    _event("b6", "power.restored", "B", "07-01T11:03:00"),
    # day 07-02: C 10 customers x 30 min
    _event("c0", "call.received", "C", "07-02T09:00:00", customers_affected=10),
    _event("c6", "power.restored", "C", "07-02T09:30:00"),
    # F exactly 5 minutes (sustained, no customers), G a microsecond less (momentary)
    _event("f0", "call.received", "F", "07-02T10:00:00", customers_affected=0),
    _event("f6", "power.restored", "F", "07-02T10:05:00"),
    _event("g0", "call.received", "G", "07-02T11:00:00", customers_affected=40),
    _event("g6", "power.restored", "G", "07-02T11:04:59.999999"),
    # day 07-03: D no count (1 customer) x 120 min; E rejected
    _event("d0", "call.received", "D", "07-03T09:00:00"),
    _event("d6", "power.restored", "D", "07-03T11:00:00"),
    _event("e0", "call.received", "E", "07-03T09:00:00", customers_affected=999),
    _event("e6", "power.restored", "E", "07-03T19:00:00"),
    _event("ex", "call.rejected", "E", "07-03T09:05:00", reason="customer side"),
]


def test_reliability_oracle_and_engine_agree_with_hand_figures(tmp_path: Path) -> None:
    # daily SAIDI with N = 1000: 6.0, 0.3, 0.12 minutes; SAIFI 0.1, 0.01, 0.001
    import math
    logs = [math.log(6.0), math.log(0.3), math.log(0.12)]
    alpha = sum(logs) / 3
    beta = math.sqrt(sum((x - alpha) ** 2 for x in logs) / 2)
    hand = {"customers_served": 1000, "t_med": math.exp(alpha + 2.5 * beta),
            "major_event_days": [],
            "overall": {"saifi": 0.111, "saidi": 6.42, "caidi": 6.42 / 0.111},
            "excluding_major_events": {"saifi": 0.111, "saidi": 6.42, "caidi": 6.42 / 0.111},
            "daily": {"2026-07-01": {"saifi": 0.1, "saidi": 6.0},
                      "2026-07-02": {"saifi": 0.01, "saidi": 0.3},
                      "2026-07-03": {"saifi": 0.001, "saidi": 0.12}}}
    assert oracle.close(oracle.reliability(HAND, "Asia/Shanghai", "08:30", 1000), hand) == []
    events = write_lines(tmp_path / "hand.jsonl", HAND)
    engine = run_json(tmp_path, "reliability", "--input", str(events),
                      "--customers-served", "1000")
    assert oracle.close(engine, hand) == []
    assert engine["sustained_interruptions"] == {"overall": 4, "excluding_major_events": 4}


def test_a_storm_day_is_a_major_event_day(tmp_path: Path) -> None:
    lines = []
    for day in range(1, 21):
        minutes = 600 if day == 10 else 30 + day  # one day far above the others
        customers = 5000 if day == 10 else 10
        lines.append(_event(f"c{day}", "call.received", f"I{day}", f"07-{day:02d}T09:00:00",
                            customers_affected=customers))
        end = datetime(2026, 7, day, 9, tzinfo=UTC) + timedelta(minutes=minutes)
        lines.append(_event(f"r{day}", "power.restored", f"I{day}",
                            f"07-{day:02d}T{end:%H:%M:%S}"))
    events = write_lines(tmp_path / "storm.jsonl", lines)
    engine = run_json(tmp_path, "reliability", "--input", str(events),
                      "--customers-served", "100000")
    assert engine["major_event_days"] == ["2026-07-10"]
    assert engine["excluding_major_events"]["saidi"] < engine["overall"]["saidi"] / 10
    assert oracle.close(engine, oracle.reliability(lines, "Asia/Shanghai", "08:30",
                                                   100000)) == []


# -- small pure pieces ------------------------------------------------------------------

def test_parse_instant_takes_offsets_and_refuses_naive_text() -> None:
    assert parse_instant("1970-01-01T08:00:00+08:00") == 0
    assert parse_instant("1970-01-01T00:00:01.5Z") == 1_500_000
    assert parse_instant("1970-01-01t00:00:00.1234567z") == 123_456
    for bad in ("2026-07-01T08:30", "2026-07-01", "2026-13-01T00:00:00Z", "yesterday", ""):
        with pytest.raises(ValueError):
            parse_instant(bad)


def test_window_refuses_from_after_to_and_change_needs_a_base() -> None:
    with pytest.raises(ValueError):
        Window(date(2026, 7, 2), date(2026, 7, 1))
    assert change_percent(None, 3.0) is None
    assert change_percent(0.0, 3.0) is None
    assert change_percent(10.0, None) is None
    assert change_percent(10.0, 8.0) == pytest.approx(-20.0)
    assert major_event_threshold([5.0]) is None
    assert major_event_threshold([0.0, 0.0, 4.0]) is None
