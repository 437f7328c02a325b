"""``dispatch alerts`` through the real CLI: the contract JSON against the SLA oracle
on a simulated storm, the [sla] settings from TOML and env, and bad input."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.test_cli import fails_cleanly, ok, run
from tests.sla_oracle import Limits, oracle_alerts

AS_OF = "2026-07-01T20:00:00+08:00"


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("storm")
    ok(run("simulate", "--days", "2", "--storm-day", "0", "--seed", "11", "--duplicates",
           "0.02", "--shuffle", "-o", "events.jsonl", cwd=folder))
    return folder / "events.jsonl"


def check_against_oracle(document: dict[str, object], events: Path, as_of: str,
                         limits: Limits) -> None:
    lines = [line for line in events.read_text(encoding="utf-8").splitlines() if line.strip()]
    expected = oracle_alerts(lines, datetime.fromisoformat(as_of), limits)
    assert document["counts"] == expected["counts"]
    active = document["active"]
    assert isinstance(active, list)
    assert [(a["incident_id"], a["rule"], a["level"]) for a in active] == \
           [(a["incident_id"], a["rule"], a["level"]) for a in expected["active"]]
    for got, want in zip(active, expected["active"], strict=True):
        assert datetime.fromisoformat(got["deadline"]) == want["deadline"]
        assert (got["limit_minutes"], got["owner"], got["area"]) == \
               (want["limit_minutes"], want["owner"], want["area"])


def test_alerts_json_from_a_file_matches_the_oracle(storm: Path) -> None:
    result = ok(run("alerts", "--input", str(storm), "--as-of", AS_OF, cwd=storm.parent))
    document = json.loads(result.stdout)
    assert document["as_of"] == "2026-07-01T12:00:00Z"
    defaults = Limits({"arrival": {"urban": 45, "rural": 90, "remote": 120},
                       "restoration": {"urban": 180, "rural": 240, "remote": 240}},
                      {"arrival": 30, "restoration": None})
    check_against_oracle(document, storm, AS_OF, defaults)
    assert document["active"], "the storm day should have active alerts at 20:00"
    assert sum(document["counts"]["arrival"].values()) > 50


def test_alerts_from_a_store_equal_alerts_from_the_file(storm: Path) -> None:
    ok(run("ingest", str(storm), cwd=storm.parent))
    stored = ok(run("alerts", "--as-of", AS_OF, cwd=storm.parent)).stdout
    direct = ok(run("alerts", "--input", str(storm), "--as-of", AS_OF, cwd=storm.parent)).stdout
    assert stored == direct


def test_limits_from_toml_and_env(storm: Path, tmp_path: Path) -> None:
    config = tmp_path / "dispatch.toml"
    config.write_text("[sla.arrival]\nurban = 20\nrural = 60.5\n[sla.priority]\n"
                      "restoration = 100\n", encoding="utf-8")
    env = {"DISPATCH_CONFIG": str(config), "DISPATCH_SLA__RESTORATION__REMOTE": "300"}
    result = ok(run("alerts", "--input", str(storm), "--as-of", AS_OF, cwd=tmp_path, env=env))
    limits = Limits({"arrival": {"urban": 20, "rural": 60.5, "remote": 120},
                     "restoration": {"urban": 180, "rural": 240, "remote": 300}},
                    {"arrival": 30, "restoration": 100})
    check_against_oracle(json.loads(result.stdout), storm, AS_OF, limits)


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_people_formats_list_every_active_alert(storm: Path, fmt: str) -> None:
    document = json.loads(ok(run("alerts", "--input", str(storm), "--as-of", AS_OF,
                                 cwd=storm.parent)).stdout)
    text = ok(run("alerts", "--input", str(storm), "--as-of", AS_OF, "--format", fmt,
                  cwd=storm.parent)).stdout
    assert f"{len(document['active'])} active" in text
    for alert in document["active"]:
        assert alert["incident_id"] in text
    if fmt == "markdown":
        assert "| deadline | level | rule |" in text


@pytest.mark.parametrize(("toml", "env", "key"), [
    ("[sla.arrival]\nsuburb = 10\n", {}, "sla.arrival.suburb"),
    ("[sla.restoration]\nurban = -5\n", {}, "sla.restoration.urban"),
    ("[sla.arrival]\nrural = \"soon\"\n", {}, "sla.arrival.rural"),
    ("[sla.arrival]\nrural = true\n", {}, "sla.arrival.rural"),
    ("[sla.priority]\nrepair = 10\n", {}, "sla.priority.repair"),
    ("[sla]\nescalation = 5\n", {}, "sla.escalation"),
    ("", {"DISPATCH_SLA__ARRIVAL__URBAN": "nan"}, "sla.arrival.urban"),
    ("", {"DISPATCH_SLA__ARRIVAL__MOUNTAIN": "50"}, "sla.arrival.mountain"),
    ("", {"DISPATCH_SLA__RESTORATION__REMOTE": "-1"}, "sla.restoration.remote"),
])
def test_bad_sla_settings_are_refused_at_start(storm: Path, tmp_path: Path, toml: str,
                                               env: dict[str, str], key: str) -> None:
    config = tmp_path / "dispatch.toml"
    config.write_text(toml, encoding="utf-8")
    for command in (["alerts", "--input", str(storm), "--as-of", AS_OF],
                    ["ingest", str(storm)], ["worker"]):
        message = fails_cleanly(run(*command, cwd=tmp_path,
                                    env={"DISPATCH_CONFIG": str(config), **env}),
                                codes=(2,), mentions=key)
        assert len(message.splitlines()) == 1, message
    assert not (tmp_path / "dispatch.db").exists()


@pytest.mark.parametrize("as_of", ["2026-07-01T20:00:00", "yesterday", "2026-07-01T20:00Z",
                                   "2026-13-01T20:00:00Z", "9999-12-31T23:59:59-14:00"])
def test_bad_as_of_is_bad_usage(storm: Path, as_of: str) -> None:
    fails_cleanly(run("alerts", "--input", str(storm), "--as-of", as_of, cwd=storm.parent),
                  codes=(2,), mentions="--as-of")


def test_input_and_store_together_is_bad_usage(storm: Path) -> None:
    fails_cleanly(run("alerts", "--input", str(storm), "--store", "sqlite:///x.db",
                      cwd=storm.parent), codes=(2,), mentions="either")


def test_embedded_ingest_keeps_live_alerts_equal_to_alerts_as_of(storm: Path,
                                                                  tmp_path: Path) -> None:
    """Many batches on the event clock: what the outbox raised and did not end is
    exactly ``dispatch alerts --as-of`` the largest occurred_at, each id once."""
    import asyncio

    import orjson

    from projections.sla import utc_text
    from projections.stores.sqlite import SqliteStore

    ok(run("ingest", str(storm), "--sla-clock", "event", "--batch-size", "150", cwd=tmp_path))

    async def read() -> tuple[int | None, list[dict[str, object]]]:
        async with SqliteStore(tmp_path / "dispatch.db") as store:
            return (await store.sla_event_clock(),
                    [orjson.loads(e.payload) for e in await store.alert_outbox()])

    clock, published = asyncio.run(read())
    assert clock is not None
    ids = [p["alert_id"] for p in published]
    assert len(ids) == len(set(ids)) and ids
    raised: dict[tuple[object, object], object] = {}
    for p in published:
        key = (p["incident_id"], p["rule"])
        if p["level"] in ("resolved", "cancelled"):
            assert key in raised
            del raised[key]
        else:
            raised[key] = p["level"]
    assert any(p["level"] == "resolved" for p in published)
    document = json.loads(ok(run("alerts", "--as-of", utc_text(clock), cwd=tmp_path)).stdout)
    assert raised == {(a["incident_id"], a["rule"]): a["level"] for a in document["active"]}


def test_an_old_file_is_evaluated_as_of_its_own_time_unless_told_otherwise(
        storm: Path, tmp_path: Path) -> None:
    """The storm file is months old. By default ``ingest`` evaluates it as of its
    largest occurred_at; on the wall clock every open incident is in breach now,
    and those breaches (months past the horizon) are recorded, not published."""
    import asyncio

    from projections.sla import utc_text
    from projections.sla_live import SlaRow
    from projections.stores.sqlite import SqliteStore

    def stored(folder: Path) -> tuple[int | None, list[SlaRow], list[tuple[str, bool]], int]:
        async def read() -> tuple[int | None, list[SlaRow], list[tuple[str, bool]], int]:
            async with SqliteStore(folder / "dispatch.db") as store:
                feed = [c for c in await store.changes_after(0, limit=10**6)
                        if c.kind == "alert"]
                return (await store.sla_event_clock(), await store.sla_rows(),
                        [(e.alert_id, e.withheld) for e in await store.alert_outbox()],
                        len(feed))
        return asyncio.run(read())

    default = tmp_path / "default"
    default.mkdir()
    ok(run("ingest", str(storm), cwd=default))
    clock, rows, outbox, feed = stored(default)
    assert clock is not None
    document = json.loads(ok(run("alerts", "--as-of", utc_text(clock), cwd=default)).stdout)
    active = {(a["incident_id"], a["rule"]): a["level"] for a in document["active"]}
    assert active, "the storm file ends with active alerts"
    assert {(r.incident_id, r.rule): r.state for r in rows if r.state in ("warning", "breach")} \
        == active
    assert outbox and not any(withheld for _, withheld in outbox)
    assert feed == len(outbox)  # every transition reaches the live feed

    wall = tmp_path / "wall"
    wall.mkdir()
    ok(run("ingest", str(storm), "--sla-clock", "wall", cwd=wall))
    _clock, rows, outbox, feed = stored(wall)
    now = json.loads(ok(run("alerts", cwd=wall)).stdout)
    breaches = {(a["incident_id"], a["rule"]) for a in now["active"] if a["level"] == "breach"}
    assert len(breaches) > len(active)  # as of now, every open incident is past its limit
    assert {(r.incident_id, r.rule) for r in rows if r.raised == "breach"} == breaches
    assert outbox and all(withheld for _, withheld in outbox)  # recorded, none published
    assert feed == 0


def test_demo_ends_with_the_storm_days_alerts_at_its_handover(tmp_path: Path) -> None:
    """The demo's last section is ``dispatch alerts`` as of the end of the storm
    day (08:30 the next morning), the same table as from the events file, and
    that file's alerts agree with the oracle."""
    folder = tmp_path / "demo"
    out = ok(run("demo", "--dir", str(folder), cwd=tmp_path)).stdout
    handover = "2026-07-03T08:30:00+08:00"
    events = folder / "demo-events.jsonl"
    table = ok(run("alerts", "--input", str(events), "--as-of", handover, "--format", "table",
                   cwd=tmp_path)).stdout
    assert table.startswith("SLA alerts as of 2026-07-03T00:30:00Z: ")
    assert out.endswith(table)
    assert out.index("DUTY HANDOVER SHEET  2026-07-02") < out.index(table)
    document = json.loads(ok(run("alerts", "--input", str(events), "--as-of", handover,
                                 cwd=tmp_path)).stdout)
    assert document["active"], "the storm day is handed over with alerts"
    defaults = Limits({"arrival": {"urban": 45, "rural": 90, "remote": 120},
                       "restoration": {"urban": 180, "rural": 240, "remote": 240}},
                      {"arrival": 30, "restoration": None})
    check_against_oracle(document, events, handover, defaults)


@pytest.mark.parametrize(("name", "value"), [
    ("DISPATCH_SLA_ALERT_HORIZON_HOURS", "-1"), ("DISPATCH_SLA_ALERT_HORIZON_HOURS", "nan"),
    ("DISPATCH_SLA_OUTBOX_RETENTION_DAYS", "soon"), ("DISPATCH_SLA_OUTBOX_RETENTION_DAYS", "-2")])
def test_bad_horizon_or_retention_is_bad_usage(storm: Path, tmp_path: Path, name: str,
                                               value: str) -> None:
    key = name.removeprefix("DISPATCH_").lower()
    fails_cleanly(run("ingest", str(storm), cwd=tmp_path, env={name: value}), codes=(2,),
                  mentions=key)
    assert not (tmp_path / "dispatch.db").exists()
