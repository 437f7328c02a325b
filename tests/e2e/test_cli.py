"""The real ``dispatch`` console script, run as a subprocess in a scratch folder.

Covers the command-line contract of docs/report.md: the JSON report and its keys,
the human formats, rejected lines (stderr summary, ``--rejects``, ``--strict``),
exit codes (0 success, 1 failure, 2 bad usage) with one-line messages and no
tracebacks, resumable ingest, and ``dispatch incident``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.oracle import STAGE_NAMES, compare_reports, oracle_report

SCRIPT = Path(sys.executable).with_name("dispatch")
DISPATCH = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "dispatch.cli"]

PERIOD_KEYS = {"duty_date", "start", "end", "calls", "incidents", "restored",
               "open_at_handover", "stages", "avg_restoration_minutes", "anomalies"}
OVERALL_KEYS = PERIOD_KEYS - {"duty_date", "start", "end"}
TOP_KEYS = {"duty_timezone", "duty_start", "duty_periods", "overall", "unattributed",
            "rejected_events", "duplicate_events"}
SUMMARY = re.compile(r"([\d,]+) accepted, ([\d,]+) duplicate, ([\d,]+) rejected")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None,
        module: bool = False) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    clean.update(env or {})
    command = [sys.executable, "-m", "dispatch.cli"] if module else DISPATCH
    return subprocess.run([*command, *args], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=180, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def fails_cleanly(result: subprocess.CompletedProcess[str], codes: tuple[int, ...] = (1,),
                  mentions: str = "") -> str:
    """A failure: the expected exit code, a short message, no traceback."""
    assert result.returncode in codes, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert message, "a failure must say why on stderr"
    assert mentions in message, message
    return message


def summary_counts(stderr: str) -> tuple[int, int, int]:
    found = SUMMARY.findall(stderr)
    assert found, f"no accepted/duplicate/rejected summary in: {stderr!r}"
    accepted, duplicate, rejected = (int(n.replace(",", "")) for n in found[-1])
    return accepted, duplicate, rejected


def ev(event_id: str, kind: str, incident: str, at: str, **data: Any) -> str:
    payload = dict(data)
    if kind == "call.received":
        payload = {"grid": "URB-1", "area": "urban", **payload}
    elif kind.startswith("crew."):
        payload.setdefault("crew", "C1")
    return json.dumps({"event_id": event_id, "type": kind, "incident_id": incident,
                       "occurred_at": at, "data": payload})


GOOD = [
    ev("e1", "call.received", "INC-1", "2026-07-01T09:00:00+08:00"),
    ev("e2", "call.verified", "INC-1", "2026-07-01T09:05:00+08:00"),
    ev("e3", "crew.departed", "INC-1", "2026-07-01T09:15:00+08:00"),
    ev("e4", "crew.arrived", "INC-1", "2026-07-01T09:45:00+08:00"),
    ev("e5", "fault.diagnosed", "INC-1", "2026-07-01T10:00:00+08:00"),
    ev("e6", "repair.completed", "INC-1", "2026-07-01T11:30:00+08:00"),
    ev("e7", "power.restored", "INC-1", "2026-07-01T03:40:00Z"),
    ev("f1", "call.received", "INC-2", "2026-07-02T07:00:00+08:00"),
    ev("f2", "call.verified", "INC-2", "2026-07-02T07:03:00+08:00"),
    ev("g1", "call.received", "INC-3", "2026-07-02T09:00:00+08:00"),
]
BAD_JSON = '{"event_id": "b1", "type": "call.received",'
NAIVE = ev("b2", "call.verified", "INC-2", "2026-07-02T07:04:00")
# line 3 is not JSON, line 5 has no offset, line 7 repeats line 1
MIXED = [GOOD[0], GOOD[1], BAD_JSON, GOOD[2], NAIVE, GOOD[3], GOOD[0], *GOOD[4:]]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -- help and usage -----------------------------------------------------------------------

def subcommands(tmp_path: Path) -> list[str]:
    result = run("no-such-command", cwd=tmp_path)
    fails_cleanly(result, codes=(2,), mentions="no-such-command")
    match = re.search(r"choose from (.*?)\)", result.stderr)
    assert match, result.stderr
    return re.findall(r"'([^']+)'", match.group(1))


def test_help_exits_0_for_the_command_and_every_subcommand(tmp_path: Path) -> None:
    assert "report" in ok(run("--help", cwd=tmp_path)).stdout
    names = subcommands(tmp_path)
    assert {"demo", "ingest", "report", "incident"} <= set(names)
    for name in names:
        result = ok(run(name, "--help", cwd=tmp_path))
        assert f"dispatch {name}" in result.stdout


def test_python_dash_m_works_too(tmp_path: Path) -> None:
    assert "usage: dispatch" in ok(run("--help", cwd=tmp_path, module=True)).stdout


def test_no_command_is_bad_usage(tmp_path: Path) -> None:
    fails_cleanly(run(cwd=tmp_path), codes=(2,))


def test_unknown_option_is_bad_usage(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    fails_cleanly(run("report", "--input", str(events), "--frobnicate", cwd=tmp_path),
                  codes=(2,), mentions="--frobnicate")
    fails_cleanly(run("report", "--input", str(events), "--format", "xml", cwd=tmp_path),
                  codes=(2,), mentions="xml")


@pytest.mark.parametrize("command", ["report", "ingest"])
@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "+08:00", ""])
def test_bad_duty_timezone_is_refused_clearly(tmp_path: Path, command: str, zone: str) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    where = ["--input", str(events)] if command == "report" else [str(events)]
    message = fails_cleanly(run(command, *where, "--duty-timezone", zone, cwd=tmp_path),
                            codes=(1, 2), mentions="time zone")
    assert repr(zone) in message, "the message quotes the zone it refuses (even an empty one)"
    assert len(message.splitlines()) <= 6
    assert not (tmp_path / "dispatch.db").exists()


@pytest.mark.parametrize("start", ["25:00", "8h30", "08:30:00", "noon", "08:60"])
def test_bad_duty_start_is_refused_clearly(tmp_path: Path, start: str) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    message = fails_cleanly(run("report", "--input", str(events), "--duty-start", start,
                                cwd=tmp_path), codes=(1, 2), mentions="duty")
    assert start in message


def test_bad_timezone_from_the_environment_is_refused_clearly(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    fails_cleanly(run("report", "--input", str(events), cwd=tmp_path,
                      env={"DISPATCH_DUTY_TIMEZONE": "Nowhere/Land"}), codes=(2,),
                  mentions="Nowhere/Land")


# -- demo -----------------------------------------------------------------------------------

def test_demo_prints_a_table_with_an_overall_row(tmp_path: Path) -> None:
    result = ok(run("demo", cwd=tmp_path))
    lines = result.stdout.splitlines()
    assert any(line.startswith("duty date") for line in lines), result.stdout
    assert any(line.startswith("overall") for line in lines), result.stdout
    assert any(line.startswith("2026-07-01") for line in lines), result.stdout
    assert list(tmp_path.iterdir()) == [], "demo without --dir must leave nothing behind"


def test_demo_json_agrees_with_the_oracle(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = ok(run("demo", "--dir", str(folder), "--format", "json", cwd=tmp_path))
    report = json.loads(result.stdout)
    lines = (folder / "demo-events.jsonl").read_text(encoding="utf-8").splitlines()
    assert compare_reports(report, oracle_report(lines)) == []
    assert report["overall"]["incidents"] > 0


# -- ingest: rejected lines -------------------------------------------------------------------

def test_ingest_reports_rejected_lines_and_writes_rejects(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", MIXED)
    rejects = tmp_path / "rejects.jsonl"
    result = ok(run("ingest", str(events), "--store", "sqlite:///store.db",
                    "--rejects", str(rejects), cwd=tmp_path))
    assert summary_counts(result.stderr) == (len(GOOD), 1, 2)
    assert "events.jsonl:3" in result.stderr
    assert "events.jsonl:5" in result.stderr
    rows = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [row["where"] for row in rows] == ["events.jsonl:3", "events.jsonl:5"]
    assert [row["raw"] for row in rows] == [BAD_JSON, NAIVE]
    assert "json" in rows[0]["reason"].lower()
    assert rows[1]["reason"].startswith("occurred_at")
    assert "offset" in rows[1]["reason"]
    assert all("\n" not in row["reason"] for row in rows)

    report = json.loads(ok(run("report", "--store", "sqlite:///store.db",
                               cwd=tmp_path)).stdout)
    assert (report["rejected_events"], report["duplicate_events"]) == (2, 1)
    assert compare_reports(report, oracle_report(MIXED)) == []


def test_ingest_strict_stops_at_the_first_rejected_line(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", MIXED)
    message = fails_cleanly(run("ingest", str(events), "--store", "sqlite:///store.db",
                                "--strict", cwd=tmp_path), mentions="events.jsonl:3")
    assert "--strict" in message or "strict" in message.lower()


def test_report_input_strict_exits_1_naming_the_line(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", MIXED)
    result = run("report", "--input", str(events), "--strict", cwd=tmp_path)
    fails_cleanly(result, mentions="events.jsonl:3")
    assert result.stdout == ""


def test_report_input_with_rejects_keeps_stdout_pure_json(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", MIXED)
    rejects = tmp_path / "rejects.jsonl"
    result = ok(run("report", "--input", str(events), "--rejects", str(rejects),
                    cwd=tmp_path))
    report = json.loads(result.stdout)
    assert report["rejected_events"] == 2
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 2
    assert not (tmp_path / "dispatch.db").exists(), "--input must not touch a store"


@pytest.mark.parametrize("argv", [
    ["ingest", "missing.jsonl", "--store", "sqlite:///store.db"],
    ["report", "--input", "missing.jsonl"],
])
def test_missing_file_is_a_one_line_failure(tmp_path: Path, argv: list[str]) -> None:
    message = fails_cleanly(run(*argv, cwd=tmp_path), mentions="missing.jsonl")
    assert len(message.splitlines()) == 1


def test_report_from_a_store_that_does_not_exist(tmp_path: Path) -> None:
    message = fails_cleanly(run("report", "--store", "sqlite:///nothing.db", cwd=tmp_path),
                            mentions="nothing.db")
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "nothing.db").exists()


def test_input_and_store_together_are_refused(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    fails_cleanly(run("report", "--input", str(events), "--store", "sqlite:///s.db",
                      cwd=tmp_path), codes=(1, 2))


# Paths the user can get wrong: one clear line, never a traceback.

def test_store_in_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    message = fails_cleanly(run("ingest", str(events), "--store",
                                "sqlite:///no-such-folder/store.db", cwd=tmp_path),
                            mentions="no-such-folder")
    assert len(message.splitlines()) == 1


def test_output_in_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    fails_cleanly(run("report", "--input", str(events), "--output",
                      "no-such-folder/report.json", cwd=tmp_path), mentions="no-such-folder")


def test_rejects_in_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", MIXED)
    fails_cleanly(run("ingest", str(events), "--store", "sqlite:///store.db", "--rejects",
                      "no-such-folder/rejects.jsonl", cwd=tmp_path), mentions="no-such-folder")


def test_unknown_store_scheme_fails_cleanly(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    fails_cleanly(run("ingest", str(events), "--store", "mongodb://localhost/x",
                      cwd=tmp_path), codes=(1, 2), mentions="mongodb")


def test_unreachable_postgres_fails_cleanly_without_printing_the_password(
        tmp_path: Path) -> None:
    result = run("report", "--store", "postgresql://u:s3cret@127.0.0.1:1/db", cwd=tmp_path)
    assert "s3cret" not in result.stderr + result.stdout
    fails_cleanly(result, mentions="127.0.0.1")


# -- report formats ---------------------------------------------------------------------------

def test_report_json_has_the_contract_keys_and_the_right_numbers(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    report = json.loads(ok(run("report", "--input", str(events), "--format", "json",
                               cwd=tmp_path)).stdout)
    assert report.keys() >= TOP_KEYS
    assert report["overall"].keys() >= OVERALL_KEYS
    for period in report["duty_periods"]:
        assert period.keys() >= PERIOD_KEYS
        assert set(period["stages"]) >= set(STAGE_NAMES)
        for stage in period["stages"].values():
            assert stage.keys() >= {"count", "mean_minutes"}
    assert compare_reports(report, oracle_report(GOOD)) == []
    first = report["duty_periods"][0]
    assert (first["duty_date"], first["start"], first["end"]) == (
        "2026-07-01", "2026-07-01T08:30:00+08:00", "2026-07-02T08:30:00+08:00")
    assert first["incidents"] == 2
    assert first["avg_restoration_minutes"] == 160.0
    assert first["stages"]["repair"] == {"count": 1, "mean_minutes": 90.0}
    assert report["duty_timezone"] == "Asia/Shanghai"
    assert report["duty_start"] == "08:30"


def test_report_default_format_is_json(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    default = ok(run("report", "--input", str(events), cwd=tmp_path)).stdout
    assert default == ok(run("report", "--input", str(events), "--format", "json",
                             cwd=tmp_path)).stdout
    assert compare_reports(json.loads(default), oracle_report(GOOD)) == []


# Columns of the human formats and the JSON field each one shows.
HUMAN_COLUMNS = {"calls": "calls", "incidents": "incidents", "restored": "restored",
                 "open": "open_at_handover", "anomalies": "anomalies",
                 "avg restoration min": "avg_restoration_minutes",
                 **{f"{stage} min": stage for stage in STAGE_NAMES}}


def human_value(stats: dict[str, Any], column: str) -> str:
    field = HUMAN_COLUMNS[column]
    value = stats["stages"][field]["mean_minutes"] if field in STAGE_NAMES else stats[field]
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def assert_rows_show_the_report(rows: list[list[str]], report: dict[str, Any]) -> None:
    """Each row (duty date or ``overall`` first) shows the JSON report's numbers."""
    header, *body = rows
    assert header[0] == "duty date" and set(HUMAN_COLUMNS) <= set(header), header
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    expected = {p["duty_date"]: p for p in report["duty_periods"]}
    expected["overall"] = report["overall"]
    assert set(by_name) == set(expected), (sorted(by_name), sorted(expected))
    for name, stats in expected.items():
        for column in HUMAN_COLUMNS:
            assert by_name[name][column] == human_value(stats, column), (name, column)


def test_report_table(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    out = ok(run("report", "--input", str(events), "--format", "table", cwd=tmp_path)).stdout
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()
            if line.strip() and not line.startswith("-") and not line.startswith("duty periods")]
    assert_rows_show_the_report(rows, oracle_report(GOOD))
    assert "unattributed 0, rejected events 0, duplicate events 0" in out


def test_report_csv(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    out = ok(run("report", "--input", str(events), "--format", "csv", cwd=tmp_path)).stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert len({len(row) for row in rows}) == 1, "every CSV row has the same columns"
    assert [row[0] for row in rows[1:]] == ["2026-07-01", "2026-07-02", "overall"]
    header = rows[0]
    overall = dict(zip(header, rows[-1], strict=True))
    assert overall.get("calls") == "3"
    assert overall.get("incidents") == "3"


def test_report_markdown(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    out = ok(run("report", "--input", str(events), "--format", "markdown",
                 cwd=tmp_path)).stdout
    rows = [row for row in out.splitlines() if row.startswith("|")]
    assert rows[1].replace("|", "").replace("-", "").replace(":", "").strip() == ""
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    assert_rows_show_the_report([cells[0], *cells[2:]], oracle_report(GOOD))


def test_report_output_file(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    result = ok(run("report", "--input", str(events), "--output", "r.json", cwd=tmp_path))
    assert result.stdout == ""
    written = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert written == ok(run("report", "--input", str(events), cwd=tmp_path)).stdout
    assert compare_reports(json.loads(written), oracle_report(GOOD)) == []


def test_report_with_another_calendar(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    report = json.loads(ok(run("report", "--input", str(events), "--duty-timezone", "UTC",
                               "--duty-start", "00:00", cwd=tmp_path)).stdout)
    assert (report["duty_timezone"], report["duty_start"]) == ("UTC", "00:00")
    assert report["duty_periods"][0]["start"] == "2026-07-01T00:00:00+00:00"
    assert compare_reports(report, oracle_report(GOOD, "UTC", "00:00")) == []


# -- the store: default location, incident view, resuming ----------------------------------

def test_default_store_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    ok(run("ingest", str(events), cwd=tmp_path))
    assert (tmp_path / "dispatch.db").is_file()
    from_store = ok(run("report", cwd=tmp_path)).stdout
    from_input = ok(run("report", "--input", str(events), cwd=tmp_path)).stdout
    assert from_store == from_input


def test_incident_shows_checkpoints(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", MIXED)
    ok(run("ingest", str(events), "--store", "sqlite:///store.db", cwd=tmp_path))
    out = ok(run("incident", "INC-1", "--store", "sqlite:///store.db", cwd=tmp_path)).stdout
    assert "INC-1" in out
    for checkpoint in ("call", "verify", "depart", "arrive", "diagnose", "repair",
                       "restore"):
        assert re.search(rf"^\s*{checkpoint}\s", out, re.MULTILINE), (checkpoint, out)
    assert "2026-07-01T09:00:00+08:00" in out
    assert "2026-07-01T11:40:00+08:00" in out  # restore, written in UTC, shown locally

    as_json = json.loads(ok(run("incident", "INC-1", "--store", "sqlite:///store.db",
                                "--format", "json", cwd=tmp_path)).stdout)
    assert as_json["checkpoints"]["call"] == "2026-07-01T09:00:00+08:00"
    assert as_json["stages_minutes"]["arrive"] == 30.0
    assert len(as_json["events"]) == 7  # the duplicate of e1 is not an event twice


def test_incident_that_does_not_exist(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", GOOD)
    ok(run("ingest", str(events), "--store", "sqlite:///store.db", cwd=tmp_path))
    fails_cleanly(run("incident", "NOPE", "--store", "sqlite:///store.db", cwd=tmp_path),
                  mentions="NOPE")


def test_reingesting_the_same_file_adds_nothing(tmp_path: Path) -> None:
    events = write(tmp_path / "events.jsonl", MIXED)
    store = ["--store", "sqlite:///store.db"]
    ok(run("ingest", str(events), *store, cwd=tmp_path))
    before = ok(run("report", *store, cwd=tmp_path)).stdout
    again = ok(run("ingest", str(events), *store, cwd=tmp_path))
    assert summary_counts(again.stderr) == (0, 0, 0)
    assert ok(run("report", *store, cwd=tmp_path)).stdout == before


def padding(count: int) -> list[str]:
    """Valid filler events (about 200 bytes each) to make a file bigger."""
    return [ev(f"pad{n}", "call.verified", f"PAD-{n}", "2026-07-03T10:00:00+08:00",
               verified_by="x" * 60) for n in range(count)]


@pytest.mark.parametrize("size", ["small", "large"])
def test_appended_lines_are_the_only_ones_ingested_next_time(tmp_path: Path,
                                                             size: str) -> None:
    first = MIXED if size == "small" else [*MIXED, *padding(40)]
    assert (len("\n".join(first)) < 4096) == (size == "small")
    events = write(tmp_path / "events.jsonl", first)
    store = ["--store", "sqlite:///store.db"]
    rejects = tmp_path / "rejects.jsonl"
    ok(run("ingest", str(events), *store, cwd=tmp_path))

    added = [ev("h1", "call.received", "INC-9", "2026-07-02T10:00:00+08:00"),
             "not json either",
             ev("h2", "power.restored", "INC-2", "2026-07-02T09:00:00+08:00"),
             GOOD[1]]  # an old event again: a duplicate
    with events.open("a", encoding="utf-8") as stream:
        stream.writelines(line + "\n" for line in added)
    second = ok(run("ingest", str(events), *store, "--rejects", str(rejects), cwd=tmp_path))
    assert summary_counts(second.stderr) == (2, 1, 1)
    bad_line = len(first) + 2
    rows = [json.loads(r) for r in rejects.read_text(encoding="utf-8").splitlines()]
    assert [row["where"] for row in rows] == [f"events.jsonl:{bad_line}"]

    whole = [*first, *added]
    from_store = ok(run("report", *store, cwd=tmp_path)).stdout
    from_input = ok(run("report", "--input", str(events), cwd=tmp_path)).stdout
    assert from_store == from_input
    assert compare_reports(json.loads(from_store), oracle_report(whole)) == []


def test_two_files_in_one_ingest_equal_report_input(tmp_path: Path) -> None:
    one = write(tmp_path / "one.jsonl", MIXED[:5])
    two = write(tmp_path / "two.jsonl", MIXED[5:])
    ok(run("ingest", str(one), str(two), "--store", "sqlite:///store.db", cwd=tmp_path))
    from_store = ok(run("report", "--store", "sqlite:///store.db", cwd=tmp_path)).stdout
    from_input = ok(run("report", "--input", str(one), str(two), cwd=tmp_path)).stdout
    assert from_store == from_input
    assert compare_reports(json.loads(from_store), oracle_report(MIXED)) == []
