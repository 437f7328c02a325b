"""Analysts' batch path against a DuckDB peer query over the same JSON Lines file.

Measures, in one run on one machine, each as a real subprocess (wall time, peak RSS):
- the peer: the query an analyst would write in DuckDB over the file (below, shipped
  here): skip unreadable lines and events without an event id, an incident id or
  an ``occurred_at`` that carries a UTC offset (``Z`` or ``+HH:MM``: a careful
  analyst does not guess the zone of a naive timestamp, which DuckDB would read as
  UTC), keep one copy per event id, earliest time per checkpoint, leave out
  rejected/merged incidents, overall stage means and the average restoration time.
  No line numbers, no reasons, no duty periods;
- the same query written for Polars (lazy NDJSON scan), to compare the engines;
- the floor: DuckDB's reader alone filling a table with every field our check reads
  (our engine's first step, nothing after it): no complete validation can take less;
- ours: ``dispatch report --input FILE --engine columnar`` and, unless
  ``--skip-exact``, ``dispatch report --input FILE`` (the exact engine);
and checks that the peer's overall means and incident count agree with ours, and
that our two engines print the same bytes.

    .venv/bin/python bench/history.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import print_figures  # bench/figures.py

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl

REPO = Path(__file__).resolve().parents[1]

PEER_DUCKDB = r"""
import duckdb, json, sys
path = sys.argv[1]
query = '''
WITH ev AS (
  SELECT event_id, type, incident_id, occurred_at::TIMESTAMPTZ AS ts
  FROM read_json(?, format='newline_delimited', ignore_errors=true,
       columns={event_id:'VARCHAR', type:'VARCHAR', incident_id:'VARCHAR', occurred_at:'VARCHAR'})
  WHERE event_id IS NOT NULL AND incident_id IS NOT NULL
    AND regexp_matches(occurred_at, '(Z|[+-]\d\d:\d\d)$')
), uniq AS (SELECT DISTINCT ON (event_id) * FROM ev),
inc AS (
  SELECT incident_id,
    min(ts) FILTER (WHERE type='call.received') t0, min(ts) FILTER (WHERE type='call.verified') t1,
    min(ts) FILTER (WHERE type='crew.departed') t2, min(ts) FILTER (WHERE type='crew.arrived') t3,
    min(ts) FILTER (WHERE type='fault.diagnosed') t4,
    min(ts) FILTER (WHERE type='repair.completed') t5,
    min(ts) FILTER (WHERE type='power.restored') t6,
    bool_or(type IN ('call.rejected','call.merged')) ended
  FROM uniq GROUP BY incident_id)
SELECT count(*) FILTER (WHERE t0 IS NOT NULL) incidents,
  avg(epoch(t1)-epoch(t0)) FILTER (WHERE t1>=t0)/60 verify,
  avg(epoch(t2)-epoch(t1)) FILTER (WHERE t2>=t1)/60 depart,
  avg(epoch(t3)-epoch(t2)) FILTER (WHERE t3>=t2)/60 arrive,
  avg(epoch(t4)-epoch(t3)) FILTER (WHERE t4>=t3)/60 diagnose,
  avg(epoch(t5)-epoch(t4)) FILTER (WHERE t5>=t4)/60 repair,
  avg(epoch(t6)-epoch(t5)) FILTER (WHERE t6>=t5)/60 restore,
  avg(epoch(t6)-epoch(t0)) FILTER (WHERE t6>=t0)/60 restoration
FROM inc WHERE NOT ended
'''
names = ["incidents", "verify", "depart", "arrive", "diagnose", "repair", "restore",
         "restoration"]
db = duckdb.connect()
db.execute("SET enable_progress_bar = false")
row = db.execute(query, [path]).fetchone()
print(json.dumps(dict(zip(names, row))))
"""

FLOOR_READ = r"""
import duckdb, sys
db = duckdb.connect()
db.execute("SET enable_progress_bar = false")
db.execute("CREATE TABLE raw AS " + sys.argv[1])
print(db.execute("SELECT count(*) FROM raw").fetchone()[0])
"""
"""DuckDB's reader alone, filling a table with every field the contract checks, as our
engine's first step does (its own SQL, ``projections.columnar._read_sql``): no check,
no fold, no report. Complete validation needs at least this much of the file."""

PEER_POLARS = r"""
import json, sys
import polars as pl
path = sys.argv[1]
ev = (pl.scan_ndjson(path, schema={"event_id": pl.String, "type": pl.String,
                                   "incident_id": pl.String, "occurred_at": pl.String},
                     ignore_errors=True)
      .drop_nulls(["event_id", "incident_id", "occurred_at"])
      .filter(pl.col("occurred_at").str.contains(r"(Z|[+-]\d\d:\d\d)$"))
      .with_columns(pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z",
                                                          time_zone="UTC", strict=False)
                    .alias("ts"))
      .drop_nulls("ts")
      .unique("event_id", keep="first", maintain_order=True))
checkpoints = ["call.received", "call.verified", "crew.departed", "crew.arrived",
               "fault.diagnosed", "repair.completed", "power.restored"]
inc = ev.group_by("incident_id").agg(
    *[pl.col("ts").filter(pl.col("type") == t).min().alias(f"t{k}")
      for k, t in enumerate(checkpoints)],
    pl.col("type").is_in(["call.rejected", "call.merged"]).any().alias("ended"))
inc = inc.filter(~pl.col("ended"))
def mean(a, b):
    d = (pl.col(b) - pl.col(a)).dt.total_microseconds()
    return (d.filter(d >= 0).mean() / 60e6)
names = ["verify", "depart", "arrive", "diagnose", "repair", "restore"]
out = inc.select(pl.col("t0").is_not_null().sum().alias("incidents"),
                 *[mean(f"t{k}", f"t{k + 1}").alias(n) for k, n in enumerate(names)],
                 mean("t0", "t6").alias("restoration")).collect()
print(json.dumps(out.row(0, named=True)))
"""


def timed(argv: list[str], rss_file: Path) -> tuple[float, float, str, str, int]:
    """Wall seconds, peak RSS (MB, GNU time), stdout, stderr and exit code of a subprocess."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv], cwd=REPO,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    kilobytes = rss_file.read_text().strip().splitlines()[-1]
    return elapsed, int(kilobytes) / 1024, done.stdout, done.stderr, done.returncode


def measure(label: str, argv: list[str], folder: Path) -> dict[str, object]:
    print(f"{label} ...", file=sys.stderr, flush=True)
    seconds, rss, out, err, code = timed(argv, folder / "rss.txt")
    tail = err.strip().splitlines()[-1:] if err.strip() else []
    print(f"  {seconds:.2f}s, exit {code} {tail}", file=sys.stderr, flush=True)
    return {"seconds": seconds, "rss_mb": rss, "stdout": out, "stderr": err, "exit": code}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    parser.add_argument("--skip-exact", action="store_true",
                        help="do not time --engine exact (about 20x slower)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="dispatch-history-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    events = folder / f"events-{args.events}.jsonl"
    if not events.exists():
        print(f"simulating {args.events:,} events into {events} ...", file=sys.stderr)
        plan = SimulationPlan(seed=7, target_events=args.events, storm_days=(2, 9),
                              duplicate_rate=0.01, shuffle=True, late_rate=0.01,
                              malformed_rate=0.0001)
        write_jsonl(simulate_lines(plan), events)
    lines = sum(1 for _ in events.open("rb"))
    print(f"  {lines:,} lines, {events.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
    python = sys.executable

    from projections.columnar import _read_sql
    results = {
        "peer_duckdb": measure("peer: DuckDB query", [python, "-c", PEER_DUCKDB, str(events)],
                               folder),
        "floor_read": measure("floor: DuckDB reading every field our check needs, nothing else",
                              [python, "-c", FLOOR_READ,
                               _read_sql(str(events).replace("'", "''"))], folder),
        "peer_polars": measure("peer: the same query in Polars",
                               [python, "-c", PEER_POLARS, str(events)], folder),
        "ours_columnar": measure("ours: dispatch report --input --engine columnar", [
            python, "-m", "dispatch.cli", "report", "--input", str(events), "--engine",
            "columnar", "--format", "json", "--output", str(folder / "report-columnar.json")],
            folder),
    }
    if not args.skip_exact:
        results["ours_exact"] = measure("ours: dispatch report --input --engine exact", [
            python, "-m", "dispatch.cli", "report", "--input", str(events), "--engine", "exact",
            "--format", "json", "--output", str(folder / "report-exact.json")], folder)

    ours = json.loads((folder / "report-columnar.json").read_text())["overall"]
    checks: dict[str, object] = {}
    mine = {stage: ours["stages"][stage]["mean_minutes"] for stage in
            ("verify", "depart", "arrive", "diagnose", "repair", "restore")}
    mine["restoration"] = ours["avg_restoration_minutes"]
    if results["peer_duckdb"]["exit"] == 0:
        peer = json.loads(str(results["peer_duckdb"]["stdout"]).strip().splitlines()[-1])
        checks["peer_means_agree"] = all(
            math.isclose(mine[k], peer[k], rel_tol=1e-9) for k in mine)
        checks["peer_incidents"] = peer["incidents"]
        checks["our_incidents"] = ours["incidents"]
    if "ours_exact" in results:
        checks["columnar_report_bytes_equal_exact"] = (
            (folder / "report-columnar.json").read_bytes()
            == (folder / "report-exact.json").read_bytes())
    figures: dict[str, object] = {
        "events": lines, "megabytes": round(events.stat().st_size / 1e6),
        "cpu_count": os.cpu_count(), "load_average_before": round(os.getloadavg()[0], 2),
    }
    for name, result in results.items():
        figures[f"{name}_seconds"] = round(float(result["seconds"]), 2)  # type: ignore[arg-type]
        figures[f"{name}_events_per_s"] = round(lines / float(result["seconds"]))  # type: ignore[arg-type]
        figures[f"{name}_peak_rss_mb"] = round(float(result["rss_mb"]))  # type: ignore[arg-type]
        figures[f"{name}_exit"] = result["exit"]
    peer_seconds = float(results["peer_duckdb"]["seconds"])  # type: ignore[arg-type]
    for name in ("ours_columnar", "ours_exact", "peer_polars", "floor_read"):
        if name in results and results[name]["exit"] == 0:
            figures[f"{name}_speed_vs_duckdb_peer"] = round(
                peer_seconds / float(results[name]["seconds"]), 3)  # type: ignore[arg-type]
    figures["load_average_after"] = round(os.getloadavg()[0], 2)
    figures.update(checks)
    print_figures(figures, args.json)
    if results["peer_polars"]["exit"] != 0:
        print(f"polars: {str(results['peer_polars']['stderr']).strip().splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
