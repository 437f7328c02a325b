"""Property tests: the engine's duty report against the naive oracle (tests/oracle.py).

Random small histories -- several incidents, random subsets of the checkpoint
events, times around a duty-period boundary (and around daylight-saving days),
timestamps written with assorted offsets, duplicates, rejected and merged calls,
clock-skewed (negative) stages, legacy v0 events and malformed lines -- are fed to
the real CLI (``dispatch.cli.main``) in-process, and checked for:

(a) agreement with the oracle on every contract key of docs/report.md;
(b) order and duplication independence, byte for byte;
(c) two files or two ingests into one SQLite store == one ``report --input``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dispatch.cli import main
from tests.oracle import Calendar, Rejected, compare_reports, oracle_report, validate

ZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC")
STARTS = ("08:30", "00:00", "20:00", "02:30")
BASE_DATES = (date(2026, 7, 1), date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8),
              date(2026, 11, 1))
OFFSETS = (timedelta(hours=8), timedelta(hours=-5), None, timedelta(hours=5, minutes=45),
           timedelta(hours=2), timedelta(0), timedelta(hours=-3, minutes=-30))
CHECKPOINT_TYPES = ("call.received", "call.verified", "crew.departed", "crew.arrived",
                    "fault.diagnosed", "repair.completed", "power.restored")
MICROS_PER_MINUTE = 60_000_000

# ORACLE_MAX_EXAMPLES=2000 for a deeper (slower) search than the default budget
# ORACLE_NO_SHRINK=1: report the first failing example as found (the mutation run)
PROPERTY_SETTINGS = settings(max_examples=int(os.environ.get("ORACLE_MAX_EXAMPLES", "100")),
                             deadline=None,
                             phases=[p for p in Phase if not (
                                 p is Phase.shrink and os.environ.get("ORACLE_NO_SHRINK"))],
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])


# -- rendering events ---------------------------------------------------------------

def stamp(instant: datetime, offset: timedelta | None) -> str:
    """RFC 3339 text of ``instant`` at ``offset`` (None: UTC written as ``Z``)."""
    local = instant.astimezone(timezone(offset or timedelta(0)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        micros = local.microsecond
        text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    if offset is None:
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


GRIDS = ("URB-1", "URB-2", "RUR-9")
AREAS = ("urban", "rural", "remote")
CREWS = ("CREW-1", "CREW-2", "CREW-7")


@dataclass(frozen=True)
class Spec:
    """One event before rendering."""

    event_id: str
    kind: str
    incident_id: str
    at: datetime  # UTC
    grid: str = GRIDS[0]
    area: str = AREAS[0]
    crew: str = CREWS[0]


def data_for(spec: Spec) -> dict[str, Any]:
    kind = spec.kind
    if kind == "call.received":
        return {"grid": spec.grid, "area": spec.area, "priority": "important",
                "customers_affected": 120, "agent": "AG-1", "x_extra": {"kept": True}}
    if kind == "call.rejected":
        return {"reason": "customer-side fault"}
    if kind == "call.merged":
        return {"into_incident_id": f"{spec.incident_id}-main"}
    if kind in ("crew.dispatched", "crew.departed", "crew.arrived"):
        return {"crew": spec.crew}
    if kind == "power.restored":
        return {"customers_restored": 100}
    if kind == "incident.closed":
        return {"satisfied": True}
    return {}


def render(spec: Spec, offset: timedelta | None, legacy: bool = False,
           reorder: bool = False) -> str:
    data = data_for(spec)
    obj: dict[str, Any] = {"event_id": spec.event_id, "type": spec.kind,
                           "incident_id": spec.incident_id}
    if legacy:
        obj["schema_version"] = 0
        obj["time"] = stamp(spec.at, offset)
        if "crew" in data:
            data["crew_id"] = data.pop("crew")
    else:
        obj["occurred_at"] = stamp(spec.at, offset)
        obj["recorded_at"] = stamp(spec.at + timedelta(seconds=30), timedelta(hours=8))
        obj["source"] = "test"
        obj["unknown_envelope_field"] = 1
    obj["data"] = data
    if reorder:
        obj = dict(reversed(list(obj.items())))
    return json.dumps(obj, separators=(",", ":"))


MALFORMED_KINDS = ("bad_json", "unknown_type", "no_event_id", "no_incident_id",
                   "no_occurred_at", "naive_occurred_at", "number_occurred_at",
                   "naive_recorded_at", "no_required_data", "version_2", "not_object",
                   "no_data", "version_true", "version_false", "february_30", "offset_24",
                   "hour_24", "second_60")


def malformed(spec: Spec, how: str) -> str:
    """A line that docs/events.md rejects, built from a valid event."""
    if how == "bad_json":
        return render(spec, None)[:-7]
    if how == "not_object":
        return json.dumps([spec.event_id])
    obj = json.loads(render(spec, timedelta(hours=8)))
    if how == "unknown_type":
        obj["type"] = "call.recieved"
    elif how == "no_event_id":
        del obj["event_id"]
    elif how == "no_incident_id":
        del obj["incident_id"]
    elif how == "no_occurred_at":
        del obj["occurred_at"]
    elif how == "naive_occurred_at":
        obj["occurred_at"] = obj["occurred_at"][:-6]
    elif how == "number_occurred_at":
        obj["occurred_at"] = int(spec.at.timestamp())
    elif how == "naive_recorded_at":
        obj["recorded_at"] = obj["recorded_at"][:-6]
    elif how == "version_2":
        obj["schema_version"] = 2
    elif how == "no_data":
        del obj["data"]
    elif how in ("version_true", "version_false"):
        obj["schema_version"] = how == "version_true"
    elif how == "february_30":  # a date that does not exist, written like a real one
        obj["occurred_at"] = "2026-02-30" + obj["occurred_at"][10:]
    elif how == "offset_24":
        obj["occurred_at"] = obj["occurred_at"][:-6] + "+24:00"
    elif how == "hour_24":
        obj["occurred_at"] = obj["occurred_at"][:11] + "24" + obj["occurred_at"][13:]
    elif how == "second_60":
        obj["occurred_at"] = obj["occurred_at"][:17] + "60" + obj["occurred_at"][19:]
    elif how == "no_required_data":
        # every type with required data loses it; others lose the whole type field
        required = {"call.received": "grid", "call.rejected": "reason",
                    "call.merged": "into_incident_id", "crew.dispatched": "crew",
                    "crew.departed": "crew", "crew.arrived": "crew"}
        if spec.kind in required:
            del obj["data"][required[spec.kind]]
        else:
            del obj["type"]
    return json.dumps(obj)


# -- the history strategy -----------------------------------------------------------

@dataclass(frozen=True)
class History:
    zone: str
    duty_start: str
    lines: list[str]


micros_in = st.integers  # readability below


@st.composite
def histories(draw: st.DrawFn, conflicts: bool = False) -> History:
    """``conflicts``: also reuse event ids with different content (then the file
    order decides which copy stands, so only tests that keep the order use them)."""
    zone = draw(st.sampled_from(ZONES))
    duty_start = draw(st.sampled_from(STARTS))
    base = draw(st.sampled_from(BASE_DATES))
    calendar = Calendar(zone, duty_start)
    boundaries = [calendar.start_of(base + timedelta(days=d)) for d in (-1, 0, 1, 2)]
    specs: list[Spec] = []
    counter = iter(range(10_000))

    def new(kind: str, incident_id: str, at: datetime) -> Spec:
        # Grid, area and crew vary per event, so the attribution rules (earliest call,
        # earliest arrival else dispatch) and their tie rules decide the breakdowns.
        spec = Spec(f"ev-{next(counter)}", kind, incident_id, at,
                    grid=draw(st.sampled_from(GRIDS)), area=draw(st.sampled_from(AREAS)),
                    crew=draw(st.sampled_from(CREWS)))
        specs.append(spec)
        return spec

    for n in range(draw(st.integers(1, 6))):
        incident_id = f"INC-{n}"
        anchor = draw(st.sampled_from(boundaries))
        where = draw(st.sampled_from(("exact", "just_before", "near", "anywhere")))
        if where == "exact":
            t0 = anchor
        elif where == "just_before":
            t0 = anchor - timedelta(microseconds=1)
        elif where == "near":
            t0 = anchor + timedelta(microseconds=draw(
                micros_in(-90 * MICROS_PER_MINUTE, 90 * MICROS_PER_MINUTE)))
        else:
            t0 = anchor + timedelta(minutes=draw(st.integers(-26 * 60, 26 * 60)),
                                    seconds=draw(st.integers(0, 59)))
        times = [t0]
        for _ in range(6):
            minutes = draw(st.one_of(st.integers(0, 300), st.integers(-40, -1),
                                     st.just(0)))
            extra_micros = draw(st.sampled_from((0, 0, 500_000, 123_456)))
            times.append(times[-1] + timedelta(minutes=minutes,
                                               microseconds=extra_micros))
        # t6 exactly on the end of t0's period (not before it: open at handover), or
        # one microsecond before it
        handover = draw(st.sampled_from((None, None, "at_end", "just_before_end")))
        if handover is not None:
            end = calendar.end_of(calendar.duty_date_of(t0))
            times[6] = end if handover == "at_end" else end - timedelta(microseconds=1)
        present = draw(st.lists(st.booleans(), min_size=7, max_size=7))
        for k, kind in enumerate(CHECKPOINT_TYPES):
            if present[k] or (k == 0 and draw(st.booleans())):
                new(kind, incident_id, times[k])
        # repeated checkpoint events (second call, re-arrival...), maybe earlier, maybe
        # at the very same instant (then the tie rules decide grid, area and crew)
        for _ in range(draw(st.integers(0, 3))):
            k = draw(st.sampled_from((0, 0, 3, 3, draw(st.integers(0, 6)))))
            shift = draw(st.one_of(st.just(timedelta(0)),
                                   st.integers(-120, 120).map(lambda m: timedelta(minutes=m))))
            new(CHECKPOINT_TYPES[k], incident_id, times[k] + shift)
        for _ in range(draw(st.integers(0, 2))):
            new("crew.dispatched", incident_id, times[1] + timedelta(minutes=1))
        if draw(st.booleans()):
            new("incident.closed", incident_id, times[6] + timedelta(minutes=30))
        ending = draw(st.sampled_from((None, None, None, "call.rejected", "call.merged")))
        if ending:
            new(ending, incident_id, times[1] + timedelta(minutes=2))
        if not any(spec.incident_id == incident_id for spec in specs):
            new("call.received", incident_id, t0)

    lines: list[str] = []
    for spec in specs:
        legacy = draw(st.integers(0, 9)) == 0
        lines.append(render(spec, draw(st.sampled_from(OFFSETS)), legacy=legacy))
    # duplicates: the same event_id again, verbatim or re-serialised
    for _ in range(draw(st.integers(0, 4))):
        spec = draw(st.sampled_from(specs))
        if draw(st.booleans()):
            lines.append(render(spec, draw(st.sampled_from(OFFSETS)), reorder=True))
        else:
            lines.append(render(spec, None))
    # conflicting copies: the same event_id, a different instant or grid/area/crew
    for _ in range(draw(st.integers(0, 3)) if conflicts else 0):
        spec = draw(st.sampled_from(specs))
        if draw(st.booleans()):
            other = replace(spec, at=spec.at + timedelta(minutes=draw(st.integers(1, 90))))
        else:
            other = replace(spec, grid=draw(st.sampled_from(GRIDS)),
                            area=draw(st.sampled_from(AREAS)),
                            crew=draw(st.sampled_from(CREWS)))
        lines.append(render(other, draw(st.sampled_from(OFFSETS))))
    # malformed lines, sometimes carrying an event_id that is also used validly
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(MALFORMED_KINDS))
        base_spec = draw(st.sampled_from(specs))
        if draw(st.booleans()):
            base_spec = Spec(f"bad-{next(counter)}", base_spec.kind, base_spec.incident_id,
                             base_spec.at)
        lines.append(malformed(base_spec, how))
    # crew roster entries: no incident, no effect on any figure, never rejected
    for n in range(draw(st.integers(0, 2))):
        roster: dict[str, Any] = {
            "event_id": f"roster-{n}", "type": "crew.rostered",
            "occurred_at": stamp(boundaries[1], None),
            "data": {"crew": f"CREW-{n}", "grid": "URB-1", "skills": ["overhead"]}}
        if draw(st.booleans()):
            roster["incident_id"] = None
        lines.extend([json.dumps(roster)] * draw(st.integers(1, 2)))
    order = draw(st.permutations(range(len(lines))))
    return History(zone, duty_start, [lines[i] for i in order])


# -- running the engine -------------------------------------------------------------

def calendar_options(history: History) -> list[str]:
    return ["--duty-timezone", history.zone, "--duty-start", history.duty_start]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_cli(*argv: str) -> None:
    code = main(list(argv))
    assert code == 0, f"dispatch {' '.join(argv)} exited {code}"


def report_text(folder: Path, history: History, lines: list[str], name: str = "in") -> str:
    events = write_lines(folder / f"{name}.jsonl", lines)
    out = folder / f"{name}.json"
    run_cli("report", "--input", str(events), "--format", "json", "--output", str(out),
            *calendar_options(history))
    return out.read_text(encoding="utf-8")


# -- (a) engine == oracle -----------------------------------------------------------

@PROPERTY_SETTINGS
@given(histories(conflicts=True))
def test_engine_report_matches_oracle(history: History) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = json.loads(report_text(Path(tmp), history, history.lines))
    oracle = oracle_report(history.lines, history.zone, history.duty_start)
    problems = compare_reports(engine, oracle)
    assert not problems, "\n".join(problems)


# -- (b) permutation and duplication ------------------------------------------------

@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_any_order_and_any_duplication_give_identical_json(history: History,
                                                           data: st.DataObject) -> None:
    lines = history.lines
    shuffled = list(data.draw(st.permutations(lines), label="permutation"))
    copies = data.draw(st.lists(st.sampled_from(lines), max_size=6), label="copies")
    for copy in copies:
        at = data.draw(st.integers(0, len(shuffled)), label="insert at")
        shuffled.insert(at, copy)
    valid_copies = invalid_copies = 0
    for copy in copies:
        try:
            validate(copy)
            valid_copies += 1
        except Rejected:
            invalid_copies += 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        first = report_text(folder, history, lines, "first")
        second = report_text(folder, history, shuffled, "second")
    expected = json.loads(first)
    expected["duplicate_events"] += valid_copies
    expected["rejected_events"] += invalid_copies
    expected_text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    # the engine's JSON is exactly this rendering, so re-rendering loses nothing
    assert first == json.dumps(json.loads(first), indent=2, ensure_ascii=False) + "\n"
    assert second == expected_text


# -- (c) two files, two ingests into one SQLite store -------------------------------

@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_two_ingests_into_sqlite_equal_one_report_from_input(history: History,
                                                            data: st.DataObject) -> None:
    lines = history.lines
    in_a = data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)),
                     label="in first file")
    part_a = [line for line, a in zip(lines, in_a, strict=True) if a]
    part_b = [line for line, a in zip(lines, in_a, strict=True) if not a]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        whole = report_text(folder, history, lines, "whole")
        file_a = write_lines(folder / "a.jsonl", part_a)
        file_b = write_lines(folder / "b.jsonl", part_b)

        two_inputs = folder / "two-inputs.json"
        run_cli("report", "--input", str(file_a), str(file_b), "--output", str(two_inputs),
                *calendar_options(history))

        store = f"sqlite:///{folder / 'store.db'}"
        batch = str(data.draw(st.sampled_from([1, 2, 5, 10_000]), label="batch size"))
        for part in (file_a, file_b, file_a):  # the third run must find nothing new
            run_cli("ingest", str(part), "--store", store, "--batch-size", batch,
                    *calendar_options(history))
        from_store = folder / "from-store.json"
        run_cli("report", "--store", store, "--output", str(from_store))
        recut = folder / "recut.json"
        run_cli("report", "--store", store, "--output", str(recut),
                *calendar_options(history))

        assert json.loads(two_inputs.read_text()) == json.loads(whole)
        assert json.loads(from_store.read_text()) == json.loads(whole)
        assert json.loads(recut.read_text()) == json.loads(whole)


# -- one history worked out by hand (checks the oracle as much as the engine) ------------

def hand_event(event_id: str, kind: str, incident: str, local: str) -> str:
    spec = Spec(event_id, kind, incident,
                datetime.fromisoformat(f"2026-{local}+08:00").astimezone(UTC))
    return render(spec, timedelta(hours=8))


HAND_LINES = [
    # A: every checkpoint; stages 4, 6, 30, 10, 120, 10; restoration 180
    hand_event("a0", "call.received", "A", "07-01T09:00:00"),
    hand_event("a1", "call.verified", "A", "07-01T09:04:00"),
    hand_event("ad", "crew.dispatched", "A", "07-01T09:05:00"),
    hand_event("a2", "crew.departed", "A", "07-01T09:10:00"),
    hand_event("a3", "crew.arrived", "A", "07-01T09:40:00"),
    hand_event("a4", "fault.diagnosed", "A", "07-01T09:50:00"),
    hand_event("a5", "repair.completed", "A", "07-01T11:50:00"),
    hand_event("a6", "power.restored", "A", "07-01T12:00:00"),
    hand_event("ac", "incident.closed", "A", "07-01T13:00:00"),
    # B: verify 10, depart -15 (anomaly), arrive 35; restored after handover (23 h)
    hand_event("b0", "call.received", "B", "07-01T10:00:00"),
    hand_event("b0x", "call.received", "B", "07-01T10:20:00"),  # second call
    hand_event("b1", "call.verified", "B", "07-01T10:10:00"),
    hand_event("b1", "call.verified", "B", "07-01T10:10:00"),  # duplicate
    hand_event("b2", "crew.departed", "B", "07-01T09:55:00"),
    hand_event("b3", "crew.arrived", "B", "07-01T10:30:00"),
    hand_event("b3x", "crew.arrived", "B", "07-01T10:45:00"),  # second arrival
    hand_event("b6", "power.restored", "B", "07-02T09:00:00"),
    # C: restored "before" the call: not averaged, not a stage anomaly
    hand_event("c0", "call.received", "C", "07-01T11:00:00"),
    hand_event("c6", "power.restored", "C", "07-01T10:30:00"),
    # R and M: calls, but not outage incidents
    hand_event("r0", "call.received", "R", "07-01T12:00:00"),
    hand_event("r1", "call.verified", "R", "07-01T12:02:00"),
    hand_event("rx", "call.rejected", "R", "07-01T12:05:00"),
    hand_event("m0", "call.received", "M", "07-01T12:30:00"),
    hand_event("mx", "call.merged", "M", "07-01T12:31:00"),
    # U: no call yet
    hand_event("u3", "crew.arrived", "U", "07-01T14:00:00"),
    # D: exactly at the next duty start
    hand_event("d0", "call.received", "D", "07-02T08:30:00"),
    hand_event("d1", "call.verified", "D", "07-02T08:32:00"),
    # rejected lines
    '{"event_id": "x1", "type": "call.received"',
    hand_event("x2", "call.verified", "D", "07-02T08:40:00").replace("+08:00", ""),
]


def stages(*pairs: tuple[int, float | None]) -> dict[str, dict[str, Any]]:
    names = ("verify", "depart", "arrive", "diagnose", "repair", "restore")
    return {name: {"count": count, "mean_minutes": mean}
            for name, (count, mean) in zip(names, pairs, strict=True)}


def extra(closed: int, restoration_anomalies: int, arrival: tuple[int, float | None],
          after: tuple[int, float | None]) -> dict[str, Any]:
    return {"closed": closed, "restoration_anomalies": restoration_anomalies,
            "arrival": {"count": arrival[0], "mean_minutes": arrival[1]},
            "restore_after_arrival": {"count": after[0], "mean_minutes": after[1]}}


# arrival: A 40, B 30; restore after arrival: A 140, B 1350; C restored before its call
ALL_STAGES = stages((3, 16 / 3), (1, 6.0), (2, 32.5), (1, 10.0), (1, 120.0), (1, 10.0))
OVERALL = {"calls": 7, "incidents": 4, "restored": 3, "open_at_handover": 2,
           "stages": ALL_STAGES, "avg_restoration_minutes": 780.0, "anomalies": 1,
           **extra(1, 1, (2, 35.0), (2, 745.0))}
HAND_REPORT = {
    "duty_timezone": "Asia/Shanghai", "duty_start": "08:30",
    "duty_periods": [
        {"duty_date": "2026-07-01", "start": "2026-07-01T08:30:00+08:00",
         "end": "2026-07-02T08:30:00+08:00", "calls": 6, "incidents": 3, "restored": 3,
         "open_at_handover": 1,
         "stages": stages((2, 7.0), (1, 6.0), (2, 32.5), (1, 10.0), (1, 120.0), (1, 10.0)),
         "avg_restoration_minutes": 780.0, "anomalies": 1,
         **extra(1, 1, (2, 35.0), (2, 745.0))},
        {"duty_date": "2026-07-02", "start": "2026-07-02T08:30:00+08:00",
         "end": "2026-07-03T08:30:00+08:00", "calls": 1, "incidents": 1, "restored": 0,
         "open_at_handover": 1,
         "stages": stages((1, 2.0), (0, None), (0, None), (0, None), (0, None), (0, None)),
         "avg_restoration_minutes": None, "anomalies": 0,
         **extra(0, 0, (0, None), (0, None))},
    ],
    "overall": OVERALL,
    "unattributed": 1, "rejected_events": 2, "duplicate_events": 1, "conflicting_events": 0,
    "breakdowns": {
        # every call is URB-1 / urban: those members are the whole service
        "grid": {"URB-1": OVERALL},
        "area": {"urban": OVERALL},
        # A and B: CREW-1 arrived; C and D: no crew
        "crew": {
            "CREW-1": {"calls": 0, "incidents": 2, "restored": 2, "open_at_handover": 1,
                       "stages": stages((2, 7.0), (1, 6.0), (2, 32.5), (1, 10.0),
                                        (1, 120.0), (1, 10.0)),
                       "avg_restoration_minutes": 780.0, "anomalies": 1,
                       **extra(1, 0, (2, 35.0), (2, 745.0))},
            "(none)": {"calls": 0, "incidents": 2, "restored": 1, "open_at_handover": 1,
                       "stages": stages((1, 2.0), (0, None), (0, None), (0, None),
                                        (0, None), (0, None)),
                       "avg_restoration_minutes": None, "anomalies": 0,
                       **extra(0, 1, (0, None), (0, None))},
        },
    },
}


def test_oracle_agrees_with_a_hand_computed_report() -> None:
    assert compare_reports(HAND_REPORT, oracle_report(HAND_LINES)) == []


def test_engine_agrees_with_a_hand_computed_report() -> None:
    history = History("Asia/Shanghai", "08:30", HAND_LINES)
    with tempfile.TemporaryDirectory() as tmp:
        engine = json.loads(report_text(Path(tmp), history, HAND_LINES))
    assert compare_reports(engine, HAND_REPORT) == []
    # the engine's own extra: C's negative restoration is reported, not a stage anomaly
    assert engine["duty_periods"][0]["restoration_anomalies"] == 1


def test_compare_reports_notices_differences() -> None:
    oracle = oracle_report(HAND_LINES)
    wrong = json.loads(json.dumps(oracle))
    wrong["duty_periods"][0]["stages"]["arrive"]["mean_minutes"] += 1e-6
    wrong["overall"]["calls"] = 8
    wrong["duty_periods"][1]["end"] = "2026-07-03T08:30:00+00:00"
    del wrong["overall"]["anomalies"]
    wrong["duty_periods"][0]["closed"] = 0
    wrong["overall"]["arrival"]["count"] = 3
    wrong["duty_periods"][0]["restore_after_arrival"]["mean_minutes"] = 745.5
    wrong["breakdowns"]["crew"]["CREW-1"]["restoration_anomalies"] = 1
    wrong["breakdowns"]["grid"]["URB-2"] = wrong["breakdowns"]["grid"]["URB-1"]
    problems = compare_reports(wrong, oracle)
    assert len(problems) == 9, problems


def test_every_malformed_kind_is_rejected_by_the_oracle_and_the_engine() -> None:
    from schemas.parsing import InvalidEvent, parse_event

    spec = Spec("x1", "call.received", "INC-1", datetime(2026, 7, 1, 1, 0, tzinfo=UTC))
    for how in MALFORMED_KINDS:
        line = malformed(spec, how)
        try:
            validate(line)
            raise AssertionError(f"oracle accepts {how}: {line}")
        except Rejected:
            pass
        try:
            parse_event(line)
            raise AssertionError(f"engine accepts {how}: {line}")
        except InvalidEvent:
            pass


def test_conflicting_copies_are_counted_and_the_first_stands() -> None:
    call = Spec("c0", "call.received", "K", datetime(2026, 7, 1, 2, tzinfo=UTC),
                grid="URB-2", area="rural")
    arrival = Spec("c3", "crew.arrived", "K", datetime(2026, 7, 1, 3, tzinfo=UTC))
    lines = [
        render(call, timedelta(hours=8)),
        render(arrival, None),
        render(replace(arrival, at=arrival.at + timedelta(minutes=5)), None),  # conflict
        render(replace(call, grid="URB-1"), None),  # conflict: another grid
        render(call, timedelta(hours=-3), reorder=True),  # the same event, written anew
        render(arrival, timedelta(hours=8), legacy=True),  # a v0 copy: the same event
    ]
    oracle = oracle_report(lines)
    assert (oracle["conflicting_events"], oracle["duplicate_events"]) == (2, 2)
    assert list(oracle["breakdowns"]["grid"]) == ["URB-2"]
    assert oracle["overall"]["arrival"] == {"count": 1, "mean_minutes": 60.0}
    history = History("Asia/Shanghai", "08:30", lines)
    with tempfile.TemporaryDirectory() as tmp:
        engine = json.loads(report_text(Path(tmp), history, lines))
    assert compare_reports(engine, oracle) == []
