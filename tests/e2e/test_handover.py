"""Duty accountability through the real ``dispatch`` console script: the report's
``accountability`` section, ``dispatch handover`` in its three formats, and the new
kinds of bad input (docs/accountability.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.accountability_oracle import compare_accountability, oracle_accountability
from tests.e2e.test_cli import fails_cleanly, ok, run


def event(event_id: str, kind: str, incident: str | None, local: str, **data: Any) -> str:
    obj: dict[str, Any] = {"event_id": event_id, "type": kind}
    if incident is not None:
        obj["incident_id"] = incident
    obj["occurred_at"] = f"2026-{local}+08:00"
    obj["data"] = data
    return json.dumps(obj)


SHIFT_A = event("s1", "duty.shift_started", None, "07-01T08:30:00", team="Team A",
                leader="Zhang", members=["Li", "Wang"])
SHIFT_B = event("s2", "duty.shift_started", None, "07-01T20:00:00", team="Team B",
                leader="Zhao")
LINES = [
    SHIFT_A, SHIFT_B,
    event("s3", "duty.shift_started", None, "07-03T08:30:00", team="Team C", leader="Sun"),
    # A: urban, arrives in 40 min (met), restored 140 min after arrival (met),
    # called back and satisfied; owner AG-1 (the later call at the same time has a
    # larger event id, so AG-9 does not own it)
    event("a0", "call.received", "A", "07-01T09:00:00", grid="G1", area="urban", agent="AG-1"),
    event("a9", "call.received", "A", "07-01T09:00:00", grid="G2", area="rural", agent="AG-9"),
    event("a3", "crew.arrived", "A", "07-01T09:40:00", crew="C1"),
    event("a6", "power.restored", "A", "07-01T12:00:00"),
    event("acb", "customer.callback", "A", "07-01T14:00:00", reached=True, satisfied=True),
    # B: important, arrival 20 min (limit 30: met), restoration 460 min (late);
    # a second crew came (not a first-visit fix); unreached, then dissatisfied
    event("b0", "call.received", "B", "07-01T10:00:00", grid="G2", area="rural",
          priority="important", agent="AG-2"),
    event("b3", "crew.arrived", "B", "07-01T10:20:00", crew="C2"),
    event("b3x", "crew.arrived", "B", "07-01T15:20:00", crew="C3"),
    event("b6", "power.restored", "B", "07-01T18:00:00"),
    event("bcb1", "customer.callback", "B", "07-01T19:00:00", reached=False),
    event("bcb2", "customer.callback", "B", "07-01T19:30:00", reached=True, satisfied=False),
    # C: no agent, verified, open at handover 90 min after its call; arrival breached
    event("c0", "call.received", "C", "07-02T07:00:00", grid="G1", area="urban"),
    event("c1", "call.verified", "C", "07-02T07:10:00"),
    # rejected: satisfied without reached; a shift without a team
    event("x1", "customer.callback", "B", "07-01T19:40:00", reached=False, satisfied=True),
    event("x2", "duty.shift_started", None, "07-01T19:30:00", leader="Q"),
]

EXPECTED = {
    "team": "Team B", "leader": "Zhao",
    "agents": [
        {"agent": "AG-1", "incidents_owned": 1, "restored": 1, "avg_restoration_minutes": 180.0},
        {"agent": "AG-2", "incidents_owned": 1, "restored": 1, "avg_restoration_minutes": 480.0},
        {"agent": None, "incidents_owned": 1, "restored": 0, "avg_restoration_minutes": None},
    ],
    "handover": [{"incident_id": "C", "owner": None, "grid": "G1", "area": "urban",
                  "priority": "normal", "last_checkpoint": "verify", "minutes_open": 90.0}],
    "sla": {"arrival": {"ok": 0, "warning": 0, "breach": 1, "met": 2, "late": 0, "anomaly": 0},
            "restoration": {"ok": 0, "warning": 0, "breach": 0, "met": 1, "late": 1,
                            "anomaly": 0}},
    "callbacks": {"restored": 2, "called_back": 2, "reached": 2, "satisfied": 1,
                  "dissatisfied": 1},
    "first_visit_fix": 0.5,
}


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_report_accountability_is_the_hand_computed_one(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", LINES)
    result = ok(run("report", "--input", str(events), cwd=tmp_path))
    report = json.loads(result.stdout)
    [period] = report["duty_periods"]
    assert period["accountability"] == EXPECTED
    assert report["rejected_events"] == 2
    assert "data: satisfied is given but reached is not true" in result.stderr
    assert "data.team: Field required" in result.stderr
    assert compare_accountability(report, oracle_accountability(LINES)) == []


def test_handover_json_from_input_and_from_store_are_the_same(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", LINES)
    from_input = ok(run("handover", "2026-07-01", "--input", str(events), "--format", "json",
                        cwd=tmp_path)).stdout
    ok(run("ingest", str(events), cwd=tmp_path))
    from_store = ok(run("handover", "2026-07-01", "--format", "json", cwd=tmp_path)).stdout
    assert from_input == from_store
    sheet = json.loads(from_store)
    assert sheet["accountability"] == EXPECTED
    assert (sheet["duty_date"], sheet["start"], sheet["end"]) == (
        "2026-07-01", "2026-07-01T08:30:00+08:00", "2026-07-02T08:30:00+08:00")
    assert [(s["team"], s["leader"], s["members"]) for s in sheet["shifts"]] == [
        ("Team A", "Zhang", ["Li", "Wang"]), ("Team B", "Zhao", None)]
    report = json.loads(ok(run("report", cwd=tmp_path)).stdout)
    assert {k: v for k, v in sheet.items() if k not in ("duty_timezone", "duty_start",
                                                         "shifts")} == report["duty_periods"][0]


def test_a_date_with_only_a_shift_start_still_prints_its_team(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", LINES)
    sheet = json.loads(ok(run("handover", "2026-07-03", "--input", str(events), "--format",
                              "json", cwd=tmp_path)).stdout)
    assert (sheet["accountability"]["team"], sheet["accountability"]["leader"]) == (
        "Team C", "Sun")
    assert (sheet["calls"], sheet["incidents"], sheet["accountability"]["handover"]) == (
        0, 0, [])
    table = ok(run("handover", "2026-07-03", "--input", str(events), cwd=tmp_path)).stdout
    assert "Team:    Team C" in table and "Leader:  Sun" in table
    nothing = json.loads(ok(run("handover", "2026-08-01", "--input", str(events),
                                "--format", "json", cwd=tmp_path)).stdout)
    assert nothing["accountability"]["team"] is None and nothing["shifts"] == []


def test_handover_table_reads_like_a_sheet(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", LINES)
    text = ok(run("handover", "2026-07-01", "--input", str(events), cwd=tmp_path)).stdout
    lines = text.splitlines()
    assert lines[0] == "DUTY HANDOVER SHEET  2026-07-01"
    assert "Period:  2026-07-01 08:30 to 2026-07-02 08:30 (Asia/Shanghai)" in lines
    assert "Team:    Team B" in lines and "Leader:  Zhao" in lines
    assert any(line.startswith("Shifts:  2026-07-01 08:30 Team A") for line in lines)
    assert "First-visit fix:  50.0% of restored incidents fixed by the first crew on site" in lines
    assert "Handed over still open: 1" in lines
    row = next(line for line in lines if line.startswith("1  C "))
    assert row.split() == ["1", "C", "-", "G1", "urban", "normal", "verify", "90"]
    assert lines[-1].startswith("Handed over by:")


def test_handover_markdown_tables_are_well_formed(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", LINES)
    text = ok(run("handover", "2026-07-01", "--input", str(events), "--format", "markdown",
                  cwd=tmp_path)).stdout
    lines = text.splitlines()
    assert lines[0] == "### Duty handover 2026-07-01"
    assert "**Team on duty:** Team B  " in lines
    tables: list[list[str]] = []
    for line in lines:
        if line.startswith("|"):
            if not tables or not tables[-1]:
                tables.append([])
            tables[-1].append(line)
        elif tables and tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) == 5  # figures, stages, time limits, ownership, handover
    for table in tables:
        widths = {line.count(" | ") for line in table}
        assert len(widths) == 1, table  # every row has as many cells as the header
        assert set(table[1].replace("|", "").split()) <= {"---", "---:"}, table
    assert "| 1 | C | - | G1 | urban | normal | verify | 90 |" in lines


def test_handover_bad_usage(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", LINES)
    fails_cleanly(run("handover", "2026-13-01", "--input", str(events), cwd=tmp_path),
                  codes=(2,), mentions="YYYY-MM-DD")
    fails_cleanly(run("handover", "yesterday", cwd=tmp_path), codes=(2,), mentions="DUTY_DATE")
    fails_cleanly(run("handover", "2026-07-01", "--input", str(events), "--store",
                      "sqlite:///x.db", cwd=tmp_path), codes=(2,), mentions="not allowed")
    fails_cleanly(run("handover", "2026-07-01", cwd=tmp_path), codes=(1,), mentions="no store")


def test_a_callback_before_its_incident_is_counted_once_the_incident_appears(
        tmp_path: Path) -> None:
    first = write(tmp_path / "first.jsonl", [
        event("cb", "customer.callback", "D", "07-01T16:00:00", reached=True, satisfied=True)])
    second = write(tmp_path / "second.jsonl", [
        event("d0", "call.received", "D", "07-01T09:00:00", grid="G1", area="urban",
              agent="AG-4"),
        event("d6", "power.restored", "D", "07-01T11:00:00")])
    ok(run("ingest", str(first), cwd=tmp_path))
    before = json.loads(ok(run("report", cwd=tmp_path)).stdout)
    assert (before["duty_periods"], before["unattributed"], before["rejected_events"]) == (
        [], 1, 0)
    ok(run("ingest", str(second), cwd=tmp_path))
    after = json.loads(ok(run("report", cwd=tmp_path)).stdout)
    assert after["unattributed"] == 0
    assert after["duty_periods"][0]["accountability"]["callbacks"] == {
        "restored": 1, "called_back": 1, "reached": 1, "satisfied": 1, "dissatisfied": 0}


def test_demo_prints_the_storm_days_handover_sheet_after_the_report(tmp_path: Path) -> None:
    out = ok(run("demo", cwd=tmp_path)).stdout
    report_at = out.index("overall")
    sheet_at = out.index("DUTY HANDOVER SHEET  2026-07-02")
    assert report_at < sheet_at
    sheet = out[sheet_at:]
    assert "Team:    Team" in sheet and "Handed over still open:" in sheet
    assert "First-visit fix:  " in sheet and "Callbacks:        restored" in sheet


def test_duty_events_are_keyed_duty_on_kafka() -> None:
    from dispatch.kafka.producer import kafka_key
    from schemas import parse_event

    assert kafka_key(parse_event(SHIFT_A)) == b"duty"
    with_id = json.loads(SHIFT_B)
    with_id["incident_id"] = "INC-9"  # allowed, but a duty event still goes to "duty"
    assert kafka_key(parse_event(json.dumps(with_id))) == b"duty"
    assert kafka_key(parse_event(LINES[3])) == b"A"
