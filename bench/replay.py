"""``dispatch replay`` against ``dispatch worker`` on the same topic, in one run.

Steps (local Kafka and PostgreSQL of ``deploy/local/up.sh``):
0. simulate N events (``SimulationPlan(target_events=N)``, 2 % duplicates, shuffled)
   and publish them with ``dispatch produce`` to a fresh 6-partition topic;
1. ``dispatch replay --from-topic --engine E --store postgresql://.../dispatch_bench_replay_E``
   into an empty database for each engine E (``--engines``, default columnar then
   exact: the exact engine is the baseline of the columnar one), as a subprocess:
   wall time, rate, peak RSS (VmHWM of the replay process; the parse workers are
   reported separately), CPU seconds of the replay process (its threads and the
   children it waited for) and of the PostgreSQL server processes serving its
   database (sampled every 0.2 s: the last 0.2 s of each may be missed);
2. ``dispatch worker`` (Faust, the production path) into another empty database,
   as a subprocess: time from the first stored position to the end offsets (the
   worker's steady rate) and from spawn (with start-up); peak RSS;
3. the ratio replay rate / worker rate for each engine, the load average before and after;
4. correctness: ``dispatch report --store`` of every database must equal
   ``dispatch report --input FILE`` byte for byte;
5. the run's topics and databases are deleted.

    .venv/bin/python bench/replay.py --events 1000000
    .venv/bin/python bench/replay.py --events 100000 --worker-events 50000   # quicker

``--worker-events M`` stops the worker once M events are stored (its rate is then
measured over the first M; the report check is done for the replay only).

``--compare CHECKOUT`` (another checkout of this repository, e.g. the commit before a
change) first runs that checkout's replay with the first of ``--engines`` on the same
topic, into its own database: the change's baseline, in the same run.

    git worktree add --detach ../base COMMIT
    .venv/bin/python bench/replay.py --engines columnar --worker-events 20000 --compare ../base
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from figures import backends_of, cpu_of  # bench/figures.py
from figures import fresh_database as scratch

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

ROOT = "postgresql://dispatch:dispatch@127.0.0.1:5432"
DATABASE = "dispatch_bench_replay"
"""One database per engine: ``dispatch_bench_replay_columnar``, ``..._exact`` and
``..._baseline`` (``--compare``)."""
ENGINES = ("columnar", "exact")
BASELINE = "baseline"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants_rss_mb(pid: int) -> float:
    """Peak RSS summed over every descendant of ``pid`` (forkserver, parse workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    family, total = {pid}, 0.0
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                total += peak_rss_mb(child) or 0.0
                grew = True
    return total


async def _sql(dsn: str, query: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


def fresh_database(name: str) -> str:
    return scratch(ROOT, name)


def stored(dsn: str, topic: str) -> int:
    try:
        rows = asyncio.run(_sql(dsn, "SELECT coalesce(sum(next_position), 0) FROM positions "
                                     f"WHERE source = '{topic}'"))
    except Exception:
        return 0
    return int(rows[0][0])


def dispatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([PY, "-m", "dispatch.cli", *args], env=env, capture_output=True,
                          text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"dispatch {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def cleanup(bootstrap: str, topics: list[str]) -> None:
    """Delete the run's topics and databases (the topic holds the whole history)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=15).topics)
    doomed = [t for t in topics if t in existing]
    for future in (admin.delete_topics(doomed, request_timeout=30).values() if doomed else []):
        try:
            future.result()
        except Exception as exc:  # reported, not fatal: the figures are taken
            say(f"topic not deleted: {exc}")

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(f"{ROOT}/postgres")
        try:
            for name in (*(f"{DATABASE}_{e}" for e in (*ENGINES, BASELINE)),
                         "dispatch_bench_worker"):
                await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        finally:
            await conn.close()
    asyncio.run(drop())


def replay(engine: str, args: argparse.Namespace, env: dict[str, str], lines: int,
           checkout: Path = REPO, label: str | None = None) -> dict[str, Any]:
    """``dispatch replay --engine ENGINE`` of ``checkout`` into a fresh database
    (named after ``label``, the engine by default), as a subprocess."""
    label = label or engine
    dsn = fresh_database(f"{DATABASE}_{label}")
    say(f"replay, {engine} engine of {checkout} (load {load()})")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "dispatch.cli", "replay", "--from-topic", "--store", dsn, "--engine", engine,
         "--parse-workers", str(args.parse_workers),
         *(["--batch-size", str(args.batch_size)] if args.batch_size else [])],
        env={**env, "PYTHONPATH": str(checkout)}, cwd=checkout, stderr=subprocess.PIPE,
        text=True)
    rss = helpers = 0.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    backends: dict[int, float] = {}
    while proc.poll() is None:
        rss = max(rss, peak_rss_mb(proc.pid) or 0.0)
        helpers = max(helpers, descendants_rss_mb(proc.pid))
        for pid in backends_of(dsn.rsplit("/", 1)[1]):
            backends[pid] = cpu_of(pid) or backends.get(pid, 0.0)
        time.sleep(0.2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    pg_cpu = sum(backends.values())
    assert proc.stderr is not None
    tail = proc.stderr.read().strip().splitlines()[-1:]
    if proc.returncode != 0:
        raise SystemExit(f"replay ({label}) failed: {tail}")
    seconds = time.perf_counter() - started
    say(f"replay ({label}): {lines / seconds:,.0f} events/s in {seconds:.1f}s, RSS {rss:.0f} MB "
        f"(+ workers {helpers:.0f} MB), CPU {cpu:.1f} s + PostgreSQL {pg_cpu:.1f} s; {tail}")
    return {"seconds": seconds, "rate": lines / seconds, "peak_rss_mb": rss,
            "cpu_seconds": cpu, "pg_cpu_seconds": pg_cpu,
            "parse_workers_peak_rss_mb": helpers, "summary": tail, "load_after": load()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--worker-events", type=int,
                        help="stop the worker after this many stored events")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--parse-workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int,
                        help="replay chunk size (default: each engine's own)")
    parser.add_argument("--engines", type=lambda v: v.split(","), default=list(ENGINES),
                        help="replay engines to run, in this order (default columnar,exact)")
    parser.add_argument("--compare", metavar="CHECKOUT", type=Path,
                        help="another checkout whose replay (first of --engines) runs first "
                             "on the same topic: the baseline")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    replays = [*([BASELINE] if args.compare else []), *args.engines]

    from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl

    run_id = uuid.uuid4().hex[:8]
    topic, group = f"bench.replay.{run_id}", f"bench-replay-{run_id}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DISPATCH_KAFKA_BOOTSTRAP": args.bootstrap,
           "DISPATCH_TOPIC_EVENTS": topic, "DISPATCH_TOPIC_DLQ": f"{topic}.dlq",
           "DISPATCH_TOPIC_ALERTS": f"{topic}.alerts", "DISPATCH_CONSUMER_GROUP": group,
           "DISPATCH_METRICS_PORT": "0"}
    results: dict[str, Any] = {"events": args.events, "load_before": load()}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "events.jsonl"
        plan = SimulationPlan(target_events=args.events, storm_days=(2, 9),
                              duplicate_rate=0.02, shuffle=True)
        lines = write_jsonl(simulate_lines(plan), path)
        say(f"simulated {lines:,} lines; producing to {topic}")
        started = time.perf_counter()
        dispatch("produce", str(path), env=env)
        results["produce_seconds"] = time.perf_counter() - started

        # 1. replay, by each engine (the baseline checkout's first)
        if args.compare:
            results[f"replay_{BASELINE}"] = replay(args.engines[0], args, env, lines,
                                                   args.compare.resolve(), BASELINE)
        for engine in args.engines:
            results[f"replay_{engine}"] = replay(engine, args, env, lines)
        fastest = max(args.engines, key=lambda e: results[f"replay_{e}"]["rate"])

        # 2. worker
        worker_dsn = fresh_database("dispatch_bench_worker")
        target = args.worker_events or lines
        say(f"worker until {target:,} events are stored (load {load()})")
        spawned = time.perf_counter()
        proc2 = subprocess.Popen([PY, "-m", "dispatch.cli", "worker", "--no-sla",
                                  "--metrics-port", "0"],
                                 env={**env, "DISPATCH_PG_DSN": worker_dsn}, cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first_at = first_n = None
        count = 0
        rss2 = 0.0
        try:
            while count < target:
                if proc2.poll() is not None:
                    raise SystemExit(f"worker exited with {proc2.returncode}")
                count = stored(worker_dsn, topic)
                if count and first_at is None:
                    first_at, first_n = time.perf_counter(), count
                rss2 = max(rss2, peak_rss_mb(proc2.pid) or 0.0)
                time.sleep(0.2)
            done = time.perf_counter()
        finally:
            proc2.terminate()
            proc2.wait(60)
        assert first_at is not None and first_n is not None
        if count == first_n:  # everything arrived in the first commit seen: no steady rate
            first_at, first_n = spawned, 0
        worker_rate = (count - first_n) / max(done - first_at, 1e-9)
        results["worker"] = {"events": count, "rate_after_first_commit": worker_rate,
                             "rate_with_startup": count / (done - spawned),
                             "peak_rss_mb": rss2, "load_after": load()}
        say(f"worker: {worker_rate:,.0f} events/s after its first commit "
            f"({count / (done - spawned):,.0f}/s with start-up), RSS {rss2:.0f} MB")
        for engine in args.engines:
            ratio = results[f"replay_{engine}"]["rate"] / worker_rate
            results[f"ratio_{engine}"] = ratio
            say(f"ratio replay ({engine}) / worker: {ratio:.2f}x (load {load()})"
                + (f"; the worker's rate is that of its first {target:,} events, below its "
                   "catch-up rate: run without --worker-events for the ratio"
                   if args.worker_events else ""))
        if args.compare:
            speedup = results[f"replay_{args.engines[0]}"]["rate"] / results[
                f"replay_{BASELINE}"]["rate"]
            results["speedup_over_baseline"] = speedup
            say(f"replay ({args.engines[0]}) / baseline checkout: {speedup:.2f}x")

        # 4. correctness
        want = dispatch("report", "--input", str(path), env=env).stdout
        equal = {}
        for engine in replays:
            got = dispatch("report", "--store", f"{ROOT}/{DATABASE}_{engine}", env=env).stdout
            equal[engine] = results[f"replay_{engine}"]["report_equal"] = got == want
        if not args.worker_events:
            results["worker_report_equal"] = dispatch(
                "report", "--store", worker_dsn, env=env).stdout == want
        say(f"reports equal to report --input: replay {equal}, "
            f"worker {results.get('worker_report_equal', 'not checked')} (fastest replay: "
            f"{fastest})")
        cleanup(args.bootstrap, [topic, f"{topic}.dlq", f"{topic}.alerts"])
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(results[f"replay_{e}"]["report_equal"] for e in replays) else 1


if __name__ == "__main__":
    sys.exit(main())
