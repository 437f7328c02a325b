"""Duty periods (docs/kpis.md): boundaries, daylight saving, other start times.

Every number here is worked out by hand. Most checks go through the report the
user sees (``dispatch report --input ... --format json``); a few use
``projections.duty.DutyCalendar`` directly.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dispatch.cli import main
from projections.duty import DutyCalendar
from tests.oracle import compare_reports, oracle_report

HOUR_US = 3_600_000_000


def ev(event_id: str, kind: str, incident: str, at: str, **data: Any) -> str:
    payload: dict[str, Any] = dict(data)
    if kind == "call.received":
        payload = {"grid": "URB-1", "area": "urban", **payload}
    elif kind.startswith("crew.") and "crew" not in payload:
        payload["crew"] = "C1"
    elif kind == "call.rejected":
        payload.setdefault("reason", "customer-side fault")
    return json.dumps({"event_id": event_id, "type": kind, "incident_id": incident,
                       "occurred_at": at, "data": payload})


def report(folder: Path, lines: list[str], zone: str | None = None,
           start: str | None = None, name: str = "events") -> dict[str, Any]:
    events = folder / f"{name}.jsonl"
    events.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out = folder / f"{name}.json"
    argv = ["report", "--input", str(events), "--format", "json", "--output", str(out)]
    if zone:
        argv += ["--duty-timezone", zone]
    if start:
        argv += ["--duty-start", start]
    assert main(argv) == 0
    text = out.read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    # the oracle, independently, must agree on every contract key
    oracle = oracle_report(lines, zone or "Asia/Shanghai", start or "08:30")
    assert compare_reports(result, oracle) == []
    result["_text"] = text
    return result


def periods(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["duty_date"]: p for p in result["duty_periods"]}


def hours(period: dict[str, Any]) -> float:
    start = datetime.fromisoformat(period["start"])
    end = datetime.fromisoformat(period["end"])
    return (end.astimezone(UTC) - start.astimezone(UTC)) / timedelta(hours=1)


# -- the boundary itself -----------------------------------------------------------

def test_call_exactly_at_duty_start_belongs_to_the_new_period(tmp_path: Path) -> None:
    result = report(tmp_path, [
        ev("e1", "call.received", "AT", "2026-07-02T08:30:00+08:00"),
        ev("e2", "call.received", "BEFORE", "2026-07-02T08:29:59.999999+08:00"),
    ])
    by_date = periods(result)
    assert list(by_date) == ["2026-07-01", "2026-07-02"]
    assert by_date["2026-07-01"]["start"] == "2026-07-01T08:30:00+08:00"
    assert by_date["2026-07-01"]["end"] == "2026-07-02T08:30:00+08:00"
    assert by_date["2026-07-02"]["start"] == "2026-07-02T08:30:00+08:00"
    assert by_date["2026-07-02"]["end"] == "2026-07-03T08:30:00+08:00"
    for period in by_date.values():
        assert (period["calls"], period["incidents"], period["open_at_handover"]) == (1, 1, 1)
    assert result["overall"]["incidents"] == 2
    assert result["overall"]["calls"] == 2


def test_the_same_boundary_instants_written_in_utc(tmp_path: Path) -> None:
    result = report(tmp_path, [
        ev("e1", "call.received", "AT", "2026-07-02T00:30:00Z"),
        ev("e2", "call.received", "BEFORE", "2026-07-02T00:29:59.999999Z"),
    ])
    assert [(p["duty_date"], p["incidents"]) for p in result["duty_periods"]] == [
        ("2026-07-01", 1), ("2026-07-02", 1)]


def test_restore_at_the_period_end_is_open_at_handover(tmp_path: Path) -> None:
    t0 = "2026-07-01T09:00:00+08:00"
    result = report(tmp_path, [
        ev("a0", "call.received", "AT-END", t0),
        ev("a6", "power.restored", "AT-END", "2026-07-02T08:30:00+08:00"),
        ev("b0", "call.received", "BEFORE-END", t0),
        ev("b6", "power.restored", "BEFORE-END", "2026-07-02T08:29:59.999999+08:00"),
        ev("c0", "call.received", "NEVER", t0),
        ev("d0", "call.received", "LATE", t0),
        ev("d6", "power.restored", "LATE", "2026-07-03T10:00:00+08:00"),
    ])
    (period,) = result["duty_periods"]
    assert period["duty_date"] == "2026-07-01"
    assert period["incidents"] == 4
    assert period["restored"] == 3  # any t6, whenever it came
    assert period["open_at_handover"] == 3  # at the end, never, and a day late
    assert period["avg_restoration_minutes"] == pytest.approx(
        ((23 * 60 + 30) + (23 * 60 + 30 - 1e-6 / 60) + (49 * 60)) / 3, rel=1e-12)


def test_second_call_in_the_next_period_counts_there_as_a_call_only(tmp_path: Path) -> None:
    result = report(tmp_path, [
        ev("e1", "call.received", "INC", "2026-07-02T08:00:00+08:00"),
        ev("e2", "call.received", "INC", "2026-07-02T09:00:00+08:00"),
        ev("e3", "call.received", "REJ", "2026-07-02T10:00:00+08:00"),
        ev("e4", "call.rejected", "REJ", "2026-07-02T10:05:00+08:00"),
        ev("e5", "crew.arrived", "NO-CALL", "2026-07-02T10:00:00+08:00"),
    ])
    by_date = periods(result)
    assert (by_date["2026-07-01"]["calls"], by_date["2026-07-01"]["incidents"]) == (1, 1)
    assert (by_date["2026-07-02"]["calls"], by_date["2026-07-02"]["incidents"]) == (2, 0)
    assert by_date["2026-07-02"]["stages"]["verify"] == {"count": 0, "mean_minutes": None}
    assert by_date["2026-07-02"]["avg_restoration_minutes"] is None
    assert result["overall"]["calls"] == 3
    assert result["overall"]["incidents"] == 1
    assert result["unattributed"] == 1


def test_periods_without_calls_or_incidents_are_not_listed(tmp_path: Path) -> None:
    result = report(tmp_path, [
        ev("e1", "call.received", "A", "2026-07-01T09:00:00+08:00"),
        ev("e2", "power.restored", "A", "2026-07-05T09:00:00+08:00"),
        ev("e3", "call.received", "B", "2026-07-04T09:00:00+08:00"),
    ])
    assert [p["duty_date"] for p in result["duty_periods"]] == ["2026-07-01", "2026-07-04"]


# -- other duty start times ----------------------------------------------------------

@pytest.mark.parametrize(("start", "before", "at", "dates"), [
    ("00:00", "2026-06-30T23:59:59.999999+08:00", "2026-07-01T00:00:00+08:00",
     ("2026-06-30", "2026-07-01")),
    ("20:00", "2026-07-01T19:59:59.999999+08:00", "2026-07-01T20:00:00+08:00",
     ("2026-06-30", "2026-07-01")),
    ("08:30", "2026-07-01T08:29:59.999999+08:00", "2026-07-01T08:30:00+08:00",
     ("2026-06-30", "2026-07-01")),
])
def test_non_default_duty_start(tmp_path: Path, start: str, before: str, at: str,
                                dates: tuple[str, str]) -> None:
    result = report(tmp_path, [ev("e1", "call.received", "B", before),
                               ev("e2", "call.received", "A", at)], start=start)
    assert result["duty_start"] == start
    by_date = periods(result)
    assert list(by_date) == list(dates)
    assert by_date[dates[1]]["start"] == f"{dates[1]}T{start}:00+08:00"
    assert by_date[dates[0]]["end"] == f"{dates[1]}T{start}:00+08:00"


def test_duty_start_20_00_puts_the_evening_in_the_next_duty_date(tmp_path: Path) -> None:
    result = report(tmp_path, [ev("e1", "call.received", "A", "2026-07-01T21:00:00+08:00")],
                    start="20:00")
    (period,) = result["duty_periods"]
    assert period["duty_date"] == "2026-07-01"
    assert (period["start"], period["end"]) == ("2026-07-01T20:00:00+08:00",
                                                "2026-07-02T20:00:00+08:00")


# -- daylight saving: Europe/Berlin --------------------------------------------------

def test_berlin_spring_forward_period_is_23_hours(tmp_path: Path) -> None:
    # duty start 00:00: the period of 2026-03-29 runs 23:00Z (3-28) .. 22:00Z (3-29)
    result = report(tmp_path, [
        ev("e1", "call.received", "FIRST", "2026-03-29T00:00:00+01:00"),
        ev("e2", "call.received", "LAST", "2026-03-29T23:59:59+02:00"),
        ev("e3", "call.received", "NEXT", "2026-03-29T22:30:00Z"),  # 00:30+02:00 on 3-30
        ev("e4", "call.received", "PREV", "2026-03-28T22:59:59Z"),
    ], zone="Europe/Berlin", start="00:00")
    by_date = periods(result)
    assert list(by_date) == ["2026-03-28", "2026-03-29", "2026-03-30"]
    day = by_date["2026-03-29"]
    assert (day["start"], day["end"]) == ("2026-03-29T00:00:00+01:00",
                                          "2026-03-30T00:00:00+02:00")
    assert hours(day) == 23
    assert (day["calls"], day["incidents"]) == (2, 2)
    assert by_date["2026-03-30"]["incidents"] == 1
    assert by_date["2026-03-28"]["incidents"] == 1


def test_berlin_spring_forward_with_default_start(tmp_path: Path) -> None:
    # duty start 08:30: the period that contains the jump is the one of 2026-03-28
    result = report(tmp_path, [
        ev("e0", "call.received", "X", "2026-03-29T01:50:00+01:00"),
        ev("e1", "call.verified", "X", "2026-03-29T01:55:00+01:00"),
        ev("e2", "crew.departed", "X", "2026-03-29T03:05:00+02:00"),
        ev("e3", "crew.arrived", "X", "2026-03-29T03:08:00+02:00"),
        ev("e6", "power.restored", "X", "2026-03-29T03:10:00+02:00"),
    ], zone="Europe/Berlin")
    (period,) = result["duty_periods"]
    assert period["duty_date"] == "2026-03-28"
    assert (period["start"], period["end"]) == ("2026-03-28T08:30:00+01:00",
                                                "2026-03-29T08:30:00+02:00")
    assert hours(period) == 23
    stages = period["stages"]
    assert stages["verify"] == {"count": 1, "mean_minutes": 5.0}
    assert stages["depart"] == {"count": 1, "mean_minutes": 10.0}  # not 70
    assert stages["arrive"] == {"count": 1, "mean_minutes": 3.0}
    assert stages["diagnose"] == {"count": 0, "mean_minutes": None}
    assert stages["restore"] == {"count": 0, "mean_minutes": None}  # no t5
    assert period["avg_restoration_minutes"] == 20.0  # 01:50 CET -> 03:10 CEST
    assert period["open_at_handover"] == 0
    assert period["anomalies"] == 0


def test_berlin_spring_forward_handover_uses_the_real_23_hour_end(tmp_path: Path) -> None:
    # period of 2026-03-29 (start 00:00) ends at 22:00Z; a naive 24 h end is 23:00Z
    result = report(tmp_path, [
        ev("a0", "call.received", "LATE", "2026-03-29T10:00:00+02:00"),
        ev("a6", "power.restored", "LATE", "2026-03-29T22:30:00Z"),
        ev("b0", "call.received", "IN-TIME", "2026-03-29T10:00:00+02:00"),
        ev("b6", "power.restored", "IN-TIME", "2026-03-29T21:59:59Z"),
    ], zone="Europe/Berlin", start="00:00")
    (period,) = result["duty_periods"]
    assert period["open_at_handover"] == 1
    assert period["restored"] == 2
    assert period["avg_restoration_minutes"] == pytest.approx(
        (14 * 60 + 30 + 13 * 60 + 59 + 59 / 60) / 2, rel=1e-12)


def test_berlin_fall_back_period_is_25_hours(tmp_path: Path) -> None:
    # duty start 00:00: the period of 2026-10-25 runs 22:00Z (10-24) .. 23:00Z (10-25)
    result = report(tmp_path, [
        ev("e1", "call.received", "FIRST", "2026-10-25T00:00:00+02:00"),
        ev("e2", "call.received", "LATE", "2026-10-25T22:30:00Z"),  # 23:30+01:00
        ev("e3", "call.received", "NEXT", "2026-10-25T23:00:00Z"),  # 00:00+01:00 10-26
    ], zone="Europe/Berlin", start="00:00")
    by_date = periods(result)
    assert list(by_date) == ["2026-10-25", "2026-10-26"]
    day = by_date["2026-10-25"]
    assert (day["start"], day["end"]) == ("2026-10-25T00:00:00+02:00",
                                          "2026-10-26T00:00:00+01:00")
    assert hours(day) == 25
    assert day["incidents"] == 2
    assert by_date["2026-10-26"]["start"] == "2026-10-26T00:00:00+01:00"


def test_berlin_fall_back_durations_are_real_elapsed_minutes(tmp_path: Path) -> None:
    # 02:50 CEST (first pass) -> 02:10 CET (second pass) is 20 minutes, not -40
    result = report(tmp_path, [
        ev("e0", "call.received", "X", "2026-10-25T02:50:00+02:00"),
        ev("e1", "call.verified", "X", "2026-10-25T02:55:00+02:00"),
        ev("e2", "crew.departed", "X", "2026-10-25T02:05:00+01:00"),
        ev("e6", "power.restored", "X", "2026-10-25T02:10:00+01:00"),
    ], zone="Europe/Berlin")
    (period,) = result["duty_periods"]
    assert period["duty_date"] == "2026-10-24"
    assert (period["start"], period["end"]) == ("2026-10-24T08:30:00+02:00",
                                                "2026-10-25T08:30:00+01:00")
    assert hours(period) == 25
    assert period["stages"]["depart"] == {"count": 1, "mean_minutes": 10.0}
    assert period["avg_restoration_minutes"] == 20.0
    assert period["anomalies"] == 0


# -- daylight saving: America/New_York -----------------------------------------------

def test_new_york_spring_forward_and_fall_back_with_duty_start_20_00(tmp_path: Path) -> None:
    result = report(tmp_path, [
        ev("s0", "call.received", "SPRING", "2026-03-08T01:50:00-05:00"),
        ev("s6", "power.restored", "SPRING", "2026-03-08T03:10:00-04:00"),
        ev("f0", "call.received", "FALL", "2026-11-01T01:50:00-04:00"),
        ev("f6", "power.restored", "FALL", "2026-11-01T01:10:00-05:00"),
    ], zone="America/New_York", start="20:00")
    by_date = periods(result)
    assert list(by_date) == ["2026-03-07", "2026-10-31"]
    spring, fall = by_date["2026-03-07"], by_date["2026-10-31"]
    assert (spring["start"], spring["end"]) == ("2026-03-07T20:00:00-05:00",
                                                "2026-03-08T20:00:00-04:00")
    assert (fall["start"], fall["end"]) == ("2026-10-31T20:00:00-04:00",
                                            "2026-11-01T20:00:00-05:00")
    assert hours(spring) == 23
    assert hours(fall) == 25
    assert spring["avg_restoration_minutes"] == 20.0
    assert fall["avg_restoration_minutes"] == 20.0
    assert result["overall"]["avg_restoration_minutes"] == 20.0
    assert result["overall"]["anomalies"] == 0


def test_new_york_duty_start_in_the_spring_gap(tmp_path: Path) -> None:
    # 02:30 does not exist on 2026-03-08; zoneinfo's fold=0 reads it with the
    # pre-transition offset (-05:00), which is 03:30 EDT (projections/duty.py contract)
    result = report(tmp_path, [
        ev("e1", "call.received", "A", "2026-03-08T03:29:59-04:00"),
        ev("e2", "call.received", "B", "2026-03-08T03:30:00-04:00"),
    ], zone="America/New_York", start="02:30")
    by_date = periods(result)
    assert list(by_date) == ["2026-03-07", "2026-03-08"]
    assert by_date["2026-03-07"]["end"] == "2026-03-08T03:30:00-04:00"
    assert by_date["2026-03-08"]["start"] == "2026-03-08T03:30:00-04:00"


def test_new_york_duty_start_in_the_fall_overlap_is_the_first_one(tmp_path: Path) -> None:
    # 01:30 happens twice on 2026-11-01; the period starts at the first (EDT)
    result = report(tmp_path, [
        ev("e1", "call.received", "A", "2026-11-01T01:29:59-04:00"),
        ev("e2", "call.received", "B", "2026-11-01T01:30:00-04:00"),
        ev("e3", "call.received", "C", "2026-11-01T01:30:00-05:00"),
    ], zone="America/New_York", start="01:30")
    by_date = periods(result)
    assert list(by_date) == ["2026-10-31", "2026-11-01"]
    assert by_date["2026-11-01"]["start"] == "2026-11-01T01:30:00-04:00"
    assert by_date["2026-11-01"]["incidents"] == 2
    assert hours(by_date["2026-10-31"]) == 24
    assert hours(by_date["2026-11-01"]) == 25


# -- offsets don't matter ----------------------------------------------------------------

def test_the_same_instants_with_different_offsets_give_the_same_report(tmp_path: Path) -> None:
    history = [
        ("e0", "call.received", "X", datetime(2026, 7, 1, 0, 29, 59, 999_999, tzinfo=UTC)),
        ("e1", "call.verified", "X", datetime(2026, 7, 1, 0, 35, tzinfo=UTC)),
        ("e2", "crew.departed", "X", datetime(2026, 7, 1, 0, 50, 30, tzinfo=UTC)),
        ("e3", "crew.arrived", "X", datetime(2026, 7, 1, 1, 20, tzinfo=UTC)),
        ("e4", "fault.diagnosed", "X", datetime(2026, 7, 1, 1, 10, tzinfo=UTC)),  # skewed
        ("e5", "repair.completed", "X", datetime(2026, 7, 1, 3, 0, tzinfo=UTC)),
        ("e6", "power.restored", "X", datetime(2026, 7, 2, 0, 30, tzinfo=UTC)),
        ("f0", "call.received", "Y", datetime(2026, 7, 1, 0, 30, tzinfo=UTC)),
    ]
    offsets = [timedelta(0), timedelta(hours=8), timedelta(hours=-5),
               timedelta(hours=5, minutes=45), timedelta(hours=-9, minutes=-30),
               timedelta(hours=14)]
    texts = []
    for n, offset in enumerate(offsets):
        fixed = timezone(offset)
        lines = [ev(i, k, inc, at.astimezone(fixed).isoformat()) for i, k, inc, at in history]
        texts.append(report(tmp_path, lines, name=f"offset{n}")["_text"])
    assert all(text == texts[0] for text in texts)
    result = json.loads(texts[0])
    by_date = periods(result)
    assert list(by_date) == ["2026-06-30", "2026-07-01"]
    x = by_date["2026-06-30"]
    assert x["stages"]["verify"]["mean_minutes"] == pytest.approx(5 + 1e-6 / 60, rel=1e-12)
    assert x["stages"]["depart"] == {"count": 1, "mean_minutes": 15.5}
    assert x["stages"]["arrive"] == {"count": 1, "mean_minutes": 29.5}
    assert x["stages"]["diagnose"] == {"count": 0, "mean_minutes": None}
    assert x["stages"]["repair"] == {"count": 1, "mean_minutes": 110.0}
    assert x["stages"]["restore"] == {"count": 1, "mean_minutes": 21 * 60 + 30.0}
    assert x["anomalies"] == 1
    assert x["open_at_handover"] == 1  # restored a day after its period ended


def test_store_recut_to_another_calendar_equals_a_fresh_report(tmp_path: Path) -> None:
    lines = [
        ev("e0", "call.received", "X", "2026-03-29T01:50:00+01:00"),
        ev("e6", "power.restored", "X", "2026-03-29T03:10:00+02:00"),
        ev("f0", "call.received", "Y", "2026-03-29T22:30:00Z"),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["ingest", str(events), "--store", store]) == 0  # default calendar
    out = tmp_path / "recut.json"
    assert main(["report", "--store", store, "--duty-timezone", "Europe/Berlin",
                 "--duty-start", "00:00", "--output", str(out)]) == 0
    fresh = report(tmp_path, lines, zone="Europe/Berlin", start="00:00", name="fresh")
    assert out.read_text(encoding="utf-8") == fresh["_text"]
    assert [p["duty_date"] for p in fresh["duty_periods"]] == ["2026-03-29", "2026-03-30"]


# -- DutyCalendar directly ---------------------------------------------------------------

def micros(text: str) -> int:
    instant = datetime.fromisoformat(text)
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.mark.parametrize(("zone", "start", "instant", "expected"), [
    ("Asia/Shanghai", time(8, 30), "2026-07-02T08:30:00+08:00", date(2026, 7, 2)),
    ("Asia/Shanghai", time(8, 30), "2026-07-02T08:29:59.999999+08:00", date(2026, 7, 1)),
    ("Asia/Shanghai", time(0, 0), "2026-07-01T00:00:00+08:00", date(2026, 7, 1)),
    ("Asia/Shanghai", time(20, 0), "2026-07-01T19:59:59.999999+08:00", date(2026, 6, 30)),
    ("Europe/Berlin", time(0, 0), "2026-03-29T23:59:59.999999+02:00", date(2026, 3, 29)),
    ("Europe/Berlin", time(0, 0), "2026-03-30T00:00:00+02:00", date(2026, 3, 30)),
    ("Europe/Berlin", time(0, 0), "2026-10-25T23:59:59.999999+01:00", date(2026, 10, 25)),
    ("Europe/Berlin", time(8, 30), "2026-03-29T08:29:59+02:00", date(2026, 3, 28)),
    ("America/New_York", time(20, 0), "2026-03-08T19:59:59-04:00", date(2026, 3, 7)),
    ("America/New_York", time(20, 0), "2026-11-01T20:00:00-05:00", date(2026, 11, 1)),
    ("UTC", time(0, 0), "1970-01-01T00:00:00Z", date(1970, 1, 1)),
    ("UTC", time(0, 0), "1969-12-31T23:59:59.999999Z", date(1969, 12, 31)),
])
def test_calendar_duty_date(zone: str, start: time, instant: str, expected: date) -> None:
    assert DutyCalendar(zone, start).duty_date(micros(instant)) == expected


@pytest.mark.parametrize(("zone", "start", "duty_date", "length_hours"), [
    ("Asia/Shanghai", time(8, 30), date(2026, 7, 1), 24),
    ("Europe/Berlin", time(0, 0), date(2026, 3, 29), 23),
    ("Europe/Berlin", time(8, 30), date(2026, 3, 28), 23),
    ("Europe/Berlin", time(8, 30), date(2026, 3, 29), 24),
    ("Europe/Berlin", time(0, 0), date(2026, 10, 25), 25),
    ("Europe/Berlin", time(8, 30), date(2026, 10, 24), 25),
    ("America/New_York", time(20, 0), date(2026, 3, 7), 23),
    ("America/New_York", time(20, 0), date(2026, 10, 31), 25),
])
def test_calendar_bounds(zone: str, start: time, duty_date: date, length_hours: int) -> None:
    calendar = DutyCalendar(zone, start)
    begin, end = calendar.bounds(duty_date)
    assert end - begin == length_hours * HOUR_US
    assert calendar.duty_date(begin) == duty_date
    assert calendar.duty_date(end - 1) == duty_date
    assert calendar.duty_date(end) == duty_date + timedelta(days=1)
    assert calendar.duty_date(begin - 1) == duty_date - timedelta(days=1)
    local_start = datetime.combine(duty_date, start)
    assert calendar.format_instant(begin).startswith(local_start.isoformat())


# -- late events move incidents between periods (incremental store totals) ------------------

def test_late_events_reattribute_incidents_in_the_store(tmp_path: Path) -> None:
    first = [
        ev("a0", "call.received", "MOVES", "2026-07-02T09:00:00+08:00"),
        ev("a1", "call.verified", "MOVES", "2026-07-02T09:10:00+08:00"),
        ev("b0", "call.received", "REJECTED-LATER", "2026-07-02T09:30:00+08:00"),
        ev("b1", "call.verified", "REJECTED-LATER", "2026-07-02T09:31:00+08:00"),
        ev("c0", "call.received", "RESTORED-LATER", "2026-07-01T12:00:00+08:00"),
        ev("d3", "crew.arrived", "CALLED-LATER", "2026-07-01T13:00:00+08:00"),
    ]
    second = [
        ev("a0x", "call.received", "MOVES", "2026-07-02T08:00:00+08:00"),  # earlier call
        ev("bx", "call.rejected", "REJECTED-LATER", "2026-07-02T09:40:00+08:00"),
        ev("c6", "power.restored", "RESTORED-LATER", "2026-07-01T15:00:00+08:00"),
        ev("d0", "call.received", "CALLED-LATER", "2026-07-01T12:20:00+08:00"),
    ]
    store = f"sqlite:///{tmp_path / 'store.db'}"
    for n, lines in enumerate((first, second)):
        path = tmp_path / f"part{n}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert main(["ingest", str(path), "--store", store]) == 0
    out = tmp_path / "store.json"
    assert main(["report", "--store", store, "--output", str(out)]) == 0
    stored = json.loads(out.read_text(encoding="utf-8"))
    fresh = report(tmp_path, first + second, name="fresh")
    assert out.read_text(encoding="utf-8") == fresh["_text"]

    by_date = periods(stored)
    day1, day2 = by_date["2026-07-01"], by_date["2026-07-02"]
    assert (day1["calls"], day1["incidents"], day1["restored"]) == (3, 3, 1)
    assert (day2["calls"], day2["incidents"], day2["restored"]) == (2, 0, 0)
    assert day1["stages"]["verify"] == {"count": 1, "mean_minutes": 70.0}
    assert day1["stages"]["arrive"] == {"count": 0, "mean_minutes": None}  # no t2
    assert day1["avg_restoration_minutes"] == 180.0
    assert day1["open_at_handover"] == 2
    assert day2["stages"]["verify"] == {"count": 0, "mean_minutes": None}
    assert stored["unattributed"] == 0
