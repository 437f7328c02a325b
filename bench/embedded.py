"""Embedded engine benchmark: ``dispatch ingest`` + ``dispatch report`` on 1M events.

Measures, in one run on one machine:
- the ceiling: read the same JSON Lines file and parse every line as JSON,
  nothing else (stdlib ``json`` and ``orjson``, both reported);
- ours: ``dispatch ingest FILE --store sqlite:///...`` into a fresh store, then
  ``dispatch report --store ... --format json``, as real subprocesses;
and prints events/s for each, our share of each ceiling, and our peak RSS; and the
same in CPU seconds (user + system, parse workers included), which a machine
shared with other work distorts far less than the wall clock.

With ``--compare CHECKOUT`` (another checkout of this repository, e.g. the commit
before a change) the same file is also ingested and reported by that checkout's
code, and ``dispatch report --input FILE`` is timed for both, back to back in
this run, so a change's cost is measured against its baseline on the same input
and the same machine state. ``--events-file`` reuses an existing events file.

    .venv/bin/python bench/embedded.py --events 1000000
    git worktree add --detach ../base HEAD~1
    .venv/bin/python bench/embedded.py --events-file week.jsonl --compare ../base
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from figures import print_figures  # bench/figures.py

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl

REPO = Path(__file__).resolve().parents[1]


CPU = "_cpu"
"""Suffix of the CPU-second figures: user + system time of the process and of every
process it started (parse workers included). On a machine shared with other work
the wall clock mostly measures the wait for a core; CPU seconds do not."""


def ceiling(path: Path, loads: object) -> tuple[float, float]:
    """Lines per second and per CPU second of reading and parsing every line."""
    parse = loads  # bound locally: this loop is the baseline, keep it tight
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    with path.open("rb") as stream:
        for line in stream:
            parse(line)  # type: ignore[operator]
            count += 1
    return (count / (time.perf_counter() - started),
            count / (time.process_time() - cpu))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _adopt_orphans() -> None:
    """Make this process the reaper of its descendants' orphans (Linux): the parse
    workers' server outlives ``dispatch`` by a moment, and only a reaped process's
    CPU time (with that of the workers it reaped) counts in RUSAGE_CHILDREN."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap_orphans() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def run(*args: str, checkout: Path = REPO) -> tuple[float, float]:
    """Seconds and CPU seconds ``dispatch ARGS`` takes, run from ``checkout`` (so its
    code is imported: the working directory comes first on ``python -m``'s path)."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "dispatch.cli", *args], cwd=checkout,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    _reap_orphans()
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"dispatch {args[0]} failed:\n{done.stderr}")
    print(f"  [{checkout.name}] dispatch {args[0]}: {elapsed:.2f}s ({cpu:.2f} CPU s)  "
          f"{done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return elapsed, cpu


def ingest_and_report(events: Path, folder: Path, checkout: Path,
                      name: str) -> dict[str, float | bool]:
    """Ingest into a fresh store and report from it; then ``report --input``."""
    for stale in folder.glob(f"{name}.db*"):
        stale.unlink()
    url = f"sqlite:///{folder / f'{name}.db'}"
    ingest = run("ingest", str(events), "--store", url, checkout=checkout)
    report = run("report", "--store", url, "--format", "json", "--output",
                 str(folder / f"{name}-report.json"), checkout=checkout)
    from_input = run("report", "--input", str(events), "--format", "json", "--output",
                     str(folder / f"{name}-input-report.json"), checkout=checkout)
    identical = ((folder / f"{name}-report.json").read_bytes()
                 == (folder / f"{name}-input-report.json").read_bytes())
    return {"ingest": ingest[0], "report": report[0], "report_input": from_input[0],
            "ingest" + CPU: ingest[1], "report" + CPU: report[1],
            "report_input" + CPU: from_input[1], "store_report_identical": identical}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    parser.add_argument("--events-file", metavar="PATH",
                        help="use this JSON Lines file instead of simulating one")
    parser.add_argument("--compare", metavar="CHECKOUT",
                        help="another checkout of this repository to measure on the same "
                             "file, back to back (the baseline)")
    args = parser.parse_args()
    _adopt_orphans()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="dispatch-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.events_file:
        events = Path(args.events_file)
        lines = sum(1 for _ in events.open("rb"))
        print(f"using {events}: {lines:,} lines", file=sys.stderr)
    else:
        events = folder / "events.jsonl"
        print(f"simulating {args.events:,} events into {events} ...", file=sys.stderr)
        started = time.perf_counter()
        plan = SimulationPlan(seed=7, target_events=args.events, storm_days=(2, 9),
                              duplicate_rate=0.01, shuffle=True, late_rate=0.01)
        lines = write_jsonl(simulate_lines(plan), events)
        print(f"  {lines:,} lines, {events.stat().st_size / 1e6:.0f} MB in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr)

    print("ceiling: read + parse every line ...", file=sys.stderr)
    ceiling_json, ceiling_json_cpu = ceiling(events, json.loads)
    ceiling_orjson, ceiling_orjson_cpu = ceiling(events, orjson.loads)

    print("ours: ingest + report ...", file=sys.stderr)
    ours_times = ingest_and_report(events, folder, REPO, "bench")
    ours = lines / (ours_times["ingest"] + ours_times["report"])
    ours_cpu = lines / (ours_times["ingest" + CPU] + ours_times["report" + CPU])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    figures: dict[str, object] = {
        "events": lines, "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
        "ceiling_json_events_per_s": round(ceiling_json),
        "ceiling_orjson_events_per_s": round(ceiling_orjson),
        "ingest_seconds": round(ours_times["ingest"], 2),
        "report_seconds": round(ours_times["report"], 2),
        "report_input_seconds": round(ours_times["report_input"], 2),
        "ours_events_per_s": round(ours),
        "share_of_json_ceiling": round(ours / ceiling_json, 3),
        "share_of_orjson_ceiling": round(ours / ceiling_orjson, 3),
        "ceiling_json_events_per_cpu_s": round(ceiling_json_cpu),
        "ceiling_orjson_events_per_cpu_s": round(ceiling_orjson_cpu),
        "ingest_cpu_seconds": round(ours_times["ingest" + CPU], 2),
        "report_cpu_seconds": round(ours_times["report" + CPU], 2),
        "report_input_cpu_seconds": round(ours_times["report_input" + CPU], 2),
        "ours_events_per_cpu_s": round(ours_cpu),
        "cpu_share_of_json_ceiling": round(ours_cpu / ceiling_json_cpu, 3),
        "store_report_identical_to_report_input": ours_times["store_report_identical"],
        "peak_rss_mb": round(peak_mb),
        "store_mb": round(sum(p.stat().st_size for p in folder.glob("bench.db*")) / 1e6),
    }
    if args.compare:
        checkout = Path(args.compare).resolve()
        print(f"baseline: the same with {checkout} ...", file=sys.stderr)
        base = ingest_and_report(events, folder, checkout, "baseline")
        base_rate = lines / (base["ingest"] + base["report"])
        base_cpu = lines / (base["ingest" + CPU] + base["report" + CPU])
        figures.update({
            "baseline_ingest_seconds": round(base["ingest"], 2),
            "baseline_report_seconds": round(base["report"], 2),
            "baseline_report_input_seconds": round(base["report_input"], 2),
            "baseline_ingest_cpu_seconds": round(base["ingest" + CPU], 2),
            "baseline_report_cpu_seconds": round(base["report" + CPU], 2),
            "baseline_report_input_cpu_seconds": round(base["report_input" + CPU], 2),
            "baseline_events_per_s": round(base_rate),
            "baseline_events_per_cpu_s": round(base_cpu),
            "ours_over_baseline_ingest_report": round(ours / base_rate, 3),
            "ours_over_baseline_report_input": round(
                base["report_input"] / ours_times["report_input"], 3),
            "ours_over_baseline_cpu_ingest": round(
                base["ingest" + CPU] / ours_times["ingest" + CPU], 3),
            "ours_over_baseline_cpu_report": round(
                base["report" + CPU] / ours_times["report" + CPU], 3),
            "ours_over_baseline_cpu_report_input": round(
                base["report_input" + CPU] / ours_times["report_input" + CPU], 3),
            "load_average_end": os.getloadavg()[0],
        })
    print_figures(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
