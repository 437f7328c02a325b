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
import copy
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import projections.columnar
from dispatch.cli import main
from projections.columnar import EVENT_TYPES, EXTRA_COLUMNS, FACT_COLUMNS, load_columnar
from projections.incident import Fact, fact_of
from schemas import events as contract
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
    {"event_id": "e11", "type": "customer.callback", "incident_id": "I1",
     "occurred_at": "2026-07-01T15:00:00+08:00", "recorded_at": "2026-07-01T15:00:01+08:00",
     "data": {"reached": True, "satisfied": False, "agent": "AG-2"}},
    {"event_id": "e12", "type": "customer.callback", "incident_id": "I1",
     "occurred_at": "2026-07-01T16:00:00+08:00", "data": {"reached": False}},
    {"event_id": "e13", "type": "duty.shift_started", "incident_id": None,
     "occurred_at": "2026-07-01T08:30:00+08:00",
     "data": {"team": "Team A", "leader": "L-1", "members": ["AG-1", "D\u00e9-1"]}},
    {"event_id": "e14", "type": "duty.shift_started",
     "occurred_at": "2026-07-02T08:30:00+08:00", "data": {"team": "Team B", "leader": "L-2"}},
    {"event_id": "e15", "type": "crew.rostered", "incident_id": None,
     "occurred_at": "2026-07-01T08:00:00+08:00",
     "data": {"crew": "C1", "grid": "G1", "skills": ["cable", "line"]}},
    {"event_id": "e16", "type": "crew.departed", "incident_id": "I1",
     "occurred_at": "2026-07-01T09:10:00+08:00", "data": {"crew": "C1"}},
]
"""One event of every type (tests check that every type is here)."""

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
    STAMPS, st.just([]), st.just({}), st.just(["urban"]), st.just({"grid": "G"}),
    st.sampled_from([["a", "b"], ["a", ""], [""], ["a", 1], [None], [["a"]], ["x\u0000"],
                     "nul\u0000", "\u0000", "\ud800", ["\udfff"], "customer.callback",
                     "duty.shift_started", "crew.rostered", "true", {"x": "\u0000"}]))
PLAIN = st.sampled_from([None, True, False, "", "x", 1, ["a"], [""], "2026-07-01T09:00:00Z"])
"""Values most fields are one rule away from."""
FIELDS = ("event_id", "type", "incident_id", "occurred_at", "recorded_at", "schema_version",
          "source", "actor", "time", "data", "extra", "\u0000key")
DATA_FIELDS = ("grid", "area", "priority", "customers_affected", "agent", "description",
               "verified_by", "reason", "into_incident_id", "crew", "dispatcher", "eta_minutes",
               "cause", "equipment", "customers_restored", "satisfied", "data", "extra",
               "reached", "team", "leader", "members", "skills", "\u0000key")


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    obj = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    obj.setdefault("schema_version", 1)
    # Half the data fields touched are the type's own (the rules worth breaking).
    own = sorted({key for event in VALID if event["type"] == obj["type"] for key in event["data"]})
    data_fields = st.sampled_from(DATA_FIELDS) | (st.sampled_from(own) if own else st.nothing())
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(("top", "data", "delete", "delete_data")))
        # Copies: a shared {} set as data and then into itself would be a cycle.
        if where == "top":
            obj[draw(st.sampled_from(FIELDS))] = copy.deepcopy(draw(VALUES | PLAIN))
        elif where == "data" and isinstance(obj.get("data"), dict):
            obj["data"][draw(data_fields)] = copy.deepcopy(draw(VALUES | PLAIN))
        elif where == "delete":
            obj.pop(draw(st.sampled_from(FIELDS)), None)
        elif isinstance(obj.get("data"), dict):
            obj["data"].pop(draw(data_fields), None)
    style = draw(st.sampled_from(("compact", "spaced", "ascii", "indent")))
    if style == "compact":
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only its escape can be written
            return json.dumps(obj, separators=(",", ":"))
        return text
    if style == "spaced":
        return json.dumps(obj)
    if style == "ascii":  # every non-ASCII character escaped, e.g. \u0301
        return json.dumps(obj, ensure_ascii=True).replace('"x"', '"\\u0078"')
    return " " + json.dumps(obj) + "\t"


def _facts_by_line(path: Path) -> tuple[dict[int, tuple[Any, ...]], dict[int, str]]:
    """Each accepted line's values as ``_want`` lists them, and each rejected line's reason."""
    rejected: dict[int, str] = {}
    events = load_columnar([path], on_rejected=lambda r: rejected.__setitem__(r.record.line,
                                                                             r.reason))
    names = (*FACT_COLUMNS, *EXTRA_COLUMNS)
    rows = events.db.execute(f"SELECT {', '.join(names)} FROM facts ORDER BY n").fetchall()
    events.db.close()
    return {row[0]: (*row[1:-1], None if row[-1] is None else tuple(row[-1]))
            for row in rows}, rejected


def _want(fact: Fact) -> tuple[Any, ...]:
    """The values of the contract's fact, in ``_facts_by_line``'s order."""
    return (fact.event_id, fact.type, fact.incident_id, fact.at, fact.recorded, fact.grid,
            fact.area, fact.priority, fact.customers, fact.crew, fact.into, fact.agent,
            fact.reached, fact.satisfied, fact.team, fact.leader, fact.members)


@PROPERTY_SETTINGS
@given(st.lists(mutated_lines(), min_size=1, max_size=40))
def test_columnar_check_accepts_exactly_what_the_contract_accepts(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp) / "mutated.jsonl", lines)
        accepted, rejected = _facts_by_line(path)
    for number, line in enumerate(lines, start=1):
        try:
            fact = fact_of(parse_event(line.strip()))  # engines read lines stripped
        except InvalidEvent as exc:
            assert rejected.get(number) == exc.reason, (line, accepted.get(number))
            continue
        if rejected.get(number, "").startswith("conflict:"):
            # Valid, but a copy of an earlier line's event id with other content.
            assert any(json.loads(earlier).get("event_id") == fact.event_id
                       for earlier in lines[:number - 1]), line
            continue
        assert number not in rejected, (line, rejected.get(number))
        if number in accepted:
            assert accepted[number] == _want(fact), line
            continue
        # A later copy of an accepted event (a duplicate): only the first copy is kept,
        # with the same values but the first copy's recorded_at.
        first = min(n for n, values in accepted.items() if values[0] == fact.event_id)
        assert first < number, line
        want = _want(fact)
        assert accepted[first][:4] + accepted[first][5:] == want[:4] + want[5:], line


def test_the_check_knows_every_type_of_the_contract() -> None:
    assert set(EVENT_TYPES) == contract.EVENT_TYPES
    assert {event["type"] for event in VALID} == contract.EVENT_TYPES


def test_plain_events_of_every_type_are_accepted_by_the_check_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the legacy line goes to the contract (speed: a type the check does not
    know sends every line of it through pydantic)."""
    asked: list[bytes] = []
    real = projections.columnar.facts_of
    def spy(raws: list[bytes]) -> list[Fact | str]:
        asked.extend(raws)
        return real(raws)
    monkeypatch.setattr(projections.columnar, "facts_of", spy)
    lines = [json.dumps({"schema_version": 1, **event} if "time" not in event else event)
             for event in VALID]
    accepted, rejected = _facts_by_line(write_lines(tmp_path / "plain.jsonl", lines))
    assert not rejected
    assert [json.loads(raw)["event_id"] for raw in asked] == ["e10"]
    for number, line in enumerate(lines, start=1):
        assert accepted[number] == _want(fact_of(parse_event(line))), line


def _line(event_type: str, data: dict[str, Any], **envelope: Any) -> str:
    base = next(event for event in VALID if event["type"] == event_type)
    return json.dumps({**base, "schema_version": 1, **envelope, "data": data})


RULE_LINES = [
    _line("customer.callback", {"reached": False, "satisfied": True}),
    _line("customer.callback", {"reached": False, "satisfied": False}),
    _line("customer.callback", {"reached": False, "satisfied": None}),
    _line("customer.callback", {"satisfied": True}),
    _line("customer.callback", {"reached": "true"}),
    _line("customer.callback", {"reached": 1}),
    _line("customer.callback", {"reached": None}),
    _line("customer.callback", {"reached": True, "satisfied": "yes"}),
    _line("customer.callback", {"reached": True, "agent": ""}),
    _line("customer.callback", {"reached": True, "agent": 7}),
    _line("customer.callback", {"reached": True}, incident_id=None),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": [""]}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": [1]}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": [None]}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": [["a"]]}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": "a"}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": {}}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": []}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": None}),
    _line("duty.shift_started", {"team": "T", "leader": "L", "members": ["a", "a"]}),
    _line("duty.shift_started", {"team": "", "leader": "L"}),
    _line("duty.shift_started", {"team": "T"}),
    _line("duty.shift_started", {"team": "T", "leader": 5}),
    _line("duty.shift_started", {"team": "T", "leader": "L"}, incident_id=""),
    _line("duty.shift_started", {"team": "T", "leader": "L"}, incident_id="I9"),
    _line("duty.shift_started", {"team": "T", "leader": "L"}, incident_id=3),
    _line("crew.rostered", {"crew": "C", "grid": "G", "skills": None}),
    _line("crew.rostered", {"crew": "C", "grid": "G", "skills": []}),
    _line("crew.rostered", {"crew": "C", "grid": "G", "skills": [""]}),
    _line("crew.rostered", {"crew": "C", "grid": "G", "skills": "cable"}),
    _line("crew.rostered", {"crew": "C"}),
    _line("crew.rostered", {"crew": "", "grid": "G"}),
    _line("crew.rostered", {"crew": "C", "grid": "G"}, incident_id="I9"),
    _line("call.received", {"grid": "G", "area": "urban", "agent": ""}),
    _line("call.received", {"grid": "G", "area": "urban", "agent": None}),
]


@pytest.mark.parametrize("line", RULE_LINES)
def test_each_rule_of_the_types_is_decided_as_the_contract(tmp_path: Path, line: str) -> None:
    accepted, rejected = _facts_by_line(write_lines(tmp_path / "rule.jsonl", [line]))
    try:
        fact = fact_of(parse_event(line))
    except InvalidEvent as exc:
        assert rejected == {1: exc.reason} and not accepted
    else:
        assert accepted == {1: _want(fact)} and not rejected


NUL_LINES = [
    '{"event_id":"n1","schema_version":1,"type":"call.verified","incident_id":"I",'
    '"occurred_at":"2026-07-01T09:00:00Z","data":{"verified_by":"a\\u0000"}}',
    '{"event_id":"n2","schema_version":1,"type":"call.verified","incident_id":"I",'
    '"occurred_at":"2026-07-01T09:00:00Z","data":{},"note\\u0000":1}',
    '{"event_id":"n3","schema_version":1,"type":"call.verified","incident_id":"I",'
    '"occurred_at":"2026-07-01T09:00:00Z","data":{"x":["\\u0000"]}}',
    '{"event_id":"n4","schema_version":1,"type":"duty.shift_started",'
    '"occurred_at":"2026-07-01T09:00:00Z","data":{"team":"T","leader":"L","members":["\\u0000"]}}',
    '{"event_id":"n5","schema_version":1,"type":"call.verified","incident_id":"I",'
    '"occurred_at":"2026-07-01T09:00:00Z","data":{"verified_by":"a\\\\u0000"}}',
]


@pytest.mark.parametrize("line", NUL_LINES)
def test_a_nul_anywhere_is_decided_by_the_contract(tmp_path: Path, line: str) -> None:
    """The check reads some fields only; a NUL in another one (an unknown key, a list)
    was once accepted by the columnar engine and refused by the contract."""
    accepted, rejected = _facts_by_line(write_lines(tmp_path / "nul.jsonl", [line]))
    try:
        fact = fact_of(parse_event(line))
    except InvalidEvent as exc:
        assert rejected == {1: exc.reason} and not accepted
    else:  # an escaped backslash followed by u0000 is no NUL
        assert accepted == {1: _want(fact)} and not rejected


def test_line_numbers_stay_exact_around_blank_lines(tmp_path: Path) -> None:
    """Blank and whitespace-only lines are not rows; rejected lines keep their numbers."""
    good = [json.dumps({"schema_version": 1, **event}) for event in VALID if "time" not in event]
    text = ("\n \t\n" + good[0] + "\r\n\n" + "{not json\n" + good[1] + "\n\x0b\n"
            + json.dumps({**json.loads(good[0]), "incident_id": "other"}) + "\n"
            + '  {"event_id": "x", "type": "call.verified"}\t\n' + good[11] + "\n\n"
            + good[2])  # the last line has no line end
    events = tmp_path / "blank.jsonl"
    events.write_bytes(text.encode("utf-8"))
    outputs, rejects = [], []
    for engine in ("columnar", "exact"):
        reject_file = tmp_path / f"{engine}.jsonl"
        outputs.append(_run("report", "--input", str(events), "--engine", engine,
                            "--rejects", str(reject_file)))
        rejects.append([(r["where"], r["reason"]) for r in map(
            json.loads, reject_file.read_text(encoding="utf-8").splitlines())])
    assert outputs[0] == outputs[1]
    wheres = [where for where, _ in rejects[0]]
    assert [w.rsplit(":", 1)[1] for w in wheres] == ["5", "8", "9"], rejects[0]
    assert rejects[0] == rejects[1]
    load_columnar([events]).db.close()  # read by the columnar engine, not handed over


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


def test_rows_read_on_several_threads_keep_their_line_numbers(tmp_path: Path) -> None:
    """A file large enough for DuckDB to read in parallel: every accepted event is the
    row of its own line, every rejected line keeps its number. The file is proven to be
    read out of order when insertion order is not preserved (so the numbering really
    rests on ``preserve_insertion_order``, not on a one-thread scan)."""
    template = json.loads(json.dumps({"schema_version": 1, **VALID[0]}))
    lines, bad = [], set()
    for k in range(1, 140_001):
        if k % 9_973 == 0:
            lines.append('{"event_id": "broken", "type": ')  # invalid JSON, line k
            bad.add(k)
            continue
        event = {**template, "event_id": f"e-{k:07d}", "incident_id": f"i-{k % 5_000}"}
        lines.append(json.dumps(event))
    path = tmp_path / "large.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > 32_000_000  # beyond one buffer of DuckDB's reader

    import duckdb
    shuffled = 0
    for _ in range(5):  # threads interleave as the machine lets them: give them chances
        with duckdb.connect() as db:
            db.execute("SET preserve_insertion_order = false")
            db.execute("SET threads = 4")
            db.execute(f"CREATE TABLE raw AS {projections.columnar._read_sql(str(path))}")
            shuffled = db.execute(
                "SELECT count(*) FROM raw WHERE event_id IS NOT NULL AND "
                "event_id <> format('\"e-{:07d}\"', rowid + 1)").fetchall()[0][0]
        if shuffled:
            break
    assert shuffled > 0, "the file was read in order even without preserving it"

    rejected: list[int] = []
    events = load_columnar([path], on_rejected=lambda r: rejected.append(r.record.line))
    try:
        assert set(rejected) == bad and len(rejected) == len(bad)
        misplaced = events.db.execute(
            "SELECT count(*) FROM facts WHERE eid <> format('e-{:07d}', n)").fetchall()[0][0]
        count = events.db.execute("SELECT count(*) FROM facts").fetchall()[0][0]
    finally:
        events.db.close()
    assert misplaced == 0 and count == 140_000 - len(bad)
