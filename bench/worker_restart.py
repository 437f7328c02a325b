"""Worker recovery: how long a SIGKILLed ``dispatch worker`` restarted at once takes
to commit again.

Against the local stack (``deploy/local/up.sh``), with a database of its own
(``dispatch_bench_restart``, created if missing, schema ``public`` reset per
scenario) and a fresh topic and consumer group per scenario, deleted at the end.

For each scenario:

1. ``--events`` simulated events are published with ``dispatch produce`` to a
   fresh 6-partition topic;
2. a worker (``--batch-size``) starts on empty read models; the ``positions``
   table is polled every 50 ms until the worker has committed at least
   ``--kill-at`` of the events (and not all of them: the kill must land
   mid-catch-up, or the scenario fails);
3. SIGKILL, and at once the same command is started again;
4. *restart-to-resume* = from the new process's spawn to the first poll that
   sees the stored positions move past where the killed worker left them;
   *cold start* (the first worker's spawn to its first commit) is what any
   start costs and is the floor for it;
5. the worker runs to the end, and ``dispatch report --store`` must equal
   ``dispatch report --input`` byte for byte.

Scenarios: ``before`` is the old configuration (Faust's 60 s session timeout,
dynamic membership); ``dynamic`` is today's default session timeout without a
static name; ``static`` adds ``--instance-id`` (KIP-345 static membership).

Usage::

    .venv/bin/python bench/worker_restart.py                      # all three, 100,000 events
    .venv/bin/python bench/worker_restart.py --scenarios static,dynamic --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl  # noqa: E402

SCENARIOS: dict[str, dict[str, str]] = {
    "before": {"DISPATCH_WORKER_SESSION_TIMEOUT": "60", "DISPATCH_WORKER_HEARTBEAT_INTERVAL": "3"},
    "dynamic": {},
    "static": {"DISPATCH_WORKER_INSTANCE_ID": "bench-worker-1"},
}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Run:
    scenario: str
    events: int
    cold_start_s: float
    committed_at_kill: int
    restart_to_resume_s: float
    kill_to_resume_s: float
    catch_up_s: float
    report_exact: bool
    load: str


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap = os.environ.get("DISPATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
        base = os.environ.get("DISPATCH_PG_DSN",
                              "postgresql://dispatch:dispatch@127.0.0.1:5432/dispatch")
        self.admin_dsn = base
        self.dsn = base.rsplit("/", 1)[0] + "/dispatch_bench_restart"
        self.topics: list[str] = []
        self.groups: list[str] = []

    def env(self, topic: str, group: str, extra: dict[str, str]) -> dict[str, str]:
        return {**os.environ, "DISPATCH_KAFKA_BOOTSTRAP": self.bootstrap,
                "DISPATCH_PG_DSN": self.dsn, "DISPATCH_TOPIC_EVENTS": topic,
                "DISPATCH_TOPIC_DLQ": f"{topic}.dlq", "DISPATCH_TOPIC_ALERTS": f"{topic}.alerts",
                "DISPATCH_CONSUMER_GROUP": group, "DISPATCH_METRICS_PORT": "0",
                "PYTHONPATH": str(REPO), **extra}

    def cli(self, env: dict[str, str], *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dispatch.cli", *args], env=env,
                              capture_output=True, text=True, cwd=REPO, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"dispatch {args[0]} exited {done.returncode}: {done.stderr}")
        return done.stdout

    async def reset_database(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = 'dispatch_bench_restart'")
            if not exists:
                await conn.execute("CREATE DATABASE dispatch_bench_restart")
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    async def committed(self, conn: Any, topic: str, group: str) -> int:
        try:
            value = await conn.fetchval(
                "SELECT coalesce(sum(next_position), 0) FROM positions "
                "WHERE consumer = $1 AND source = $2", group, topic)
        except asyncpg.UndefinedTableError:
            return 0
        return int(value)

    async def wait_for(self, conn: Any, topic: str, group: str, above: int,
                       worker: subprocess.Popen[bytes], seconds: float) -> tuple[float, int]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = await self.committed(conn, topic, group)
            if now > above:
                return time.monotonic(), now
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no commit above {above} within {seconds}s")

    def spawn(self, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "dispatch.cli", "worker", "--log-level", "info",
                 "--batch-size", str(self.args.batch_size)],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    async def scenario(self, name: str, events_file: Path, total: int, folder: Path) -> Run:
        run_id = uuid.uuid4().hex[:8]
        topic, group = f"bench.restart.{run_id}", f"bench-restart-{run_id}"
        self.topics += [topic, f"{topic}.dlq", f"{topic}.alerts"]
        self.groups.append(group)
        env = self.env(topic, group, SCENARIOS[name])
        await self.reset_database()
        self.cli(env, "topics")
        self.cli(env, "produce", str(events_file))
        log = folder / f"{name}-{run_id}.log"
        conn = await asyncpg.connect(self.dsn)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            spawned = time.monotonic()
            first = self.spawn(env, log)
            workers.append(first)
            first_commit, _ = await self.wait_for(conn, topic, group, 0, first, 120)
            kill_at = int(total * self.args.kill_at)
            await self.wait_for(conn, topic, group, kill_at, first, 300)
            first.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            first.wait(30)
            at_kill = await self.committed(conn, topic, group)
            if not 0 < at_kill < total:
                raise RuntimeError(f"kill window missed: {at_kill} of {total} committed")
            restarted = time.monotonic()
            second = self.spawn(env, log)
            workers.append(second)
            resumed, _ = await self.wait_for(conn, topic, group, at_kill, second, 300)
            await self.wait_for(conn, topic, group, total - 1, second, 600)
            caught_up = time.monotonic()
            exact = (self.cli(env, "report", "--store", self.dsn, "--format", "json")
                     == self.cli(env, "report", "--input", str(events_file), "--format", "json"))
            return Run(name, total, round(first_commit - spawned, 2), at_kill,
                       round(resumed - restarted, 2), round(resumed - killed, 2),
                       round(caught_up - resumed, 2), exact, load())
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    try:
                        worker.wait(30)
                    except subprocess.TimeoutExpired:
                        worker.kill()
                        worker.wait(10)
            await conn.close()

    def cleanup(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        existing = set(admin.list_topics(timeout=15).topics)
        doomed = [t for t in self.topics if t in existing]
        for future in (admin.delete_topics(doomed).values() if doomed else []):
            future.result()
        # A static member stays in its group until its session expires (it does not
        # leave on shutdown), and the broker refuses to delete a non-empty group.
        deadline = time.monotonic() + 30
        while True:
            known = {g.group_id for g in admin.list_consumer_groups().result().valid}
            mine = [g for g in self.groups if g in known]
            failed = []
            for name, future in (admin.delete_consumer_groups(mine).items() if mine else []):
                try:
                    future.result()
                except Exception as exc:
                    failed.append(f"{name}: {exc}")
            if not failed:
                return
            if time.monotonic() > deadline:
                say(f"consumer groups left behind: {failed}")
                return
            time.sleep(2)


def keep_logs(folder: Path, target: Path) -> None:
    for log in folder.glob("*.log"):
        (target / log.name).write_bytes(log.read_bytes())


async def main_async(args: argparse.Namespace) -> list[Run]:
    bench = Bench(args)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="worker-restart-") as tmp:
        folder = Path(tmp)
        events = folder / "events.jsonl"
        plan = SimulationPlan(seed=7, start=date(2026, 7, 1), target_events=args.events,
                              storm_days=(1,), duplicate_rate=0.01, shuffle=True)
        total = write_jsonl(simulate_lines(plan), events)
        say(f"{total} events in {events}; load {load()}")
        try:
            for _ in range(args.repeat):
                for name in args.scenarios.split(","):
                    say(f"scenario {name}")
                    run = await bench.scenario(name, events, total, folder)
                    say(json.dumps(run.__dict__))
                    runs.append(run)
        finally:
            if args.keep_logs:
                keep_logs(folder, Path(args.keep_logs))
            bench.cleanup()
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--kill-at", type=float, default=0.1,
                        help="share of the events committed before the kill (default 0.1)")
    parser.add_argument("--scenarios", default="before,dynamic,static")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the worker logs here")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {sorted(SCENARIOS)}")
    runs = asyncio.run(main_async(args))
    print(f"{'scenario':10} {'cold start s':>12} {'restart->resume s':>18} "
          f"{'kill->resume s':>15} {'at kill':>9} {'exact':>6}  load")
    for run in runs:
        print(f"{run.scenario:10} {run.cold_start_s:12.2f} {run.restart_to_resume_s:18.2f} "
              f"{run.kill_to_resume_s:15.2f} {run.committed_at_kill:9d} "
              f"{'yes' if run.report_exact else 'NO':>6}  {run.load}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in runs], indent=2))
    return 0 if all(r.report_exact for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
