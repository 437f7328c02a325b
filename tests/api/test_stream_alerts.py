"""SLA ``alert`` frames on ``/api/stream``, end to end on SQLite and PostgreSQL.

``dispatch ingest --sla-clock event`` folds a simulated storm in parts while a
client follows the stream from the change log's start. The client reads the
first part live, drops the connection part way and reconnects with
``Last-Event-ID`` after the second part was committed. Together the two
connections must have received every change id once, every alert id
(``incident/rule/level``) once, warnings and breaches among them, and the
alerts raised and not ended must be the active alerts of the independent SLA
oracle as of the largest ``occurred_at``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.api.harness import EventStream, Frame, dispatch, serving
from tests.api.test_stream import read_until
from tests.sla_oracle import Limits, oracle_alerts, raised_not_ended

DEFAULT_LIMITS = Limits({"arrival": {"urban": 45, "rural": 90, "remote": 120},
                         "restoration": {"urban": 180, "rural": 240, "remote": 240}},
                        {"arrival": 30, "restoration": None})


def ingest_event_clock(store: str, events: Path) -> None:
    done = dispatch("ingest", str(events), "--store", store, "--sla-clock", "event",
                    "--batch-size", "300", cwd=events.parent)
    assert done.returncode == 0, done.stderr


def test_alert_frames_reach_the_stream_once_and_resume(store_url: str, tmp_path: Path) -> None:
    done = dispatch("simulate", "--days", "2", "--storm-day", "0", "--seed", "11",
                    "--duplicates", "0.02", "--shuffle", "-o", "events.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in (tmp_path / "events.jsonl").read_text(encoding="utf-8")
             .splitlines() if line.strip()]
    parts = {"first.jsonl": lines[:200], "a.jsonl": lines[200:len(lines) // 2],
             "b.jsonl": lines[len(lines) // 2:]}
    for name, part in parts.items():
        (tmp_path / name).write_text("\n".join(part) + "\n", encoding="utf-8")
    ingest_event_clock(store_url, tmp_path / "first.jsonl")  # serve needs a store

    with serving(store_url, tmp_path) as server, server.client() as client:
        # From the log's start: the changes of the first part are replayed, then live.
        start = 0
        stream = EventStream(client, params={"after": start})
        ingest_event_clock(store_url, tmp_path / "a.jsonl")
        head_a = int(client.get("/api/status").json()["change_seq"])
        live = read_until(stream, head_a, limit_s=60)
        assert [f.id for f in live] == list(range(start + 1, head_a + 1))
        live_alerts = [f for f in live if f.event == "alert"]
        assert live_alerts, "the first half of a storm raises alerts"
        # Drop the connection after the middle alert, as a browser loses its network.
        cut = live_alerts[len(live_alerts) // 2].id
        assert cut is not None
        stream.close()
        kept = [f for f in live if f.id is not None and f.id <= cut]

        ingest_event_clock(store_url, tmp_path / "b.jsonl")
        head = int(client.get("/api/status").json()["change_seq"])
        assert head > head_a
        again = EventStream(client, last_event_id=cut)
        resumed = read_until(again, head, limit_s=60)
        again.close()

    frames: list[Frame] = kept + resumed
    assert [f.id for f in frames] == list(range(start + 1, head + 1))  # every id, once
    assert {f.event for f in frames} == {"incident", "period", "alert"}
    alerts = [f.data for f in frames if f.event == "alert"]
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "an alert id reached the client twice"
    for alert in alerts:
        assert alert["alert_id"] == f"{alert['incident_id']}/{alert['rule']}/{alert['level']}"
    assert {"warning", "breach"} <= {a["level"] for a in alerts}
    assert any(f.event == "alert" for f in resumed), "the second half raises or ends alerts"

    latest = max(datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in lines)
    expected = oracle_alerts(lines, latest.astimezone(UTC), DEFAULT_LIMITS)
    assert expected["active"], "a storm leaves alerts active at its end"
    assert raised_not_ended(alerts) == {
        (a["incident_id"], a["rule"]): a["level"] for a in expected["active"]}
