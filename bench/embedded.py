"""Embedded engine benchmark: ``dispatch ingest`` + ``dispatch report`` on 1M events.

Measures, in one run on one machine:
- the ceiling: read the same JSON Lines file and parse every line as JSON,
  nothing else (stdlib ``json`` and ``orjson``, both reported);
- ours: ``dispatch ingest FILE --store sqlite:///...`` into a fresh store, then
  ``dispatch report --store ... --format json``, as real subprocesses;
and prints events/s for each, our share of each ceiling, and our peak RSS.

    .venv/bin/python bench/embedded.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl

REPO = Path(__file__).resolve().parents[1]


def ceiling(path: Path, loads: object) -> float:
    parse = loads  # bound locally: this loop is the baseline, keep it tight
    started = time.perf_counter()
    count = 0
    with path.open("rb") as stream:
        for line in stream:
            parse(line)  # type: ignore[operator]
            count += 1
    return count / (time.perf_counter() - started)


def run(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dispatch.cli", *args], cwd=REPO,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dispatch {args[0]} failed:\n{done.stderr}")
    print(f"  dispatch {args[0]}: {elapsed:.2f}s  {done.stderr.strip().splitlines()[-1:]}",
          file=sys.stderr)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="dispatch-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    events = folder / "events.jsonl"
    store = folder / "bench.db"
    for stale in folder.glob("bench.db*"):
        stale.unlink()

    print(f"simulating {args.events:,} events into {events} ...", file=sys.stderr)
    started = time.perf_counter()
    plan = SimulationPlan(seed=7, target_events=args.events, storm_days=(2, 9),
                          duplicate_rate=0.01, shuffle=True, late_rate=0.01)
    lines = write_jsonl(simulate_lines(plan), events)
    print(f"  {lines:,} lines, {events.stat().st_size / 1e6:.0f} MB in "
          f"{time.perf_counter() - started:.1f}s", file=sys.stderr)

    print("ceiling: read + parse every line ...", file=sys.stderr)
    ceiling_json = ceiling(events, json.loads)
    ceiling_orjson = ceiling(events, orjson.loads)

    print("ours: ingest + report ...", file=sys.stderr)
    url = f"sqlite:///{store}"
    ingest = run("ingest", str(events), "--store", url)
    report = run("report", "--store", url, "--format", "json", "--output",
                 str(folder / "report.json"))
    ours = lines / (ingest + report)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    figures = {
        "events": lines, "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
        "ceiling_json_events_per_s": round(ceiling_json),
        "ceiling_orjson_events_per_s": round(ceiling_orjson),
        "ingest_seconds": round(ingest, 2), "report_seconds": round(report, 2),
        "ours_events_per_s": round(ours),
        "share_of_json_ceiling": round(ours / ceiling_json, 3),
        "share_of_orjson_ceiling": round(ours / ceiling_orjson, 3),
        "peak_rss_mb": round(peak_mb),
        "store_mb": round(sum(p.stat().st_size for p in folder.glob("bench.db*")) / 1e6),
    }
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
