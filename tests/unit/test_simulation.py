"""The outage-history simulator (dispatch.simulation) and ``dispatch simulate``.

These tests check the simulator against docs/events.md and docs/kpis.md directly (types,
envelope, offsets, checkpoints), not against its own constants, so that a
change in the model that breaks the contract fails here.
"""

from __future__ import annotations

import argparse
import importlib
import io
import itertools
import json
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import dispatch.simulation as simulation
from dispatch.simulation import (
    Grid,
    MalformedLine,
    SimulationPlan,
    Simulator,
    simulate,
    simulate_lines,
    write_jsonl,
)

# docs/events.md, written out here on purpose (not imported from the module).
DESIGN_TYPES = {
    "call.received",
    "call.verified",
    "call.rejected",
    "call.merged",
    "crew.dispatched",
    "crew.departed",
    "crew.arrived",
    "fault.diagnosed",
    "repair.completed",
    "power.restored",
    "incident.closed",
    "customer.callback",
    "duty.shift_started",
}
CHECKPOINTS = (
    "call.received",
    "call.verified",
    "crew.departed",
    "crew.arrived",
    "fault.diagnosed",
    "repair.completed",
    "power.restored",
)
ENVELOPE = (
    "event_id",
    "type",
    "incident_id",
    "occurred_at",
    "recorded_at",
    "schema_version",
    "source",
    "actor",
    "data",
)
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --------------------------------------------------------------------------- helpers


def events_of(plan: SimulationPlan) -> list[dict[str, Any]]:
    return [dict(e) for e in simulate(plan)]


def jsonl_bytes(plan: SimulationPlan) -> bytes:
    buf = io.BytesIO()
    write_jsonl(simulate_lines(plan), buf)
    return buf.getvalue()


def instant(text: object) -> datetime:
    assert isinstance(text, str)
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, f"timestamp without offset: {text}"
    return value


class Incident:
    def __init__(self) -> None:
        self.first: dict[str, datetime] = {}
        self.types: Counter[str] = Counter()
        self.area = ""
        self.ended = False

    def t(self, kind: str) -> datetime | None:
        return self.first.get(kind)

    def minutes(self, a: str, b: str) -> float | None:
        ta, tb = self.t(a), self.t(b)
        if ta is None or tb is None:
            return None
        return (tb - ta).total_seconds() / 60.0


def incidents_of(events: list[dict[str, Any]]) -> dict[str, Incident]:
    """Fold per docs/kpis.md: earliest occurred_at per checkpoint, ids deduplicated."""
    seen: set[str] = set()
    out: dict[str, Incident] = defaultdict(Incident)
    for e in events:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        kind = e["type"]
        if kind.startswith("duty."):
            continue  # no incident
        inc = out[e["incident_id"]]
        inc.types[kind] += 1
        if kind in ("call.rejected", "call.merged"):
            inc.ended = True
        if kind == "call.received":
            inc.area = e["data"]["area"]
        when = instant(e["occurred_at"])
        if kind not in inc.first or when < inc.first[kind]:
            inc.first[kind] = when
    return dict(out)


def outages(events: list[dict[str, Any]]) -> dict[str, Incident]:
    return {k: v for k, v in incidents_of(events).items() if not v.ended}


def duty_period(day: date, zone: ZoneInfo, start: time = time(8, 30)) -> tuple[datetime, datetime]:
    begin = datetime.combine(day, start, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), start, tzinfo=zone)
    return begin, end


def canonical(events: list[dict[str, Any]]) -> list[bytes]:
    return sorted(json.dumps(e, sort_keys=True).encode() for e in events)


# --------------------------------------------------------------------------- determinism


def test_same_seed_and_plan_give_byte_identical_output() -> None:
    plan = SimulationPlan(
        seed=11,
        days=2,
        storm_days=(1,),
        duplicate_rate=0.03,
        shuffle=True,
        late_rate=0.02,
        skew_rate=0.05,
        malformed_rate=0.01,
    )
    first = jsonl_bytes(plan)
    assert first == jsonl_bytes(plan)
    assert len(first.splitlines()) > 1000
    assert jsonl_bytes(SimulationPlan(seed=12, days=2, storm_days=(1,))) != jsonl_bytes(
        SimulationPlan(seed=11, days=2, storm_days=(1,))
    )


def test_event_ids_are_unique_and_derived_from_the_seed() -> None:
    events = events_of(SimulationPlan(seed=5, days=2))
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("ev-5-") for i in ids)


def test_a_longer_plan_repeats_the_shorter_one() -> None:
    """Day 0 does not depend on how many days follow (except what is past the horizon)."""
    short = events_of(SimulationPlan(seed=3, days=2))
    longer = {e["event_id"]: e for e in events_of(SimulationPlan(seed=3, days=3))}
    assert short
    for e in short:
        assert longer[e["event_id"]] == e


# --------------------------------------------------------------------------- envelope


def test_every_event_has_the_envelope_and_offset_timestamps() -> None:
    plan = SimulationPlan(days=2, storm_days=(0,))
    events = events_of(plan)
    assert len(events) > 1000
    incident_ids = {e["incident_id"] for e in events}
    for e in events:
        assert tuple(e) == ENVELOPE
        assert e["type"] in DESIGN_TYPES
        assert e["schema_version"] == 1
        assert isinstance(e["event_id"], str) and e["event_id"]
        if e["type"].startswith("duty."):
            assert e["incident_id"] is None  # no incident: the Kafka key is "duty"
        else:
            assert isinstance(e["incident_id"], str) and e["incident_id"]
        assert isinstance(e["source"], str) and isinstance(e["actor"], str)
        for key in ("occurred_at", "recorded_at"):
            stamp = instant(e[key])
            assert stamp.utcoffset() == timedelta(hours=8)
            assert e[key].endswith("+08:00")
        data = e["data"]
        assert isinstance(data, dict)
        kind = e["type"]
        if kind == "call.received":
            assert data["grid"]
            assert data["area"] in ("urban", "rural", "remote")
            assert data.get("priority", "normal") in ("normal", "vulnerable", "important")
            assert isinstance(data.get("customers_affected", 0), int)
        elif kind in ("crew.dispatched", "crew.departed", "crew.arrived"):
            assert str(data["crew"]).startswith(("URB-", "RUR-", "REM-"))
        elif kind == "call.rejected":
            assert data["reason"]
        elif kind == "call.merged":
            assert data["into_incident_id"] in incident_ids
            assert data["into_incident_id"] != e["incident_id"]
    kinds = Counter(e["type"] for e in events)
    assert set(kinds) == DESIGN_TYPES, "a storm day should exercise every event type"


def test_events_validate_against_the_schema_models() -> None:
    from schemas import events as events_module

    plan = SimulationPlan(days=2, storm_days=(1,), skew_rate=0.1, late_rate=0.05)
    for line in jsonl_bytes(plan).splitlines():
        events_module.EVENT_ADAPTER.validate_json(line)


def test_timestamps_have_second_or_millisecond_precision() -> None:
    events = events_of(SimulationPlan())
    fractions = {len(e["occurred_at"]) for e in events}
    assert fractions <= {len("2026-07-01T09:14:03+08:00"), len("2026-07-01T09:14:03.123+08:00")}
    assert len(fractions) == 2  # crew app: seconds; hotline/dispatcher/SCADA: milliseconds


# --------------------------------------------------------------------------- the history


def test_checkpoints_come_in_field_order_without_skew() -> None:
    events = events_of(SimulationPlan(days=3, storm_days=(1,)))
    checked = 0
    for iid, inc in outages(events).items():
        present = [k for k in CHECKPOINTS if inc.t(k) is not None]
        # truncation at the horizon only ever cuts a suffix of the history
        assert present == list(CHECKPOINTS[: len(present)]), iid
        times = [inc.first[k] for k in present]
        assert times == sorted(times), iid
        if inc.t("power.restored") is not None:
            checked += 1
    assert checked > 150


def test_open_incidents_remain_at_the_horizon() -> None:
    plan = SimulationPlan(days=1)
    events = events_of(plan)
    _, horizon = duty_period(plan.start, SHANGHAI)
    assert all(instant(e["occurred_at"]) <= horizon for e in events)
    open_ones = [i for i in outages(events).values() if i.t("power.restored") is None]
    assert open_ones, "some incidents must still be open at the end"
    # they are the late ones: called in during the last hours of the period
    for inc in open_ones:
        t0 = inc.t("call.received")
        assert t0 is not None and horizon - t0 < timedelta(hours=24)


def test_repeat_calls_merges_rejections_and_reinforcements() -> None:
    events = events_of(SimulationPlan(days=3, storm_days=(1,)))
    incs = incidents_of(events)
    multi_call = [i for i in incs.values() if not i.ended and i.types["call.received"] > 1]
    assert multi_call, "repeat calls logged on the same incident"
    merged = [i for i in incs.values() if i.types["call.merged"]]
    assert merged and all(i.types["call.received"] == 1 for i in merged)
    rejected = [i for i in incs.values() if i.types["call.rejected"]]
    assert rejected and all(set(i.types) == {"call.received", "call.rejected"} for i in rejected)
    # a reinforcement crew: second dispatch/arrival, later, by another crew
    by_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["type"] == "crew.arrived":
            by_incident[e["incident_id"]].append(e)
    twice = {k: v for k, v in by_incident.items() if len(v) == 2}
    assert twice
    for arrivals in twice.values():
        first, second = sorted(arrivals, key=lambda e: instant(e["occurred_at"]))
        assert first["data"]["crew"] != second["data"]["crew"]
    # every merge points at a real outage incident called in earlier
    calls = {
        e["incident_id"]: instant(e["occurred_at"]) for e in events if e["type"] == "call.received"
    }
    for e in events:
        if e["type"] == "call.merged":
            target = e["data"]["into_incident_id"]
            assert not incs[target].ended
            t0 = incs[target].t("call.received")
            assert t0 is not None and t0 <= calls[e["incident_id"]]


def test_priorities_causes_and_customers_vary() -> None:
    events = events_of(SimulationPlan(days=10))
    priorities = Counter(e["data"]["priority"] for e in events if e["type"] == "call.received")
    assert set(priorities) == {"normal", "vulnerable", "important"}
    assert priorities["normal"] > priorities["important"]
    causes = {e["data"]["cause"] for e in events if e["type"] == "fault.diagnosed"}
    assert len(causes) >= 6
    restored = [
        e["data"]["customers_restored"]
        for e in events
        if e["type"] == "power.restored" and "customers_restored" in e["data"]
    ]
    assert min(restored) >= 1 and max(restored) > 100


def test_arrival_times_are_plausible_per_area() -> None:
    incs = outages(events_of(SimulationPlan(days=40)))
    arrival: dict[str, list[float]] = defaultdict(list)
    repair: list[float] = []
    for inc in incs.values():
        minutes = inc.minutes("call.received", "crew.arrived")
        if minutes is not None:
            arrival[inc.area].append(minutes)
        fix = inc.minutes("fault.diagnosed", "repair.completed")
        if fix is not None:
            repair.append(fix)
    medians = {area: statistics.median(v) for area, v in arrival.items()}
    assert 20 <= medians["urban"] <= 50, medians
    assert 40 <= medians["rural"] <= 100, medians
    assert 60 <= medians["remote"] <= 150, medians
    assert medians["urban"] < medians["rural"] < medians["remote"]
    assert 20 <= statistics.median(repair) <= 240
    assert max(repair) > 180  # some repairs take hours


def test_storm_day_has_many_more_calls_and_longer_arrivals() -> None:
    plan = SimulationPlan(days=3, storm_days=(1,))
    events = events_of(plan)
    calls_per_day: Counter[date] = Counter()
    periods = [duty_period(plan.start + timedelta(days=d), SHANGHAI) for d in range(3)]

    def day_of(when: datetime) -> date:
        for d, (begin, end) in enumerate(periods):
            if begin <= when < end:
                return plan.start + timedelta(days=d)
        raise AssertionError(f"{when} outside the simulated periods")

    for e in events:
        if e["type"] == "call.received":
            calls_per_day[day_of(instant(e["occurred_at"]))] += 1
    normal = (calls_per_day[plan.start] + calls_per_day[plan.start + timedelta(days=2)]) / 2
    storm = calls_per_day[plan.start + timedelta(days=1)]
    assert storm >= 6 * normal, calls_per_day

    arrival: dict[date, list[float]] = defaultdict(list)
    for inc in outages(events).values():
        t0 = inc.t("call.received")
        minutes = inc.minutes("call.received", "crew.arrived")
        if t0 is not None and minutes is not None:
            arrival[day_of(t0)].append(minutes)
    normal_mean = statistics.mean(arrival[plan.start])
    storm_mean = statistics.mean(arrival[plan.start + timedelta(days=1)])
    assert storm_mean > 2 * normal_mean, (normal_mean, storm_mean)


def test_skew_makes_negative_stages_and_touches_only_crew_clocks() -> None:
    base = events_of(SimulationPlan(days=2))
    skewed = events_of(SimulationPlan(days=2, skew_rate=1.0))
    assert [e["event_id"] for e in base] == [e["event_id"] for e in skewed]
    changed = 0
    for a, b in zip(base, skewed, strict=True):
        if a["occurred_at"] != b["occurred_at"]:
            changed += 1
            assert a["type"] in ("crew.arrived", "fault.diagnosed", "repair.completed")
        assert {**a, "occurred_at": ""} == {**b, "occurred_at": ""}
    assert changed > 100
    negative = complete = 0
    for inc in outages(skewed).values():
        if inc.t("power.restored") is None:
            continue
        complete += 1
        stages = [inc.minutes(a, b) for a, b in itertools.pairwise(CHECKPOINTS)]
        if any(s is not None and s < 0 for s in stages):
            negative += 1
    assert negative >= 0.9 * complete


# --------------------------------------------------------------------------- delivery faults


def test_duplicates_reuse_event_ids_at_about_the_rate() -> None:
    base = events_of(SimulationPlan(days=10))
    noisy = events_of(SimulationPlan(days=10, duplicate_rate=0.05))
    ids = Counter(e["event_id"] for e in noisy)
    repeated = sum(n - 1 for n in ids.values())
    assert max(ids.values()) == 2
    assert abs(repeated / len(base) - 0.05) < 0.015
    # duplicates are verbatim, and without them the stream is the clean one
    firsts: dict[str, dict[str, Any]] = {}
    deduplicated = []
    for e in noisy:
        if e["event_id"] in firsts:
            assert e == firsts[e["event_id"]]
            continue
        firsts[e["event_id"]] = e
        deduplicated.append(e)
    assert deduplicated == base


def test_shuffle_changes_the_order_not_the_multiset() -> None:
    base = events_of(SimulationPlan(days=3, duplicate_rate=0.02))
    shuffled = events_of(SimulationPlan(days=3, duplicate_rate=0.02, shuffle=True))
    assert [e["event_id"] for e in base] != [e["event_id"] for e in shuffled]
    assert canonical(base) == canonical(shuffled)
    # unshuffled, the stream is in delivery (recorded_at) order
    recorded = [instant(e["recorded_at"]) for e in base]
    inversions = sum(1 for a, b in itertools.pairwise(recorded) if b < a)
    assert inversions <= len(base) * 0.05  # only duplicates come back out of order


def test_late_events_are_delivered_much_later() -> None:
    base = events_of(SimulationPlan(days=5))
    late = events_of(SimulationPlan(days=5, late_rate=0.05))
    assert canonical([{**e, "recorded_at": ""} for e in base]) == canonical(
        [{**e, "recorded_at": ""} for e in late]
    )
    delayed = [
        e
        for e in late
        if instant(e["recorded_at"]) - instant(e["occurred_at"]) >= timedelta(hours=1)
    ]
    assert abs(len(delayed) / len(late) - 0.05) < 0.015
    # moved far later in the stream than their event time would put them
    position = {e["event_id"]: i for i, e in enumerate(late)}
    by_time = sorted(late, key=lambda e: instant(e["occurred_at"]))
    time_rank = {e["event_id"]: i for i, e in enumerate(by_time)}
    shifts = [position[e["event_id"]] - time_rank[e["event_id"]] for e in delayed]
    assert statistics.median(shifts) > 50


def test_malformed_lines_are_extra_and_invalid() -> None:
    plan = SimulationPlan(days=3, malformed_rate=0.05)
    with pytest.raises(ValueError, match="simulate_lines"):
        simulate(plan)
    items = list(simulate_lines(plan))
    bad = [i for i in items if isinstance(i, MalformedLine)]
    good = [i for i in items if not isinstance(i, MalformedLine)]
    assert good == events_of(SimulationPlan(days=3))
    assert abs(len(bad) / len(good) - 0.05) < 0.02
    assert {b.kind for b in bad} == {"bad_json", "missing_field", "naive_timestamp", "unknown_type"}
    for b in bad:
        assert "\n" not in b.text
        if b.kind == "bad_json":
            with pytest.raises(ValueError):
                json.loads(b.text)
            continue
        obj = json.loads(b.text)
        if b.kind == "missing_field":
            assert not set(("event_id", "type", "incident_id", "occurred_at", "data")) <= set(obj)
        elif b.kind == "naive_timestamp":
            assert datetime.fromisoformat(obj["occurred_at"]).tzinfo is None
        else:
            assert obj["type"] not in DESIGN_TYPES
    # written verbatim, one per line
    buf = io.BytesIO()
    assert write_jsonl(items, buf) == len(items)
    lines = buf.getvalue().decode().splitlines()
    assert sum(1 for line in lines if line in {b.text for b in bad}) == len(bad)


def engine_report(lines: list[str], folder: Path, name: str) -> dict[str, Any]:
    """``dispatch report --input`` (the engine, in-process) of ``lines``."""
    from dispatch.cli import main

    events = folder / f"{name}.jsonl"
    events.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out = folder / f"{name}.json"
    assert main(["report", "--input", str(events), "--output", str(out)]) == 0
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


def test_faults_do_not_change_the_kpis(tmp_path: Path) -> None:
    from tests.oracle import compare_reports, oracle_report

    clean = jsonl_bytes(SimulationPlan(days=2, storm_days=(1,))).decode().splitlines()
    noisy = (
        jsonl_bytes(
            SimulationPlan(
                days=2,
                storm_days=(1,),
                duplicate_rate=0.05,
                shuffle=True,
                late_rate=0.05,
                malformed_rate=0.01,
            )
        )
        .decode()
        .splitlines()
    )
    a = engine_report(clean, tmp_path, "clean")
    b = engine_report(noisy, tmp_path, "noisy")
    assert compare_reports(a, oracle_report(clean)) == []
    assert compare_reports(b, oracle_report(noisy)) == []
    assert b["duplicate_events"] > 0 and b["rejected_events"] > 0
    assert (a["duplicate_events"], a["rejected_events"]) == (0, 0)
    for key in ("duplicate_events", "rejected_events"):
        b[key] = a[key]
    assert b == a  # the engine's sums are exact: the same numbers to the last bit
    assert a["overall"]["incidents"] > 100
    periods = a["duty_periods"]
    assert periods[0]["open_at_handover"] >= 1
    assert periods[1]["calls"] > 6 * periods[0]["calls"]


# --------------------------------------------------------------------------- target / DST


def test_target_events_is_honoured_with_whole_incidents() -> None:
    sim = Simulator(SimulationPlan(target_events=20_000, duplicate_rate=0.01))
    events = [e for e in sim if not isinstance(e, MalformedLine)]
    assert 20_000 <= len(events) <= 20_000 + 200
    assert sim.stats.items == len(events)
    assert sim.stats.days > 10
    incs = incidents_of(events)
    for iid, inc in incs.items():
        if inc.ended:
            continue
        assert inc.types["power.restored"] == 1 and inc.types["incident.closed"] == 1, iid
    assert sim.stats.incidents == len(incs)


def test_target_events_small_and_storm_days_beyond_days() -> None:
    events = events_of(SimulationPlan(target_events=50, storm_days=(3,)))
    assert 50 <= len(events) < 200


@pytest.mark.parametrize(
    ("start", "long_hours"),
    [(date(2026, 3, 28), 23), (date(2026, 10, 24), 25)],
)
def test_offsets_follow_daylight_saving(start: date, long_hours: int) -> None:
    zone = ZoneInfo("Europe/Berlin")
    plan = SimulationPlan(start=start, days=2, duty_timezone="Europe/Berlin", seed=4)
    events = events_of(plan)
    offsets: Counter[str] = Counter()
    for e in events:
        for key in ("occurred_at", "recorded_at"):
            stamp = instant(e[key])
            expected = stamp.astimezone(zone).utcoffset()
            assert stamp.utcoffset() == expected, e[key]
            offsets[e[key][-6:]] += 1
    assert set(offsets) == {"+01:00", "+02:00"}
    # the period that contains the change is 23 or 25 hours long, and calls fill it
    begin, end = duty_period(start, zone)
    # (aware datetimes in one zone subtract as wall clocks: compare real instants)
    assert end.timestamp() - begin.timestamp() == long_hours * 3600
    sim = Simulator(plan)
    period = sim.period(0)
    assert period == (begin.timestamp(), end.timestamp())
    calls = [instant(e["occurred_at"]) for e in events if e["type"] == "call.received"]
    first_day = [c for c in calls if begin <= c < end]
    assert first_day and min(calls) >= begin
    horizon = duty_period(start + timedelta(days=1), zone)[1]
    assert max(instant(e["occurred_at"]) for e in events) <= horizon


def test_duty_start_shifts_the_periods() -> None:
    plan = SimulationPlan(days=1, duty_start=time(0, 0))
    calls = [instant(e["occurred_at"]) for e in events_of(plan) if e["type"] == "call.received"]
    begin, end = duty_period(plan.start, SHANGHAI, time(0, 0))
    assert all(begin <= c < end for c in calls)


# --------------------------------------------------------------------------- plan validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": 0},
        {"storm_days": (1,)},
        {"storm_days": (-1,)},
        {"duplicate_rate": 1.5},
        {"late_rate": -0.1},
        {"duty_timezone": "Nowhere/Land"},
        {"target_events": 0},
        {"grids": ()},
        {"grids": (Grid("A", "urban", 1, 1.0), Grid("A", "rural", 1, 1.0))},
        {"target_events": 10, "grids": (Grid("A", "urban", 1, 0.0),)},
    ],
)
def test_bad_plans_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulationPlan(**kwargs)


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ValueError):
        Grid("X", "suburban", 1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Grid("X", "urban", 0, 1.0)
    assert Grid("URB-1", "urban", 2, 1.0).crew_ids == ("URB-1-C1", "URB-1-C2")


def test_custom_grids_are_used() -> None:
    grids = (Grid("ISLAND", "remote", 1, 20.0),)
    events = events_of(SimulationPlan(days=2, grids=grids))
    assert {e["data"]["grid"] for e in events if e["type"] == "call.received"} == {"ISLAND"}
    assert {e["data"]["crew"] for e in events if e["type"] == "crew.arrived"} == {"ISLAND-C1"}
    # a single crew never works two incidents at once
    spans = []
    for inc in outages(events).values():
        dispatched = inc.t("crew.departed")
        restored = inc.t("power.restored")
        if dispatched is not None and restored is not None:
            spans.append((dispatched, restored))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


# --------------------------------------------------------------------------- writing


def test_write_jsonl_to_path_text_and_binary_streams(tmp_path: Path) -> None:
    plan = SimulationPlan(malformed_rate=0.02)
    path = tmp_path / "events.jsonl"
    count = write_jsonl(simulate_lines(plan), path)
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == count
    assert write_jsonl(simulate_lines(plan), str(tmp_path / "b.jsonl")) == count
    assert (tmp_path / "b.jsonl").read_bytes() == raw
    text = io.StringIO()
    assert write_jsonl(simulate_lines(plan), text) == count
    assert text.getvalue().encode() == raw
    assert jsonl_bytes(plan) == raw


def test_json_fallback_writes_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = SimulationPlan(duplicate_rate=0.05, malformed_rate=0.02)
    with_orjson = jsonl_bytes(plan)
    monkeypatch.setattr(simulation.output, "_orjson", None)
    assert jsonl_bytes(plan) == with_orjson


# --------------------------------------------------------------------------- CLI


def cli_module() -> Any:
    # Imported here, not at the top: importing dispatch.cli runs the package's
    # __init__ (every subcommand), which must not stop the simulator tests above.
    return importlib.import_module("dispatch.cli.simulate")


def cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatch")
    subparsers = parser.add_subparsers(dest="command", required=True)
    cli_module().register(subparsers)
    return parser


def test_cli_writes_events_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    args = cli_parser().parse_args(
        ["simulate", "--days", "2", "--storm-day", "1", "--seed", "3", "--out", str(out)]
    )
    assert args.run(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = out.read_bytes().splitlines()
    assert f"wrote {len(lines):,} events" in captured.err
    assert "2 duty days" in captured.err
    assert captured.err.count("\n") == 1
    expected = jsonl_bytes(SimulationPlan(seed=3, days=2, storm_days=(1,)))
    assert out.read_bytes() == expected


def test_cli_all_options_map_to_the_plan() -> None:
    args = cli_parser().parse_args(
        [
            "simulate",
            "--seed=9",
            "--start=2026-03-28",
            "--days=4",
            "--storm-day=1",
            "--storm-day=3",
            "--events=1_000",
            "--duplicates=0.1",
            "--shuffle",
            "--late=0.2",
            "--skew=0.3",
            "--malformed=0.01",
            "--reject-rate=0.1",
            "--duty-timezone=Europe/Berlin",
            "--duty-start=07:00",
        ]
    )
    plan = cli_module().plan_from_args(args)
    assert plan == SimulationPlan(
        seed=9,
        start=date(2026, 3, 28),
        days=4,
        storm_days=frozenset({1, 3}),
        target_events=1000,
        duplicate_rate=0.1,
        shuffle=True,
        late_rate=0.2,
        skew_rate=0.3,
        malformed_rate=0.01,
        reject_rate=0.1,
        duty_timezone="Europe/Berlin",
        duty_start=time(7, 0),
    )
    assert args.out == "-"


def test_cli_events_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    args = cli_parser().parse_args(["simulate", "--events", "300"])
    assert args.run(args) == 0
    out = capsysbinary.readouterr().out
    assert 300 <= len(out.splitlines()) < 400
    assert out == jsonl_bytes(SimulationPlan(target_events=300))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duplicates", "2"], "between 0 and 1"),
        (["--late", "x"], "not a number"),
        (["--days", "0"], "at least 1"),
        (["--storm-day", "-1"], "at least 0"),
        (["--duty-timezone", "Mars/Olympus"], "unknown IANA time zone"),
        (["--duty-start", "8h30"], "HH:MM"),
        (["--start", "01/07/2026"], "YYYY-MM-DD"),
        (["--events", "lots"], "not an integer"),
    ],
)
def test_cli_bad_values_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_parser().parse_args(["simulate", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_inconsistent_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli_parser().parse_args(["simulate", "--days", "2", "--storm-day", "5"])
    assert args.run(args) == 2
    err = capsys.readouterr().err
    assert "storm day 5" in err and "usage:" in err


def test_cli_unwritable_output_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dispatch.cli import main

    assert main(["simulate", "--out", str(tmp_path / "missing" / "x.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "dispatch simulate: cannot write" in err and "Traceback" not in err


def test_cli_duty_calendar_comes_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DISPATCH_DUTY_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("DISPATCH_DUTY_START", "07:00")
    args = cli_parser().parse_args(["simulate"])
    plan = cli_module().plan_from_args(args)
    assert (plan.duty_timezone, plan.duty_start) == ("Europe/Berlin", time(7, 0))
    args = cli_parser().parse_args(["simulate", "--duty-timezone", "Asia/Tokyo"])
    assert cli_module().plan_from_args(args).duty_timezone == "Asia/Tokyo"


def test_cli_bad_duty_setting_is_bad_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dispatch.cli import main

    monkeypatch.setenv("DISPATCH_DUTY_TIMEZONE", "Mars/Olympus")
    assert main(["simulate", "--days", "1"]) == 2
    err = capsys.readouterr().err
    assert "duty_timezone" in err and "Traceback" not in err
