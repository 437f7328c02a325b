"""The columnar engine (DuckDB) against the pure fold and the pydantic contract.

- byte-identical output: ``report``, ``compare`` and ``reliability`` with
  ``--engine columnar`` print exactly what ``--engine exact`` prints, on random
  histories (permutations, duplicates, DST zones, windows, as-of, known-at), and
  write the same rejected lines (line number, reason, text);
- validation: on random mutations of valid events (values of every JSON type in
  every field, timestamp spellings, escapes, extra fields), the columnar check
  accepts exactly the lines ``parse_event`` accepts, with the same values;
- the three JSON forms DuckDB's reader tolerates are pinned as the known
  difference (docs/history.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.cli import main
from projections.columnar import FACT_COLUMNS, load_columnar
from projections.incident import fact_of
from schemas.parsing import InvalidEvent, parse_event
from tests import history_oracle
from tests.oracle import compare_reports
from tests.unit.test_history import Case, cases
from tests.unit.test_report_oracle import PROPERTY_SETTINGS, History, write_lines


def _run(*argv: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        assert main(list(argv)) == 0, argv
    return buffer.getvalue()


def _versioned(case: Case, keep: list[bool]) -> Case:
    """Most lines say ``schema_version`` (the columnar check reads those itself)."""
    lines = []
    for line, versioned in zip(case.lines, keep, strict=True):
        try:
            obj = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        if versioned and isinstance(obj, dict) and "schema_version" not in obj:
            obj = {"schema_version": 1, **obj}
        lines.append(json.dumps(obj))
    return Case(History(case.history.zone, case.history.duty_start, lines), case.first,
                case.last, case.as_of, case.known_at)


@PROPERTY_SETTINGS
@given(cases(), st.data())
def test_columnar_prints_the_bytes_of_the_exact_engine(case: Case, data: st.DataObject) -> None:
    """``report`` (accountability, SLA and callback totals included), ``reliability``
    and ``compare``, with the same rejected lines (conflicting copies included)."""
    case = _versioned(case, data.draw(st.lists(st.integers(0, 9).map(bool),
                                               min_size=len(case.lines),
                                               max_size=len(case.lines))))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        events = str(write_lines(folder / "in.jsonl", case.lines))
        common = [*case.calendar_options(), *case.window_options()]
        for command in (["report"], ["reliability", "--customers-served", "5000"]):
            outputs, rejects = [], []
            for engine in ("columnar", "exact"):
                reject_file = folder / f"rejects-{engine}-{command[0]}.jsonl"
                outputs.append(_run(*command, "--input", events, "--engine", engine,
                                    "--rejects", str(reject_file), *common))
                rejects.append(reject_file.read_text(encoding="utf-8"))
            assert outputs[0] == outputs[1], command
            assert rejects[0] == rejects[1], command
            if command == ["report"]:  # and against the naive oracle, not only engine to engine
                want = history_oracle.history_report(
                    case.lines, case.history.zone, case.history.duty_start, first=case.first,
                    last=case.last, as_of=case.as_of, known_at=case.known_at)
                problems = compare_reports(json.loads(outputs[0]), want)
                assert not problems, "\n".join(problems)
        compare = [_run("compare", "--input", events, "--engine", engine,
                        "--base", "2026-01-01..2026-07-01", "--against",
                        "2026-07-02..2026-12-31", *case.calendar_options())
                   for engine in ("columnar", "exact")]
        assert compare[0] == compare[1]


# -- validation agrees with the contract ---------------------------------------------------

VALID: list[dict[str, Any]] = [
    {"event_id": "e1", "type": "call.received", "incident_id": "I1",
     "occurred_at": "2026-07-01T09:00:00+08:00", "recorded_at": "2026-07-01T09:00:02Z",
     "source": "hotline", "actor": "AG-1",
     "data": {"grid": "G1", "area": "urban", "priority": "vulnerable",
              "customers_affected": 120, "agent": "AG-1", "description": "no power"}},
    {"event_id": "e2", "type": "crew.dispatched", "incident_id": "I1",
     "occurred_at": "2026-07-01T09:05:00.5+08:00",
     "data": {"crew": "C1", "dispatcher": "D1", "eta_minutes": 12.5}},
    {"event_id": "e3", "type": "crew.arrived", "incident_id": "I1",
     "occurred_at": "2026-07-01T01:40:00.123456Z", "data": {"crew": "C1"}},
    {"event_id": "e4", "type": "call.merged", "incident_id": "I2",
     "occurred_at": "2026-07-01T09:05:00-03:30", "data": {"into_incident_id": "I1"}},
    {"event_id": "e5", "type": "power.restored", "incident_id": "I1",
     "occurred_at": "2026-07-01T12:00:00+08:00", "data": {"customers_restored": 100}},
    {"event_id": "e6", "type": "incident.closed", "incident_id": "I1",
     "occurred_at": "2026-07-01T13:00:00+08:00", "data": {"satisfied": True}},
    {"event_id": "e7", "type": "repair.completed", "incident_id": "I1",
     "occurred_at": "2026-07-01T11:00:00+08:00", "data": {}},
    {"event_id": "e8", "type": "call.rejected", "incident_id": "I3",
     "occurred_at": "2026-07-01T11:00:00+08:00", "data": {"reason": "customer side"}},
    {"event_id": "e9", "type": "fault.diagnosed", "incident_id": "I1", "schema_version": 1,
     "occurred_at": "2026-07-01T10:00:00+08:00", "data": {"cause": "tree", "equipment": None}},
    {"event_id": "e10", "type": "call.verified", "incident_id": "I1", "schema_version": 0,
     "time": "2026-07-01T09:04:00+08:00", "data": {"verified_by": "D1"}},
]

STAMPS = st.sampled_from([
    "2026-07-01T09:00:00+08:00", "2026-07-01T09:00:00Z", "2026-07-01t09:00:00z",
    "2026-07-01 09:00:00+08:00", "2026-07-01T09:00+08:00", "2026-07-01T09:00:00",
    "2026-07-01T09:00:00.1234567+08:00", "2026-07-01T09:00:00.123456789Z",
    "2026-07-01T09:00:00+24:00", "2026-07-01T09:00:00+23:59", "2026-07-01T09:00:00-00:00",
    "2026-02-29T09:00:00Z", "2028-02-29T09:00:00Z", "2026-07-01T24:00:00Z",
    "2026-07-01T23:59:60Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
    "2199-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
    "2026-07-01T09:00:00+0800", "2026-07-01T09:00:00.+08:00", "20260701T090000Z",
    "2026-7-1T09:00:00Z", "2026-07-01T09:00:00 +08:00", " 2026-07-01T09:00:00Z",
    "2026-07-01T09:00:00.000000+05:45",
])
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**53 - 2, 2**53 + 2),
    st.sampled_from([0.0, 1.5, -2.5, 1e20, 12.0]), st.sampled_from(["", "x", "urban", "normal",
                                                                     "important", "call.received",
                                                                     "1", "A\u0301", "tab\t"]),
    STAMPS, st.just([]), st.just({}), st.just(["urban"]), st.just({"grid": "G"}))
FIELDS = ("event_id", "type", "incident_id", "occurred_at", "recorded_at", "schema_version",
          "source", "actor", "time", "data")
DATA_FIELDS = ("grid", "area", "priority", "customers_affected", "agent", "description",
               "verified_by", "reason", "into_incident_id", "crew", "dispatcher", "eta_minutes",
               "cause", "equipment", "customers_restored", "satisfied", "data", "extra")


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    obj = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    obj.setdefault("schema_version", 1)
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(("top", "data", "delete", "delete_data")))
        if where == "top":
            obj[draw(st.sampled_from(FIELDS))] = draw(VALUES)
        elif where == "data" and isinstance(obj.get("data"), dict):
            obj["data"][draw(st.sampled_from(DATA_FIELDS))] = draw(VALUES)
        elif where == "delete":
            obj.pop(draw(st.sampled_from(FIELDS)), None)
        elif isinstance(obj.get("data"), dict):
            obj["data"].pop(draw(st.sampled_from(DATA_FIELDS)), None)
    style = draw(st.sampled_from(("compact", "spaced", "ascii", "indent")))
    if style == "compact":
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if style == "spaced":
        return json.dumps(obj)
    if style == "ascii":  # every non-ASCII character escaped, e.g. \u0301
        return json.dumps(obj, ensure_ascii=True).replace('"x"', '"\\u0078"')
    return " " + json.dumps(obj) + "\t"


def _facts_by_line(path: Path) -> tuple[dict[int, tuple[Any, ...]], dict[int, str]]:
    rejected: dict[int, str] = {}
    events = load_columnar([path], on_rejected=lambda r: rejected.__setitem__(r.record.line,
                                                                             r.reason))
    rows = events.db.execute(f"SELECT {', '.join(FACT_COLUMNS)} FROM facts ORDER BY n").fetchall()
    events.db.close()
    return {row[0]: tuple(row[1:]) for row in rows}, rejected


@PROPERTY_SETTINGS
@given(st.lists(mutated_lines(), min_size=1, max_size=40))
def test_columnar_check_accepts_exactly_what_the_contract_accepts(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp) / "mutated.jsonl", lines)
        accepted, rejected = _facts_by_line(path)
    for number, line in enumerate(lines, start=1):
        try:
            fact = fact_of(parse_event(line))
        except InvalidEvent as exc:
            assert rejected.get(number) == exc.reason, (line, accepted.get(number))
            continue
        if rejected.get(number, "").startswith("conflict:"):
            # Valid, but a copy of an earlier line's event id with other content.
            assert any(json.loads(earlier).get("event_id") == fact.event_id
                       for earlier in lines[:number - 1]), line
            continue
        assert number not in rejected, (line, rejected.get(number))
        want = (fact.event_id, fact.type, fact.incident_id, fact.at, fact.recorded, fact.grid,
                fact.area, fact.priority, fact.customers, fact.crew, fact.into, fact.agent)
        assert accepted[number] == want, line


EDGE_STAMPS = ["2026-03-11T24:00:00+08:00", "2026-07-01T24:00:00Z", "2026-07-01T24:00:00",
               "2026-07-01T24:00:00.000000-03:30", "2026-07-01T23:60:00Z",
               "2026-07-01T23:59:60+08:00", "2026-07-01T19:00:00+08:00",
               "2026-07-01 23:59:59.999999-03:30"]


@pytest.mark.parametrize("stamp", EDGE_STAMPS)
@pytest.mark.parametrize("field", ["occurred_at", "recorded_at"])
def test_columnar_check_decides_each_edge_instant_as_the_contract(tmp_path: Path, stamp: str,
                                                                  field: str) -> None:
    """Hour 24 once slipped through (DuckDB reads it as the next midnight), so a later
    copy of that event id was reported as a conflict instead of a duplicate."""
    event = {"schema_version": 1, **VALID[6], field: stamp}  # versioned: decided in SQL
    line = json.dumps(event)
    path = write_lines(tmp_path / "edge.jsonl", [line])
    accepted, rejected = _facts_by_line(path)
    try:
        parse_event(line)
    except InvalidEvent as exc:
        assert rejected.get(1) == exc.reason, accepted.get(1)
    else:
        assert 1 in accepted and 1 not in rejected, rejected.get(1)


@pytest.mark.parametrize("line", [
    # a key given twice: DuckDB keeps the first value, the contract the last
    '{"event_id":"d1","schema_version":1,"type":"call.verified","incident_id":"I","occurred_at":'
    '"2026-07-01T09:00:00Z","data":{},"incident_id":""}',
    # a trailing comma, and a bare lower-case nan: not JSON, but DuckDB's reader takes them
    '{"event_id":"d2","schema_version":1,"type":"call.verified","incident_id":"I","occurred_at":'
    '"2026-07-01T09:00:00Z","data":{},}',
    '{"event_id":"d3","schema_version":1,"type":"call.verified","incident_id":"I","occurred_at":'
    '"2026-07-01T09:00:00Z","data":{},"x":nan}',
])
def test_known_difference_duckdb_tolerates_these(tmp_path: Path, line: str) -> None:
    """Pinned: the one place the two engines differ (docs/history.md, --engine exact)."""
    with pytest.raises(InvalidEvent):
        parse_event(line)
    accepted, rejected = _facts_by_line(write_lines(tmp_path / "odd.jsonl", [line]))
    assert 1 in accepted and not rejected


def test_report_columnar_counts_conflicts_callbacks_and_shifts(tmp_path: Path) -> None:
    base = {"schema_version": 1, "incident_id": "I1"}
    lines = [json.dumps(obj) for obj in [
        *VALID,
        {**VALID[0], "event_id": "e1", "data": {**VALID[0]["data"], "grid": "G2"}},  # conflict
        {**VALID[1]},  # duplicate
        {**base, "event_id": "cb1", "type": "customer.callback",
         "occurred_at": "2026-07-01T14:00:00+08:00",
         "data": {"reached": True, "agent": "AG-1", "satisfied": False}},
        {"event_id": "s1", "type": "duty.shift_started", "schema_version": 1,
         "incident_id": "", "occurred_at": "2026-07-01T08:30:00+08:00",
         "data": {"team": "T1", "leader": "L1", "members": ["AG-1"]}},
    ]]
    events = write_lines(tmp_path / "mixed.jsonl", lines)
    reports = [_run("report", "--input", str(events), "--engine", engine,
                    "--rejects", str(tmp_path / f"{engine}.jsonl"))
               for engine in ("columnar", "exact")]
    assert reports[0] == reports[1]
    report = json.loads(reports[0])
    assert report["conflicting_events"] == 1 and report["duplicate_events"] == 1
    assert "conflict" in (tmp_path / "columnar.jsonl").read_text()
    assert (tmp_path / "columnar.jsonl").read_text() == (tmp_path / "exact.jsonl").read_text()
