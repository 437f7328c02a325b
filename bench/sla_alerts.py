"""SLA alert benchmark on the local Kafka + PostgreSQL: alert latency and SLA cost.

Measures, in one run on one machine, with real ``dispatch worker`` processes:

1. **Alert latency after a threshold**, wall clock: probe incidents (a call and
   nothing else, urban, arrival limit ``--limit`` minutes) are produced at a
   steady pace; for each warning and breach the time from the threshold
   (``at`` in the alert) to the moment a consumer of ``outage.sla-alerts`` holds
   the message. Once with the worker idle, once while a producer adds
   ``--load`` events/s of other incidents (calls, verifications, dispatches in
   rural areas, so they raise no alert themselves). Also reported: the same
   figures for the alerts whose call was already stored when their threshold
   passed (the timer's own delay, without the worker's consumer lag), and the
   time from each probe's call to its commit in the store.
2. **SLA layer cost on worker throughput**: the same topic of ``--events``
   simulated events (a week with a storm day) caught up from scratch by a
   worker with ``--no-sla`` and by one with the SLA layer on (wall clock and no
   publication horizon, so every incident left open raises and publishes its
   alerts), in alternation, ``--rounds``
   times each, each into an empty database. The rate is events over the time
   from the first committed batch to the last.

    .venv/bin/python bench/sla_alerts.py            # defaults: see --help
    .venv/bin/python bench/sla_alerts.py --skip throughput --baseline-repo ../old
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from confluent_kafka import Consumer, Producer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
ADMIN_DSN = "postgresql://dispatch:dispatch@127.0.0.1:5432/postgres"
BENCH_DB = "dispatch_bench_g"


def dsn(database: str) -> str:
    return f"postgresql://dispatch:dispatch@127.0.0.1:5432/{database}"


async def fresh_database(name: str) -> None:
    """Create ``name`` once; empty its schema before every run."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(dsn(name))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


class Run:
    """One worker configuration on its own topics and an empty database."""

    log_folder: Path | None = None
    """Where worker logs go (``--worker-logs``); None: discarded."""

    def __init__(self, bootstrap: str, topic: str, extra_env: dict[str, str], *args: str,
                 repo: Path = REPO) -> None:
        self.repo = repo
        self.bootstrap = bootstrap
        self.topic = topic
        self.alerts = f"{topic}.alerts.{uuid.uuid4().hex[:6]}"
        self.group = f"bench-sla-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "DISPATCH_KAFKA_BOOTSTRAP": bootstrap,
                    "DISPATCH_PG_DSN": dsn(BENCH_DB), "DISPATCH_TOPIC_EVENTS": topic,
                    "DISPATCH_TOPIC_DLQ": f"{topic}.dlq", "DISPATCH_TOPIC_ALERTS": self.alerts,
                    "DISPATCH_CONSUMER_GROUP": self.group, "DISPATCH_METRICS_PORT": "0",
                    "PYTHONPATH": str(repo), **extra_env}
        self.args = args
        self.worker: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        asyncio.run(fresh_database(BENCH_DB))
        subprocess.run([sys.executable, "-m", "dispatch.cli", "topics"], env=self.env,
                       check=True, capture_output=True, cwd=REPO)
        log_path = (self.log_folder / f"{self.topic}.log" if self.log_folder is not None
                    else Path(os.devnull))
        with log_path.open("ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "dispatch.cli", "worker", "--batch-size", "5000",
                 *self.args], env=self.env, stdout=subprocess.DEVNULL, stderr=log,
                cwd=self.repo)

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(10)

    def stored(self) -> int:
        async def read() -> int:
            conn = await asyncpg.connect(dsn(BENCH_DB))
            try:
                value = await conn.fetchval(
                    "SELECT coalesce(sum(next_position), 0) FROM positions "
                    "WHERE consumer = $1 AND source = $2", self.group, self.topic)
                return int(value)
            except asyncpg.UndefinedTableError:
                return 0
            finally:
                await conn.close()
        return asyncio.run(read())


def end_offset_total(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        meta = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in meta.topics[topic].partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                        timeout=10)
            total += high
        return total
    finally:
        consumer.close()


def create_topic(bootstrap: str, topic: str) -> None:
    env = {**os.environ, "DISPATCH_KAFKA_BOOTSTRAP": bootstrap, "DISPATCH_TOPIC_EVENTS": topic,
           "DISPATCH_TOPIC_DLQ": f"{topic}.dlq", "DISPATCH_TOPIC_ALERTS": f"{topic}.alerts"}
    subprocess.run([sys.executable, "-m", "dispatch.cli", "topics"], env=env, check=True,
                   capture_output=True, cwd=REPO)


def event(event_id: str, kind: str, incident: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"event_id": event_id, "type": kind, "incident_id": incident,
                       "occurred_at": datetime.now(UTC).isoformat(), "data": data}).encode()


class AlertWatcher(threading.Thread):
    """Consumes the alert topic and notes when each message arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({"bootstrap.servers": bootstrap,
                                  "group.id": f"bench-watch-{uuid.uuid4().hex[:6]}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.consumer.subscribe([topic])
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            message = self.consumer.poll(0.05)
            if message is None or message.error():
                continue
            self.seen.append((time.time(), json.loads(message.value() or b"{}")))
        self.consumer.close()


class StoredWatcher(threading.Thread):
    """Notes when each probe incident first appears in the store (its call committed)."""

    def __init__(self, probes: int) -> None:
        super().__init__(daemon=True)
        self.pending = {f"P-{i}" for i in range(probes)}
        self.stored: dict[str, float] = {}
        self.stopping = False

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        conn = await asyncpg.connect(dsn(BENCH_DB))
        try:
            while not self.stopping and self.pending:
                rows = await conn.fetch("SELECT incident_id FROM incidents "
                                        "WHERE incident_id = ANY($1::text[])", list(self.pending))
                now = time.time()
                for row in rows:
                    self.stored[row[0]] = now
                    self.pending.discard(row[0])
                await asyncio.sleep(0.05)
        finally:
            await conn.close()


def percentiles(values: list[float]) -> dict[str, float | None]:
    values = sorted(values)
    if not values:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    return {"p50_s": round(statistics.median(values), 3),
            "p99_s": round(values[min(len(values) - 1, int(0.99 * len(values)))], 3),
            "max_s": round(values[-1], 3)}


def latency_phase(bootstrap: str, limit: float, probes: int, load: int,
                  label: str, repo: Path = REPO) -> dict[str, Any]:
    topic = f"bench.sla.{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    run = Run(bootstrap, topic, {"DISPATCH_SLA__ARRIVAL__URBAN": str(limit)}, repo=repo)
    run.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    watcher: AlertWatcher | None = None
    try:
        # Warm up: wait until the worker has committed an event (it owns partitions).
        producer.produce(topic, key=b"W", value=event("warm", "call.received", "W",
                                                      {"grid": "G", "area": "remote"}))
        producer.flush(30)
        deadline = time.monotonic() + 180
        while run.stored() < 1:
            if time.monotonic() > deadline:
                raise SystemExit("worker did not start")
            time.sleep(0.2)
        watcher = AlertWatcher(bootstrap, run.alerts)
        watcher.start()
        stored = StoredWatcher(probes)
        stored.start()
        stop_load = threading.Event()
        sent_load = [0]

        def add_load() -> None:
            started = time.monotonic()
            n = 0
            kinds = ("call.received", "call.verified", "crew.dispatched", "crew.departed")
            while not stop_load.is_set():
                due = started + n / load
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                incident = f"L-{n // 4}"
                kind = kinds[n % 4]
                data: dict[str, Any] = ({"grid": "G", "area": "rural"} if kind == kinds[0]
                                        else {"crew": "C"} if kind.startswith("crew.") else {})
                producer.produce(topic, key=incident.encode(),
                                 value=event(f"l-{n}", kind, incident, data))
                producer.poll(0)
                n += 1
            sent_load[0] = n

        loader = threading.Thread(target=add_load, daemon=True) if load else None
        if loader is not None:
            loader.start()
            time.sleep(5)  # load settles before the first probe
        pace = max(0.2, limit * 60 / probes)
        for i in range(probes):
            producer.produce(topic, key=f"P-{i}".encode(),
                             value=event(f"p-{i}", "call.received", f"P-{i}",
                                         {"grid": "G", "area": "urban"}))
            producer.poll(0)
            time.sleep(pace)
        producer.flush(30)
        wait_until = time.monotonic() + limit * 60 + 15
        while time.monotonic() < wait_until:
            breaches = {b["incident_id"] for _, b in watcher.seen if b["level"] == "breach"
                        and b["incident_id"].startswith("P-")}
            if len(breaches) == probes:
                break
            time.sleep(0.5)
        stop_load.set()
        if loader is not None:
            loader.join(10)
            producer.flush(30)
        lag = end_offset_total(bootstrap, topic) - run.stored()
    finally:
        if watcher is not None:
            watcher.stopping = True
            watcher.join(5)
            stored.stopping = True
            stored.join(5)
        run.stop()
    delays: list[float] = []
    timely: list[float] = []
    """Delays of the alerts whose call was stored before their threshold: the timer's
    own part, without the worker's consumer lag."""
    ingest_lags: list[float] = []
    for received, body in watcher.seen:
        if not body["incident_id"].startswith("P-") or body["level"] not in ("warning", "breach"):
            continue
        threshold = datetime.fromisoformat(body["at"]).timestamp()
        delays.append(received - threshold)
        at = stored.stored.get(body["incident_id"])
        if at is not None and at <= threshold:
            timely.append(received - threshold)
        if body["level"] == "warning" and at is not None:
            called = datetime.fromisoformat(body["start"]).timestamp()
            ingest_lags.append(at - called)
    ids = [body["alert_id"] for _, body in watcher.seen]
    result = {
        "phase": label, "load_events_per_s": load, "probes": probes, "alerts": len(delays),
        "expected_alerts": 2 * probes, "duplicate_alert_ids": len(ids) - len(set(ids)),
        **percentiles(delays),
        "stored_before_threshold": {"alerts": len(timely), **percentiles(timely)},
        "call_to_stored": percentiles(ingest_lags),
        "load_sent": sent_load[0], "lag_at_end": lag,
    }
    print(json.dumps(result), file=sys.stderr)
    return result


def throughput_phase(bootstrap: str, events: int, rounds: int) -> dict[str, Any]:
    topic = f"bench.slacost.{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.jsonl"
        subprocess.run([sys.executable, "-m", "dispatch.cli", "simulate", "--events", str(events),
                        "--storm-day", "2", "--seed", "3", "-o", str(path)], check=True,
                       capture_output=True, cwd=REPO)
        env = {**os.environ, "DISPATCH_KAFKA_BOOTSTRAP": bootstrap,
               "DISPATCH_TOPIC_EVENTS": topic, "DISPATCH_TOPIC_DLQ": f"{topic}.dlq",
               "DISPATCH_TOPIC_ALERTS": f"{topic}.alerts"}
        subprocess.run([sys.executable, "-m", "dispatch.cli", "produce", str(path)], env=env,
                       check=True, capture_output=True, cwd=REPO)
    total = end_offset_total(bootstrap, topic)
    rates: dict[str, list[float]] = {"without SLA": [], "with SLA": []}
    for _ in range(rounds):
        for label, args in (("without SLA", ("--no-sla",)), ("with SLA", ())):
            # No horizon: every old open incident's alerts are published, the costliest case.
            run = Run(bootstrap, topic, {"DISPATCH_SLA_ALERT_HORIZON_HOURS": "0"}, *args)
            run.start()
            try:
                first = None
                deadline = time.monotonic() + 900
                while True:
                    done = run.stored()
                    now = time.monotonic()
                    if first is None and done > 0:
                        first = (now, done)
                    if done >= total:
                        break
                    if now > deadline:
                        raise SystemExit(f"{label}: not caught up in 900 s ({done}/{total})")
                    time.sleep(0.05)
                assert first is not None
                rate = (total - first[1]) / max(now - first[0], 1e-9)
                rates[label].append(rate)
                print(f"  {label}: {rate:,.0f} events/s", file=sys.stderr)
            finally:
                run.stop()
    result = {"events": total,
              **{label: [round(r) for r in values] for label, values in rates.items()}}
    without = statistics.median(rates["without SLA"])
    with_sla = statistics.median(rates["with SLA"])
    result["median_without"] = round(without)
    result["median_with"] = round(with_sla)
    result["cost_percent"] = round(100 * (1 - with_sla / without), 1)
    print(json.dumps(result), file=sys.stderr)
    return result


def main() -> int:
    global BENCH_DB
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--limit", type=float, default=0.5,
                        help="urban arrival limit of the probes, minutes (default 0.5)")
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--load", type=int, default=2000, help="events/s in the load phase")
    parser.add_argument("--events", type=int, default=100_000,
                        help="events in the throughput comparison")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip", choices=("latency", "throughput"), action="append",
                        default=[])
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    parser.add_argument("--database", default=BENCH_DB,
                        help=f"PostgreSQL database used (emptied) by the runs (default {BENCH_DB})")
    parser.add_argument("--baseline-repo", metavar="DIR", type=Path,
                        help="also measure the latency of the worker of this checkout (e.g. an "
                             "older commit), alternating with this one, in the same run")
    parser.add_argument("--worker-logs", metavar="DIR", type=Path,
                        help="keep each worker's log here, one file per run")
    args = parser.parse_args()
    BENCH_DB = args.database
    if args.worker_logs is not None:
        args.worker_logs.mkdir(parents=True, exist_ok=True)
        Run.log_folder = args.worker_logs
    figures: dict[str, Any] = {"load_average": os.getloadavg()}
    if "latency" not in args.skip:
        base = args.baseline_repo
        if base is not None:
            figures["baseline_commit"] = subprocess.run(
                ["git", "-C", str(base), "rev-parse", "--short", "HEAD"], capture_output=True,
                text=True, check=False).stdout.strip()
            figures["baseline_idle"] = latency_phase(args.bootstrap, args.limit, args.probes, 0,
                                                     "baseline idle", base)
        figures["idle"] = latency_phase(args.bootstrap, args.limit, args.probes, 0, "idle")
        if base is not None:
            figures["baseline_loaded"] = latency_phase(
                args.bootstrap, args.limit, args.probes, args.load,
                f"baseline {args.load} ev/s", base)
        figures["loaded"] = latency_phase(args.bootstrap, args.limit, args.probes, args.load,
                                          f"{args.load} ev/s")
    if "throughput" not in args.skip:
        figures["throughput"] = throughput_phase(args.bootstrap, args.events, args.rounds)
    figures["load_average_end"] = os.getloadavg()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
