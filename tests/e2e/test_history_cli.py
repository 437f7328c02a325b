"""The analysts' commands through the real CLI: windows, compare, reliability, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import GOOD, MIXED, fails_cleanly, ok, run, write
from tests.history_oracle import history_report
from tests.oracle import compare_reports


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return write(tmp_path / "events.jsonl", MIXED)


@pytest.mark.parametrize("args, mentions", [
    (["report", "--from", "2026-07-02", "--to", "2026-07-01"], "after --to"),
    (["report", "--as-of", "2026-07-01T09:00"], "--as-of"),
    (["report", "--known-at", "yesterday"], "--known-at"),
    # a valid RFC 3339 instant that no duty time zone can print
    (["report", "--as-of", "9999-12-31T23:59:59-14:00"], "out of range"),
    (["report", "--known-at", "0001-01-01T00:00:00+14:00"], "out of range"),
    (["report", "--from", "2026-02-30"], "--from"),
    (["compare", "--base", "2026-07-01", "--against", "2026-07-01..2026-07-02"], "--base"),
    (["compare", "--base", "2026-07-03..2026-07-01", "--against", "2026-07-01..2026-07-02"],
     "starts after it ends"),
    (["reliability", "--customers-served", "0"], "at least 1"),
    (["reliability", "--customers-served", "-5"], "at least 1"),
])
def test_bad_usage_exits_2_with_a_message(events: Path, tmp_path: Path, args: list[str],
                                          mentions: str) -> None:
    fails_cleanly(run(*args, "--input", str(events), cwd=tmp_path), codes=(2,),
                  mentions=mentions)


def test_a_window_without_data_is_an_empty_report_and_exit_0(events: Path,
                                                             tmp_path: Path) -> None:
    result = ok(run("report", "--input", str(events), "--from", "2030-01-01",
                    "--to", "2030-01-31", cwd=tmp_path))
    report = json.loads(result.stdout)
    assert report["duty_periods"] == []
    assert report["overall"]["incidents"] == 0
    assert report["window"]["from"] == "2030-01-01"
    assert "no data" in result.stderr
    result = ok(run("reliability", "--input", str(events), "--customers-served", "10",
                    "--as-of", "2020-01-01T00:00:00Z", cwd=tmp_path))
    assert json.loads(result.stdout)["daily"] == {}
    assert "no data" in result.stderr


def test_report_windows_match_the_oracle(events: Path, tmp_path: Path) -> None:
    for options, kwargs in [
        (["--from", "2026-07-01", "--to", "2026-07-01"], {"first": _d("2026-07-01"),
                                                          "last": _d("2026-07-01")}),
        (["--as-of", "2026-07-01T09:46:00+08:00"], {"as_of": "2026-07-01T09:46:00+08:00"}),
        (["--known-at", "2026-07-01T01:10:00Z"], {"known_at": "2026-07-01T01:10:00Z"}),
    ]:
        report = json.loads(ok(run("report", "--input", str(events), *options,
                                   cwd=tmp_path)).stdout)
        want = history_report(MIXED, "Asia/Shanghai", "08:30", **kwargs)  # type: ignore[arg-type]
        assert compare_reports(report, want) == [], options


def _d(text: str):  # type: ignore[no-untyped-def]
    from datetime import date
    return date.fromisoformat(text)


def test_compare_and_reliability_print_for_people(events: Path, tmp_path: Path) -> None:
    table = ok(run("compare", "--input", str(events), "--base", "2026-07-01..2026-07-01",
                   "--against", "2026-07-02..2026-07-02", "--format", "table",
                   cwd=tmp_path)).stdout
    assert "repair (mean min)" in table and "avg restoration (min)" in table
    markdown = ok(run("reliability", "--input", str(events), "--customers-served", "100",
                      "--format", "markdown", cwd=tmp_path)).stdout
    assert "| overall |" in markdown and "major event days" in markdown


def test_customers_file_adds_grids_and_must_cover_them(events: Path, tmp_path: Path) -> None:
    counts = tmp_path / "customers.csv"
    counts.write_text("grid,customers\nURB-1,400\nRUR-9,600\n", encoding="utf-8")
    result = json.loads(ok(run("reliability", "--input", str(events), "--customers-file",
                               str(counts), cwd=tmp_path)).stdout)
    assert result["customers_served"] == 1000
    assert set(result["grids"]) == {"URB-1", "RUR-9"}
    assert result["grids"]["URB-1"]["saifi"] == pytest.approx(1 / 400)
    counts.write_text("grid,customers\nRUR-9,600\n", encoding="utf-8")
    fails_cleanly(run("reliability", "--input", str(events), "--customers-file", str(counts),
                      cwd=tmp_path), mentions="URB-1")


@pytest.mark.servers
def test_postgres_store_answers_as_the_file(tmp_path: Path, pg_dsn: str) -> None:
    lines = [json.dumps({**json.loads(x), "recorded_at": "2026-07-01T02:00:00Z"})
             for x in GOOD]
    events = write(tmp_path / "recorded.jsonl", lines)
    ok(run("ingest", str(events), "--store", pg_dsn, cwd=tmp_path))
    for options in (["--known-at", "2026-07-01T02:00:00Z"],
                    ["--known-at", "2026-07-01T01:59:59Z"],
                    ["--as-of", "2026-07-01T09:30:00+08:00", "--from", "2026-07-01"]):
        from_file = ok(run("report", "--input", str(events), *options, cwd=tmp_path)).stdout
        from_store = ok(run("report", "--store", pg_dsn, *options, cwd=tmp_path)).stdout
        assert from_file == from_store, options


def test_export_writes_parquet_by_duty_date_that_agrees_with_the_report(
        events: Path, tmp_path: Path) -> None:
    import duckdb

    ok(run("export", "--input", str(events), "--to", str(tmp_path / "out"), cwd=tmp_path))
    report = json.loads(ok(run("report", "--input", str(events), cwd=tmp_path)).stdout)
    incidents = duckdb.sql(
        f"SELECT duty_date::VARCHAR, count(*), avg(restoration_minutes) FILTER "
        f"(WHERE restoration_minutes >= 0) FROM "
        f"read_parquet('{tmp_path}/out/incidents/*/*.parquet', hive_partitioning=true) "
        f"WHERE is_outage AND call_at IS NOT NULL "
        f"GROUP BY ALL ORDER BY 1").fetchall()
    assert [(p["duty_date"], p["incidents"]) for p in report["duty_periods"]] == \
        [(day, n) for day, n, _ in incidents]
    for period, (_, _, mean) in zip(report["duty_periods"], incidents, strict=True):
        assert mean == pytest.approx(period["avg_restoration_minutes"], rel=1e-9, abs=0) \
            if mean is not None else period["avg_restoration_minutes"] is None
    events_written = duckdb.sql(
        f"SELECT count(*), count(DISTINCT event_id) FROM "
        f"read_parquet('{tmp_path}/out/events/*/*.parquet')").fetchall()[0]
    assert events_written == (len(GOOD), len(GOOD))  # MIXED: 2 rejected, 1 duplicate


def assert_export_matches_the_oracle(folder: Path, lines: list[str]) -> None:
    """Open an export with DuckDB: per duty date the outage incidents and the mean
    restoration, and the accepted events, as the naive oracle computes them."""
    import duckdb

    from tests.oracle import fold_all, oracle_report

    want = oracle_report(lines)
    incidents = duckdb.sql(
        f"SELECT duty_date::VARCHAR, count(*), avg(restoration_minutes) FILTER "
        f"(WHERE restoration_minutes >= 0) FROM "
        f"read_parquet('{folder}/incidents/*/*.parquet', hive_partitioning=true) "
        f"WHERE is_outage AND call_at IS NOT NULL GROUP BY ALL ORDER BY 1").fetchall()
    assert [(p["duty_date"], p["incidents"]) for p in want["duty_periods"]] == \
        [(day, n) for day, n, _ in incidents]
    for period, (_, _, mean) in zip(want["duty_periods"], incidents, strict=True):
        if period["avg_restoration_minutes"] is None:
            assert mean is None
        else:
            assert mean == pytest.approx(period["avg_restoration_minutes"], rel=1e-9)
    accepted = {e.event_id for e in fold_all(lines)[0]}
    written = duckdb.sql(f"SELECT event_id FROM read_parquet('{folder}/events/*/*.parquet')"
                         ).fetchall()
    assert sorted(e for (e,) in written) == sorted(accepted)


def test_export_from_a_store_matches_the_oracle_and_the_file_export(
        events: Path, tmp_path: Path) -> None:
    import duckdb

    store = f"sqlite:///{tmp_path / 'store.db'}"
    ok(run("ingest", str(events), "--store", store, cwd=tmp_path))
    ok(run("export", "--store", store, "--to", str(tmp_path / "from-store"), cwd=tmp_path))
    assert_export_matches_the_oracle(tmp_path / "from-store", MIXED)
    ok(run("export", "--input", str(events), "--to", str(tmp_path / "from-file"), cwd=tmp_path))
    query = ("SELECT * EXCLUDE (known_at) FROM read_parquet('{}/events/*/*.parquet', "
             "hive_partitioning=true) ORDER BY event_id")
    assert duckdb.sql(query.format(tmp_path / "from-store")).fetchall() == \
        duckdb.sql(query.format(tmp_path / "from-file")).fetchall()
    missing = run("export", "--store", f"sqlite:///{tmp_path / 'none.db'}", "--to",
                  str(tmp_path / "x"), cwd=tmp_path)
    fails_cleanly(missing, codes=(1,), mentions="no store")
