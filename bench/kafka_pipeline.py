"""Kafka -> PostgreSQL pipeline benchmark: ceilings, a naive Faust peer, and ``dispatch worker``.

Everything runs in one invocation on one machine, against the local Kafka
broker and PostgreSQL (``deploy/local/up.sh``), with a database of its own
(``dispatch_bench``; schema ``public`` dropped and recreated before each
run) and topics/consumer groups named ``bench.*.<run id>``, deleted at the end.

Steps and what each one measures
--------------------------------
0. **Produce.** ``SimulationPlan(target_events=N, storm_days=(2, 9))`` written
   with ``write_jsonl`` to a temp file, then published with
   ``dispatch.cli.produce.produce_files`` (the code behind
   ``dispatch produce``: validate each line, key = incident_id, lz4, acks=all,
   idempotent) to a fresh 6-partition topic. Rate = lines / produce seconds.
1. **(a) Ceiling.** Each client in a fresh child process and a fresh consumer
   group (earliest), reading every message and parsing it with orjson.loads,
   with stdlib json.loads, or not at all; it stops when it has read N messages
   (the topic holds exactly N, and the final positions are checked against the
   end offsets). Clients: confluent-kafka ``Consumer.consume(num_messages,
   timeout)``, aiokafka ``getmany(max_records=...)`` with large fetch sizes,
   kafka-python ``poll(max_records=...)``. Rate = messages after the first
   batch / time after the first batch (group join excluded); the wall rate
   including join is reported too.
1b. **Faust delivery ceiling.** ``bench/faust_drain.py``: the worker's own
   Faust app (``build_app``, bulk delivery and validation ahead) with a handler
   that only counts: what the worker can deliver before PostgreSQL.
2. **(b) Naive peer.** ``bench/naive_faust_peer.py`` (Faust agent, one event
   per iteration, one asyncpg upsert per event, autocommit) as a separate
   process; progress = ``SELECT sum(events)`` polled every second; rate over
   the first ``--naive-seconds`` seconds after its first write, or until
   ``--naive-events`` events, whichever comes first.
3. **(c) dispatch worker.** ``python -m dispatch.cli worker --batch-size B
   --metrics-port 0`` as a subprocess against empty read models; the
   ``positions`` table is polled every 0.1 s until it equals the topic's end
   offsets. Rate excluding startup = events committed after the first commit /
   time after the first commit; including startup = N / (done - spawn).
   Peak RSS = VmHWM of the worker at the end (before stopping it); CPU seconds
   of the worker's main thread, its other threads, its PostgreSQL backend and
   the broker are read from /proc. Correctness: ``dispatch report --store``
   must equal ``dispatch report --input FILE`` byte for byte.
3b. **No-Faust counterfactual.** The same ``PartitionProjector`` +
   ``PostgresStore`` fed by a plain aiokafka ``getmany`` loop (manual
   assignment, seeks to the stored positions), in a child process; rate after
   its first commit, and the same report check.
4. **Ratios** (c)/(a best, orjson) and (c)/(b).
5. **Latency.** Fresh topic and read models, worker running and idle (after a
   small warm-up batch), then ``--latency-rate`` events/s for
   ``--latency-seconds`` seconds from a token bucket (production producer
   settings from ``make_producer``: linger 20 ms, lz4, acks=all). Send time is
   taken at ``produce()`` and matched to partition+offset by the delivery
   report; a poller reads ``positions`` every ``--poll-ms`` ms; a message is
   seen at the end of the first poll whose stored next_position is above its
   offset. Latency = seen - sent (and broker ack - sent, for the producer part).
   Meanwhile ``bench/flush_probe.py`` times an 8 kB ``fdatasync`` every
   ``--flush-probe-ms`` in ``--flush-probe DIR``, and the step counts the late
   messages (over 250 ms) that were in flight while a flush took over 100 ms.
6. **Profile.** ``python -m cProfile -o ... -m dispatch.cli worker`` on the
   main topic with fresh read models, SIGINT after ``--profile-events``
   committed events; own time summed by package, and the top functions by
   total and cumulative time (cProfile sees the main thread only: Faust's
   aiokafka consumer runs in its own thread; for coroutines ``ncalls`` counts
   resumptions, not invocations).

Usage::

    .venv/bin/python bench/kafka_pipeline.py --events 1000000 --json /tmp/pipeline.json
    .venv/bin/python bench/kafka_pipeline.py --events 50000 --naive-seconds 20 \
        --latency-seconds 15 --profile-events 30000          # quick run

kafka-python cannot read lz4 batches without the ``lz4`` package, which the
venv lacks (aiokafka uses cramjam); give a directory holding it with
``--pydeps DIR`` (e.g. ``pip install --target /tmp/bench_pydeps lz4``), or the
kafka-python ceiling is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import platform
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from figures import CLK_TCK, cpu_of  # bench/figures.py  # noqa: E402
from flush_probe import FlushProbe, late_explained  # bench/flush_probe.py  # noqa: E402

PY = sys.executable
BENCH_DB = "dispatch_bench"
LATE_S = 0.25
"""The latency target: a message seen later than this after its send is late."""
STALL_S = 0.1
"""A probe flush that took longer than this is a stall of the disk."""


# --------------------------------------------------------------------------- small helpers


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}  ({load()})", flush=True)


def thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def status_kb(pid: int, key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def broker_pid() -> int | None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if b"kafka.Kafka" in (proc / "cmdline").read_bytes():
                    return int(proc.name)
    return None


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(q * len(sorted_values) + 0.999999)))
    return sorted_values[rank - 1]


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


# --------------------------------------------------------------------------- PostgreSQL


class Pg:
    """A synchronous face on one asyncpg connection to the bench database."""

    def __init__(self, admin_dsn: str, dsn: str) -> None:
        import asyncpg

        self.asyncpg = asyncpg
        self.queries = 0
        """Statements sent on our connection (each one transaction), see ``transactions``."""
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._ensure_database(admin_dsn))
        self.conn = self.run(asyncpg.connect(dsn))

    def run(self, coroutine: Any) -> Any:
        self.queries += 1
        return self.loop.run_until_complete(coroutine)

    async def _ensure_database(self, admin_dsn: str) -> None:
        conn = await self.asyncpg.connect(admin_dsn)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DB):
                await conn.execute(f"CREATE DATABASE {BENCH_DB}")
        finally:
            await conn.close()

    def reset(self) -> None:
        self.run(self.conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))

    def positions(self, topic: str) -> dict[int, int]:
        try:
            rows = self.run(self.conn.fetch(
                "SELECT partition, next_position FROM positions WHERE source = $1", topic))
        except self.asyncpg.UndefinedTableError:
            return {}
        return {r[0]: r[1] for r in rows}

    def commits(self) -> int | None:
        """Commits that wrote change-log rows (each batch does: one committed_us each)."""
        try:
            return int(self.run(self.conn.fetchval(
                "SELECT count(DISTINCT committed_us) FROM changes")))
        except self.asyncpg.UndefinedTableError:
            return None

    def naive_events(self) -> int:
        try:
            return int(self.run(self.conn.fetchval(
                "SELECT coalesce(sum(events), 0) FROM naive_incidents")))
        except self.asyncpg.UndefinedTableError:
            return 0

    def transactions(self) -> int:
        """Committed + rolled back transactions of the bench database (pg_stat_database;
        a live backend reports at most ~1 s late), including ours."""
        return int(self.run(self.conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            BENCH_DB)))

    def backend_pids(self) -> list[int]:
        """Client backends of the bench database other than ours (the worker's)."""
        rows = self.run(self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'", BENCH_DB))
        return [r[0] for r in rows]

    def close(self) -> None:
        self.run(self.conn.close())
        self.loop.close()


# --------------------------------------------------------------------------- Kafka admin


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        out = {}
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if low != 0:
                raise RuntimeError(f"{topic}[{p}] starts at {low}, not 0")
            out[p] = high
        return out
    finally:
        consumer.close()


def delete_topics_and_groups(bootstrap: str, topics: list[str], groups: list[str]) -> str:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    notes = []
    existing = set(admin.list_topics(timeout=15).topics)
    doomed = [t for t in topics if t in existing]
    failed = []
    for name, future in (admin.delete_topics(doomed, request_timeout=30).items()
                         if doomed else []):
        try:
            future.result()
        except Exception as exc:
            failed.append(f"{name}: {exc}")
    notes.append(f"deleted {len(doomed) - len(failed)}/{len(doomed)} topics")
    known = {g.group_id for g in admin.list_consumer_groups(request_timeout=15).result().valid}
    mine = [g for g in groups if g in known]
    gone = 0
    for name, future in (admin.delete_consumer_groups(mine, request_timeout=30).items()
                         if mine else []):
        try:
            future.result()
            gone += 1
        except Exception as exc:
            failed.append(f"{name}: {exc}")
    notes.append(f"deleted {gone}/{len(mine)} consumer groups")
    if failed:
        notes.append(f"failures: {failed}")
    return ", ".join(notes)


# --------------------------------------------------------------------------- step 1: ceilings


def ceiling_child(client: str, parser: str, topic: str, n: int, bootstrap: str,
                  group: str) -> dict[str, Any]:
    """Read ``n`` messages of ``topic`` from the start in a fresh group; runs in a child."""
    import orjson

    parse: Callable[[bytes], Any] | None = {"orjson": orjson.loads, "json": json.loads,
                                             "none": None}[parser]
    started = time.perf_counter()
    first_at = None
    first_n = 0
    count = 0
    final: dict[int, int] = {}
    if client == "confluent":
        from confluent_kafka import Consumer

        consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "max.partition.fetch.bytes": 16 << 20, "fetch.max.bytes": 64 << 20,
            "queued.min.messages": 500_000, "queued.max.messages.kbytes": 1 << 20,
        })
        consumer.subscribe([topic])
        while count < n:
            # Never ask for more than is left: consume() waits for num_messages or the timeout.
            batch = consumer.consume(num_messages=min(10_000, n - count), timeout=1.0)
            if not batch:
                continue
            for message in batch:
                if message.error() is not None:
                    raise RuntimeError(str(message.error()))
            if parse is None:
                for message in batch:
                    message.value()
            else:
                for message in batch:
                    parse(message.value())
            count += len(batch)
            if first_at is None:
                first_at, first_n = time.perf_counter(), len(batch)
        done = time.perf_counter()
        final = {tp.partition: tp.offset for tp in consumer.position(consumer.assignment())}
        consumer.close()
    elif client == "aiokafka":
        from aiokafka import AIOKafkaConsumer

        async def drain() -> tuple[float, float, int, int, dict[int, int]]:
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=bootstrap, group_id=group,
                auto_offset_reset="earliest", enable_auto_commit=False,
                fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20,
                fetch_max_wait_ms=100)
            await consumer.start()
            got, first, n_first = 0, None, 0
            try:
                while got < n:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
                    for messages in batches.values():
                        if parse is None:
                            for message in messages:
                                _ = message.value
                        else:
                            for message in messages:
                                parse(message.value)
                        got += len(messages)
                        if first is None and messages:
                            first, n_first = time.perf_counter(), len(messages)
                end = time.perf_counter()
                positions = {tp.partition: await consumer.position(tp)
                             for tp in consumer.assignment()}
            finally:
                await consumer.stop()
            return first or end, end, n_first, got, positions

        first_at, done, first_n, count, final = asyncio.run(drain())
    elif client == "kafka-python":
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group,
            auto_offset_reset="earliest", enable_auto_commit=False,
            fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20,
            max_poll_records=50_000)
        while count < n:
            batches = consumer.poll(timeout_ms=1000, max_records=50_000)
            for messages in batches.values():
                if parse is None:
                    for message in messages:
                        _ = message.value
                else:
                    for message in messages:
                        parse(message.value)
                count += len(messages)
                if first_at is None and messages:
                    first_at, first_n = time.perf_counter(), len(messages)
        done = time.perf_counter()
        final = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
        consumer.close()
    else:
        raise ValueError(client)
    assert first_at is not None
    steady = done - first_at
    return {
        "client": client, "parser": parser, "group": group, "messages": count,
        "seconds_after_first_batch": steady, "seconds_wall": done - started,
        "rate": (count - first_n) / steady if steady > 0 else float("nan"),
        "rate_wall": count / (done - started),
        "final_positions": final,
        "peak_rss_mb": (status_kb(os.getpid(), "VmHWM") or 0) / 1024,
        "cpu_seconds": cpu_of(os.getpid()),
    }


def plain_child(topic: str, n: int, bootstrap: str, group: str, dsn: str,
                batch: int) -> dict[str, Any]:
    """The worker's projection (``PartitionProjector`` + ``PostgresStore`` + Kafka DLQ)
    fed by a plain aiokafka ``getmany`` loop instead of Faust; runs in a child."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from dispatch.kafka.dead_letters import KafkaDeadLetters
    from projections.runners.stream import Message, PartitionProjector
    from projections.stores.postgres import PostgresStore

    async def run() -> dict[str, Any]:
        store = PostgresStore(dsn)
        await store.open()
        backend = int(await store.conn.fetchval("SELECT pg_backend_pid()"))
        dead_letters = KafkaDeadLetters(bootstrap, f"{topic}.dlq")
        await dead_letters.start()
        projector = PartitionProjector(store, topic, group, dead_letters)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20)
        await consumer.start()
        tps = {p: TopicPartition(topic, p) for p in range(6)}
        consumer.assign(list(tps.values()))
        for partition, offset in (await projector.assign(tps)).items():
            consumer.seek(tps[partition], offset)
        committed, batches, first = 0, 0, None
        cpu0 = pg0 = 0.0
        try:
            while committed < n:
                fetched = await consumer.getmany(timeout_ms=100, max_records=batch)
                messages = [Message(m.partition, m.offset, m.value)
                            for ms in fetched.values() for m in ms]
                if not messages:
                    continue
                outcome = await projector.handle(messages)
                committed += outcome.committed
                batches += 1
                for partition, offset in outcome.seek.items():
                    consumer.seek(tps[partition], offset)
                if first is None:
                    first, n_first = time.perf_counter(), committed
                    cpu0, pg0 = cpu_of(os.getpid()) or 0.0, cpu_of(backend) or 0.0
            end = time.perf_counter()
        finally:
            await consumer.stop()
            await dead_letters.stop()
        cpu, pg = (cpu_of(os.getpid()) or 0.0) - cpu0, (cpu_of(backend) or 0.0) - pg0
        await store.close()
        assert first is not None
        return {"batch_size": batch, "events": committed, "batches": batches,
                "mean_batch": committed / batches, "seconds": end - first,
                "rate": (committed - n_first) / (end - first),
                "cpu_process_share": cpu / (end - first),
                "cpu_pg_backend_share": pg / (end - first),
                "peak_rss_mb": (status_kb(os.getpid(), "VmHWM") or 0) / 1024}

    return asyncio.run(run())


# --------------------------------------------------------------------------- the runner


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    results: dict[str, Any] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bootstrap = self.args.bootstrap
        self.dsn = f"{self.args.pg_root}/{BENCH_DB}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{self.run_id}-"))
        self.topic = f"bench.events.{self.run_id}"
        self.events_file = self.workdir / "events.jsonl"
        self.pg = Pg(f"{self.args.pg_root}/postgres", self.dsn)
        self.broker = broker_pid()
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "dispatch", "projections", "schemas"],
                               capture_output=True, text=True).stdout.strip()
        self.results["meta"] = {
            "run_id": self.run_id, "commit": head, "code_dirty": bool(dirty),
            "events_requested": self.args.events,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_at_start": os.getloadavg(),
            "workdir": str(self.workdir),
        }

    # ---- environment of the subprocesses

    def env(self, topic: str, group: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
        return {**base, "PYTHONPATH": str(REPO),
                "DISPATCH_KAFKA_BOOTSTRAP": self.bootstrap, "DISPATCH_PG_DSN": self.dsn,
                "DISPATCH_TOPIC_EVENTS": topic, "DISPATCH_TOPIC_DLQ": f"{topic}.dlq",
                "DISPATCH_TOPIC_ALERTS": f"{topic}.alerts", "DISPATCH_CONSUMER_GROUP": group,
                "DISPATCH_PARTITIONS": "6", "DISPATCH_METRICS_PORT": "0"}

    def new_topic(self, topic: str) -> None:
        from dispatch.kafka.topics import ensure_topics
        from dispatch.settings import Settings

        self.topics += [topic, f"{topic}.dlq", f"{topic}.alerts"]
        ensure_topics(Settings(kafka_bootstrap=self.bootstrap, topic_events=topic,
                               topic_dlq=f"{topic}.dlq", topic_alerts=f"{topic}.alerts",
                               partitions=6))

    def group(self, label: str) -> str:
        name = f"bench-{label}-{self.run_id}"
        self.groups.append(name)
        return name

    # ---- step 0

    def produce(self) -> None:
        from dispatch.cli.produce import produce_files
        from dispatch.kafka.producer import make_producer
        from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl

        n = self.args.events
        say(f"step 0: simulating {n:,} events -> {self.events_file}")
        t = time.perf_counter()
        lines = write_jsonl(simulate_lines(SimulationPlan(target_events=n, storm_days=(2, 9))),
                            self.events_file)
        simulated = time.perf_counter() - t
        size = self.events_file.stat().st_size
        say(f"  {lines:,} lines, {size / 1e6:.1f} MB in {simulated:.1f}s; "
            f"producing to {self.topic} (6 partitions)")
        self.new_topic(self.topic)
        before = machine_cpu()
        summary = produce_files([self.events_file], make_producer(self.bootstrap), self.topic,
                                f"{self.topic}.dlq")
        self.offsets = end_offsets(self.bootstrap, self.topic, 6)
        self.n = sum(self.offsets.values())
        if self.n != summary.published:
            raise RuntimeError(f"topic holds {self.n} messages, {summary.published} published")
        rate = summary.lines / summary.seconds
        self.results["produce"] = {
            "lines": lines, "bytes": size, "simulate_seconds": simulated,
            "published": summary.published, "rejected": summary.rejected,
            "seconds": summary.seconds, "rate": rate, "end_offsets": self.offsets,
            "machine_busy": busy_share(before, machine_cpu()), "load": os.getloadavg(),
        }
        say(f"  produced {summary.published:,} in {summary.seconds:.1f}s = {rate:,.0f} ev/s "
            f"(end offsets {self.offsets})")

    # ---- step 1

    def ceilings(self) -> None:
        out = []
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        for client in self.args.clients:
            child_env = dict(env)
            if client == "kafka-python":
                probe = subprocess.run([PY, "-c", "import lz4.frame"], capture_output=True,
                                       env={**env, "PYTHONPATH": self.args.pydeps or ""})
                if probe.returncode != 0:
                    say("  kafka-python skipped: no lz4 module (see --pydeps)")
                    out.append({"client": client, "skipped": "no lz4 module for kafka-python"})
                    continue
                child_env["PYTHONPATH"] = self.args.pydeps or ""
            for parser in self.args.parsers:
                say(f"step 1: ceiling {client} + {parser}")
                before = machine_cpu()
                done = subprocess.run(
                    [PY, str(Path(__file__).resolve()), "--ceiling-child", client, parser,
                     self.topic, str(self.n), self.bootstrap,
                     self.group(f"ceiling-{client}-{parser}")],
                    capture_output=True, text=True, env=child_env, timeout=1800)
                if done.returncode != 0:
                    raise RuntimeError(f"ceiling {client}/{parser} failed:\n{done.stderr}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result["machine_busy"] = busy_share(before, machine_cpu())
                result["load"] = os.getloadavg()
                final = {int(k): v for k, v in result["final_positions"].items()}
                result["reached_end_offsets"] = final == self.offsets
                out.append(result)
                say(f"  {result['rate']:,.0f} ev/s after first batch, "
                    f"{result['rate_wall']:,.0f} ev/s wall, peak RSS "
                    f"{result['peak_rss_mb']:.0f} MB, end offsets reached: "
                    f"{result['reached_end_offsets']}")
        self.results["ceiling"] = out

    def faust_drain(self) -> None:
        target = self.n if self.args.drain_events is None else min(self.n, self.args.drain_events)
        for batch in self.args.batch_sizes:
            say(f"step 1b: Faust drain (build_app, no-op handler), batch {batch}, "
                f"{target:,} events")
            group = self.group(f"drain{batch}")
            result_file = self.workdir / f"drain-{batch}.json"
            env = {**self.env(self.topic, group), "DRAIN_TARGET": str(target),
                   "DRAIN_BATCH": str(batch), "DRAIN_RESULT": str(result_file)}
            log = self.workdir / f"drain-{batch}.log"
            before, spawned = machine_cpu(), time.time()
            with open(log, "wb") as out:
                proc = subprocess.Popen([PY, str(REPO / "bench" / "faust_drain.py")], env=env,
                                        cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT)
            state: dict[str, Any] = {}
            cpu_at_first: float | None = None
            threads_at_first: dict[int, float] = {}
            deadline = time.monotonic() + self.args.timeout
            shown = time.monotonic()
            while time.monotonic() < deadline:
                time.sleep(0.25)
                with contextlib.suppress(OSError, ValueError):
                    state = json.loads(result_file.read_text())
                if state.get("done_at"):
                    break
                if cpu_at_first is None and state.get("first_at"):
                    cpu_at_first, before = cpu_of(proc.pid), machine_cpu()
                    threads_at_first = thread_cpu(proc.pid)
                if proc.poll() is not None:
                    raise RuntimeError(f"faust_drain exited {proc.returncode}:\n{tail(log)}")
                if time.monotonic() - shown > 10:
                    shown = time.monotonic()
                    say(f"  drained {state.get('n', 0):,}")
            hwm = status_kb(proc.pid, "VmHWM")
            cpu = cpu_of(proc.pid)
            threads = thread_cpu(proc.pid)
            stop(proc)
            if not state.get("done_at"):
                raise RuntimeError(f"faust_drain timed out at {state}:\n{tail(log)}")
            steady = state["done_at"] - state["first_at"]
            result = {
                "batch_size": batch, "events": state["n"],
                "rate": (state["n"] - state["n_first"]) / steady,
                "rate_wall": state["n"] / (state["done_at"] - spawned),
                "startup_seconds": state["first_at"] - spawned, "seconds": steady,
                "peak_rss_mb": (hwm or 0) / 1024,
                "cpu_seconds_after_first_batch": (cpu or 0.0) - (cpu_at_first or 0.0),
                "cpu_main_thread_s": threads.get(proc.pid, 0.0)
                - threads_at_first.get(proc.pid, 0.0),
                "batches": state["batches"], "mean_batch": state["n"] / state["batches"],
                "machine_busy": busy_share(before, machine_cpu()), "load": os.getloadavg(),
            }
            self.results.setdefault("faust_drain", []).append(result)
            say(f"  {result['rate']:,.0f} ev/s after first batch ({result['rate_wall']:,.0f} "
                f"incl. {result['startup_seconds']:.1f}s startup); process CPU "
                f"{result['cpu_seconds_after_first_batch']:.1f}s over {steady:.1f}s")

    # ---- step 2

    def naive(self) -> None:
        say(f"step 2: naive Faust peer, first {self.args.naive_seconds}s or "
            f"{self.args.naive_events:,} events")
        self.pg.reset()
        group = self.group("naive")
        env = {**self.env(self.topic, group), "NAIVE_TOPIC": self.topic, "NAIVE_GROUP": group,
               "NAIVE_PG_DSN": self.dsn, "NAIVE_BOOTSTRAP": self.bootstrap,
               "NAIVE_PARTITIONS": "6"}
        log = self.workdir / "naive.log"
        spawned = time.perf_counter()
        with open(log, "wb") as out:
            proc = subprocess.Popen([PY, str(REPO / "bench" / "naive_faust_peer.py")], env=env,
                                    cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT)
        first_at, n_first = None, 0
        samples: list[tuple[float, int]] = []
        before = machine_cpu()
        deadline = time.monotonic() + self.args.timeout
        ended_by = "timeout"
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if proc.poll() is not None:
                raise RuntimeError(f"naive peer exited {proc.returncode}:\n{tail(log)}")
            now, n = time.perf_counter(), self.pg.naive_events()
            if first_at is None:
                if n:
                    first_at, n_first = now, n
                    before = machine_cpu()
                    say(f"  first write {now - spawned:.1f}s after spawn ({n} events)")
                continue
            samples.append((now - first_at, n))
            if len(samples) % 10 == 0:
                say(f"  {n:,} events, {(n - n_first) / (now - first_at):,.0f} ev/s")
            if now - first_at >= self.args.naive_seconds:
                ended_by = f"{self.args.naive_seconds}s window"
                break
            if n >= self.args.naive_events:
                ended_by = f"{self.args.naive_events:,} events"
                break
        busy = busy_share(before, machine_cpu())
        hwm = status_kb(proc.pid, "VmHWM")
        stop(proc)
        if first_at is None or not samples:
            raise RuntimeError(f"naive peer never wrote:\n{tail(log)}")
        seconds, n_end = samples[-1]
        result = {
            "events": n_end - n_first, "seconds": seconds, "ended_by": ended_by,
            "rate": (n_end - n_first) / seconds, "startup_seconds": first_at - spawned,
            "peak_rss_mb": (hwm or 0) / 1024, "machine_busy": busy, "load": os.getloadavg(),
        }
        self.results["naive"] = result
        say(f"  naive peer: {result['rate']:,.0f} ev/s over {seconds:.1f}s "
            f"({result['events']:,} events, ended by {ended_by})")

    # ---- step 3

    def embedded_report(self) -> str:
        if not hasattr(self, "_embedded"):
            say("step 3: embedded report of the event file (reference for correctness)")
            t = time.perf_counter()
            done = subprocess.run([PY, "-m", "dispatch.cli", "report", "--input",
                                   str(self.events_file), "--format", "json"],
                                  capture_output=True, text=True, cwd=self.workdir,
                                  env=self.env(self.topic, "unused"), timeout=3600)
            if done.returncode != 0:
                raise RuntimeError(f"dispatch report --input failed:\n{done.stderr}")
            self._embedded = done.stdout
            say(f"  {len(done.stdout):,} bytes in {time.perf_counter() - t:.1f}s")
        return self._embedded

    def store_report(self) -> str:
        done = subprocess.run([PY, "-m", "dispatch.cli", "report", "--store", self.dsn,
                               "--format", "json"], capture_output=True, text=True,
                              cwd=self.workdir, env=self.env(self.topic, "unused"), timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"dispatch report --store failed:\n{done.stderr}")
        return done.stdout

    def run_worker(self, batch: int, *, topic: str, offsets: dict[int, int], label: str,
                   profile: Path | None = None, stop_at: int | None = None,
                   processes: int = 1, repo: Path = REPO) -> dict[str, Any]:
        """Start ``processes`` ``dispatch worker`` processes (one consumer group, the code
        of checkout ``repo``) on empty read models; wait until caught up (or ``stop_at``
        committed events); measure; stop them. Returns the figures (CPU and RSS are
        sums / maxima over the processes)."""
        self.pg.reset()
        group = self.group(label)
        total = sum(offsets.values())
        prefix = [PY, "-m", "cProfile", "-o", str(profile)] if profile else [PY]
        cmd = [*prefix, "-m", "dispatch.cli", "worker", "--batch-size", str(batch),
               "--metrics-port", "0"]
        env = {**self.env(topic, group), "PYTHONPATH": str(repo)}
        before_machine = machine_cpu()
        xacts_before, queries_before = self.pg.transactions(), self.pg.queries
        spawned = time.perf_counter()
        procs: list[subprocess.Popen[bytes]] = []
        logs = [self.workdir / f"{label}-{k}.log" for k in range(processes)]
        for log in logs:
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=out,
                                              stderr=subprocess.STDOUT))
        first_at, n_first, done_at, committed = None, 0, None, 0
        target = total if stop_at is None else min(total, stop_at)
        deadline = time.monotonic() + self.args.timeout
        shown = time.monotonic()
        threads_before: list[dict[int, float]] = [{} for _ in procs]
        while time.monotonic() < deadline:
            time.sleep(0.1)
            for proc, log in zip(procs, logs, strict=True):
                if proc.poll() is not None:
                    for other in procs:
                        stop(other, signal.SIGKILL)
                    raise RuntimeError(f"worker exited {proc.returncode}:\n{tail(log)}")
            stored = self.pg.positions(topic)
            now = time.perf_counter()
            committed = sum(stored.values())
            if first_at is None and committed:
                # CPU figures below cover the catch-up after the first commit only.
                first_at, n_first = now, committed
                before_machine = machine_cpu()
                threads_before = [thread_cpu(proc.pid) for proc in procs]
                backends_before = {pid: cpu_of(pid) or 0.0 for pid in self.pg.backend_pids()}
                broker_before = cpu_of(self.broker) if self.broker else None
            if committed >= target and (stop_at is not None or all(
                    stored.get(p, 0) >= o for p, o in offsets.items())):
                done_at = now
                break
            if time.monotonic() - shown > 10:
                shown = time.monotonic()
                rate = (committed - n_first) / (now - first_at) if first_at else 0
                say(f"  {committed:,}/{total:,} committed, {rate:,.0f} ev/s")
        if done_at is None or first_at is None:
            for proc in procs:
                stop(proc, signal.SIGKILL)
            raise RuntimeError(f"worker did not catch up in {self.args.timeout}s:\n"
                               f"{tail(logs[0])}")
        busy = busy_share(before_machine, machine_cpu())
        hwm = max(status_kb(proc.pid, "VmHWM") or 0 for proc in procs)
        rss = max(status_kb(proc.pid, "VmRSS") or 0 for proc in procs)
        main_cpu = other_cpu = since_spawn = 0.0
        threads_n = 0
        per_process_cpu = []
        for proc, before in zip(procs, threads_before, strict=True):
            threads = thread_cpu(proc.pid)
            main = threads.get(proc.pid, 0.0) - before.get(proc.pid, 0.0)
            other = sum(c - before.get(t, 0.0) for t, c in threads.items() if t != proc.pid)
            main_cpu, other_cpu = main_cpu + main, other_cpu + other
            per_process_cpu.append(main + other)
            since_spawn += sum(threads.values())
            threads_n += len(threads)
        pg_cpu = sum((cpu_of(pid) or 0.0) - backends_before.get(pid, 0.0)
                     for pid in self.pg.backend_pids())
        broker_cpu = (cpu_of(self.broker) or 0) - broker_before if broker_before else None
        commits = self.pg.commits()
        codes = [stop(proc, signal.SIGINT if profile else signal.SIGTERM) for proc in procs]
        time.sleep(0.5)  # the worker's backend reports its counters when it exits
        # Each batch is one transaction; ours (the polls) are subtracted; a few belong to
        # the worker's start (migrations, position look-ups).
        xacts = self.pg.transactions() - xacts_before - (self.pg.queries - queries_before)
        steady = done_at - first_at
        result = {
            "batch_size": batch, "processes": processes, "code": str(repo),
            "events": committed, "first_commit_events": n_first,
            "startup_seconds": first_at - spawned, "seconds_after_first_commit": steady,
            "seconds_total": done_at - spawned,
            "rate": (committed - n_first) / steady if steady > 0 else float("nan"),
            "rate_incl_startup": committed / (done_at - spawned),
            "peak_rss_mb": hwm / 1024, "rss_at_end_mb": rss / 1024,
            "cpu_main_thread_s": main_cpu, "cpu_other_threads_s": other_cpu,
            "cpu_per_process_s": per_process_cpu,
            "cpu_worker_total_since_spawn_s": since_spawn, "threads": threads_n,
            "cpu_pg_backends_s": pg_cpu,
            "cpu_broker_s": broker_cpu, "machine_busy": busy, "load": os.getloadavg(),
            "exit_code": codes[0] if processes == 1 else codes, "transactions": xacts,
            "mean_batch_approx": committed / max(1, xacts),
            "commits_with_changes": commits,
            "mean_batch": committed / commits if commits else None,
        }
        return result

    def check_report(self, result: dict[str, Any], label: str) -> None:
        if self.args.skip_report_check:
            return
        reference = self.embedded_report()
        t = time.perf_counter()
        stored = self.store_report()
        result["report_identical"] = stored == reference
        result["report_seconds"] = time.perf_counter() - t
        say(f"  report from PostgreSQL == report from file, byte for byte: "
            f"{result['report_identical']} ({len(stored):,} vs {len(reference):,} bytes)")
        if not result["report_identical"]:
            (self.workdir / f"report-store-{label}.json").write_text(stored)
            (self.workdir / "report-file.json").write_text(reference)

    def workers(self) -> None:
        runs = [(self.args.baseline_repo, "baseline")] if self.args.baseline_repo else []
        runs.append((REPO, "worker"))
        for batch in self.args.batch_sizes:
            for repo, key in runs:
                say(f"step 3: dispatch worker --batch-size {batch} ({key}: {repo}), "
                    f"{self.n:,} events, empty read models")
                stop_at = self.args.baseline_events if key == "baseline" else None
                result = self.run_worker(batch, topic=self.topic, offsets=self.offsets,
                                         label=f"{key}{batch}", repo=repo, stop_at=stop_at)
                say(f"  caught up: {result['rate']:,.0f} ev/s after first commit "
                    f"({result['startup_seconds']:.1f}s startup), "
                    f"{result['rate_incl_startup']:,.0f} ev/s incl. startup, peak RSS "
                    f"{result['peak_rss_mb']:.0f} MB")
                if stop_at is None:
                    self.check_report(result, f"{key}{batch}")
                self.results.setdefault(key, []).append(result)

    def scale(self) -> None:
        """1, 2, 3 ... workers in one group sharing the topic's 6 partitions."""
        batch = self.args.batch_sizes[0]
        stop_at = self.args.scale_events
        for processes in self.args.scale:
            say(f"step 3c: {processes} dispatch worker process(es) in one group, "
                f"batch {batch}, {'all' if stop_at is None else f'{stop_at:,}'} events")
            result = self.run_worker(batch, topic=self.topic, offsets=self.offsets,
                                     label=f"scale{processes}", processes=processes,
                                     stop_at=stop_at)
            say(f"  {result['rate']:,.0f} ev/s after first commit; CPU s: workers "
                f"{[round(c, 1) for c in result['cpu_per_process_s']]}, PostgreSQL "
                f"{result['cpu_pg_backends_s']:.1f}, broker {result['cpu_broker_s'] or 0:.1f} "
                f"over {result['seconds_after_first_commit']:.1f}s; machine busy "
                f"{result['machine_busy']:.0%}")
            if stop_at is None:
                self.check_report(result, f"scale{processes}")
            self.results.setdefault("scale", []).append(result)

    def plain(self) -> None:
        batch = self.args.batch_sizes[0]
        say(f"step 3b: same projection fed by plain aiokafka getmany(max_records={batch}), "
            "no Faust, empty read models")
        self.pg.reset()
        group = self.group("plain")
        before = machine_cpu()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [PY, str(Path(__file__).resolve()), "--plain-child", self.topic, str(self.n),
             self.bootstrap, group, self.dsn, str(batch)],
            capture_output=True, text=True, env=env, timeout=self.args.timeout)
        if done.returncode != 0:
            raise RuntimeError(f"plain aiokafka projector failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["machine_busy"] = busy_share(before, machine_cpu())
        result["load"] = os.getloadavg()
        result["caught_up"] = self.pg.positions(self.topic) == self.offsets
        if not self.args.skip_report_check:
            result["report_identical"] = self.store_report() == self.embedded_report()
        self.results["plain"] = result
        say(f"  {result['rate']:,.0f} ev/s after first commit, mean batch "
            f"{result['mean_batch']:,.0f}, process CPU {result['cpu_process_share']:.0%}, "
            f"report identical: {result.get('report_identical')}")

    # ---- step 5

    def latencies(self) -> None:
        if self.args.baseline_repo:
            self.latency(self.args.baseline_repo, "latency_baseline")
        self.latency(REPO, "latency")

    def latency(self, repo: Path = REPO, label: str = "latency") -> None:
        import orjson
        from confluent_kafka import Producer

        from dispatch.kafka.producer import make_producer

        rate, seconds, warmup = self.args.latency_rate, self.args.latency_seconds, 600
        topic = f"bench.{label}.{self.run_id}"
        say(f"step 5: latency, {rate:,}/s for {seconds}s on {topic} (fresh read models, "
            f"worker of {repo})")
        self.new_topic(topic)
        wanted = warmup + rate * seconds
        messages = []
        with open(self.events_file, "rb") as fh:
            for line in fh:
                raw = line.rstrip(b"\n")
                # The producer's key: the incident, or "duty" for events of none.
                key = orjson.loads(raw).get("incident_id") or "duty"
                messages.append((key.encode(), raw))
                if len(messages) >= wanted:
                    break
        if len(messages) < wanted:
            raise RuntimeError(f"need {wanted} events for the latency step, file has fewer")
        # One producer for warm-up and the measured phase: connection set-up and the
        # idempotent producer id are not in the measured latencies.
        producer: Producer = make_producer(self.bootstrap)
        for key, value in messages[:warmup]:
            producer.produce(topic, value=value, key=key)
        producer.flush(30)
        self.pg.reset()
        group = self.group(label)
        log = self.workdir / f"{label}-worker.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [PY, "-m", "dispatch.cli", "worker", "--batch-size", str(self.args.batch_sizes[0]),
                 "--metrics-port", "0"], env={**self.env(topic, group), "PYTHONPATH": str(repo)},
                cwd=self.workdir,
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while sum(self.pg.positions(topic).values()) < warmup:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc, signal.SIGKILL)
                raise RuntimeError(f"latency worker did not take the warm-up:\n{tail(log)}")
            time.sleep(0.1)
        time.sleep(2.0)  # idle
        cpu_before = cpu_of(proc.pid) or 0.0
        before = machine_cpu()

        steady = messages[warmup:]
        acked: list[tuple[int, int, float, float]] = []
        failures: list[str] = []
        finished = threading.Event()
        timing: dict[str, float] = {}

        def producer_thread() -> None:
            bucket, burst = 0.0, max(1.0, rate * 0.01)
            start = last = time.perf_counter()
            i = 0
            while i < len(steady):
                now = time.perf_counter()
                bucket = min(burst, bucket + (now - last) * rate)
                last = now
                while bucket >= 1.0 and i < len(steady):
                    key, value = steady[i]
                    sent = time.perf_counter()

                    def delivered(err: Any, msg: Any, sent: float = sent) -> None:
                        if err is None:
                            acked.append((msg.partition(), msg.offset(), sent,
                                          time.perf_counter()))
                        else:
                            failures.append(str(err))

                    producer.produce(topic, value=value, key=key, on_delivery=delivered)
                    bucket -= 1.0
                    i += 1
                producer.poll(0)
                time.sleep(max(0.0, (1.0 - bucket) / rate))
            timing["send_seconds"] = time.perf_counter() - start
            producer.flush(30)
            finished.set()

        history: dict[int, tuple[list[int], list[float]]] = {p: ([], []) for p in range(6)}
        polls: list[tuple[float, float]] = []

        async def poller() -> None:
            interval = self.args.poll_ms / 1000
            prev: dict[int, int] = {}
            end = None
            while True:
                t0 = time.perf_counter()
                rows = await self.pg.conn.fetch(
                    "SELECT partition, next_position FROM positions WHERE source = $1", topic)
                t1 = time.perf_counter()
                polls.append((t0, t1))
                for partition, position in rows:
                    if position != prev.get(partition):
                        prev[partition] = position
                        history[partition][0].append(position)
                        history[partition][1].append(t1)
                if finished.is_set():
                    if end is None:
                        end = end_offsets(self.bootstrap, topic, 6)
                    if all(prev.get(p, 0) >= o for p, o in end.items()):
                        return
                    if t1 - polls[0][0] > seconds + 120:
                        raise RuntimeError(f"latency: worker stuck at {prev}, end {end}")
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))

        thread = threading.Thread(target=producer_thread, name="bench-producer")
        probe = FlushProbe(self.args.flush_probe or self.workdir,
                           self.args.flush_probe_ms / 1000)
        with probe if self.args.flush_probe_ms > 0 else contextlib.nullcontext(probe):
            thread.start()
            self.pg.run(poller())
            thread.join()
        busy = busy_share(before, machine_cpu())
        worker_cpu = (cpu_of(proc.pid) or 0.0) - cpu_before
        stop(proc)
        if failures:
            raise RuntimeError(f"{len(failures)} deliveries failed: {failures[0]}")
        latencies, ack_latencies, unseen = [], [], 0
        late: list[tuple[float, float]] = []
        for partition, offset, sent, ack in acked:
            positions, times = history[partition]
            k = bisect.bisect_right(positions, offset)
            if k == len(positions):
                unseen += 1
                continue
            latencies.append(times[k] - sent)
            ack_latencies.append(ack - sent)
            if times[k] - sent > LATE_S:
                late.append((sent, times[k]))
        latencies.sort()
        ack_latencies.sort()
        gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(polls))
        queries = sorted(t1 - t0 for t0, t1 in polls)
        ms = 1000.0
        result = {
            "rate_target": rate, "seconds_target": seconds, "messages": len(acked),
            "rate_achieved": len(steady) / timing["send_seconds"], "unseen": unseen,
            "p50_ms": pct(latencies, 0.50) * ms, "p95_ms": pct(latencies, 0.95) * ms,
            "p99_ms": pct(latencies, 0.99) * ms, "max_ms": latencies[-1] * ms,
            "min_ms": latencies[0] * ms,
            "ack_p50_ms": pct(ack_latencies, 0.50) * ms, "ack_p99_ms": pct(ack_latencies, 0.99)
            * ms, "ack_max_ms": ack_latencies[-1] * ms,
            "poll_target_ms": self.args.poll_ms, "polls": len(polls),
            "poll_interval_mean_ms": sum(gaps) / len(gaps) * ms,
            "poll_interval_p99_ms": pct(gaps, 0.99) * ms,
            "poll_query_p50_ms": pct(queries, 0.5) * ms,
            "commits_seen": sum(len(h[0]) for h in history.values()),
            "worker_cpu_share": worker_cpu / timing["send_seconds"],
            "machine_busy": busy, "load": os.getloadavg(),
            "producer": "make_producer(): linger.ms=20, lz4, acks=all, idempotent",
            "late_ms": LATE_S * ms, "late": len(late),
            "flush": probe.summary(STALL_S) | {
                "folder": str(probe.folder),
                "late_in_a_stall": late_explained(late, probe.stalls(STALL_S))},
        }
        self.results[label] = result
        say(f"  p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f}, p99 "
            f"{result['p99_ms']:.1f}, max {result['max_ms']:.1f} (poll every "
            f"{result['poll_interval_mean_ms']:.1f} ms); producer ack p50 "
            f"{result['ack_p50_ms']:.1f} ms")

    # ---- step 6

    def profile(self) -> None:
        stop_at = min(self.n, self.args.profile_events)
        batch = self.args.batch_sizes[0]
        say(f"step 6: cProfile of dispatch worker --batch-size {batch}, SIGINT after "
            f"{stop_at:,} committed events")
        prof = self.workdir / "worker.prof"
        result = self.run_worker(batch, topic=self.topic, offsets=self.offsets,
                                 label="profile", profile=prof, stop_at=stop_at)
        for _ in range(100):
            if prof.exists() and prof.stat().st_size:
                break
            time.sleep(0.1)
        if not prof.exists():
            result["profile"] = "no profile written"
            self.results["profile"] = result
            say("  no profile written")
            return
        stats = pstats.Stats(str(prof))
        raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        total_tt = sum(v[2] for v in raw.values())

        def where(key: tuple[str, int, str]) -> str:
            path, line, name = key
            for marker in ("site-packages/", str(REPO) + "/", "python3.11/"):
                if marker in path:
                    path = path.split(marker, 1)[1]
                    break
            return f"{path}:{line}({name})" if line else name

        def top(index: int, count: int = 25) -> list[dict[str, Any]]:
            rows = sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True)[:count]
            return [{"function": where(k), "ncalls": v[1], "tottime": v[2], "cumtime": v[3]}
                    for k, v in rows]

        def package(key: tuple[str, int, str]) -> str:
            path, _, name = key
            if path == "~":
                if "epoll" in name:
                    return "epoll wait (idle: Kafka/PostgreSQL I/O)"
                if "pydantic_core" in name:
                    return "pydantic-core (event validation, C)"
                return "other C built-ins"
            if "site-packages/" in path:
                return path.split("site-packages/", 1)[1].split("/", 1)[0]
            if path.startswith(str(REPO)):
                return path[len(str(REPO)) + 1:].split("/", 1)[0]
            if "python3.11/" in path:
                return "stdlib " + path.split("python3.11/", 1)[1].split("/", 1)[0]
            return path

        packages: dict[str, float] = {}
        for key, value in raw.items():
            packages[package(key)] = packages.get(package(key), 0.0) + value[2]
        result["tottime_by_package"] = dict(sorted(packages.items(), key=lambda kv: -kv[1]))
        result["profile_total_tottime_s"] = total_tt
        result["top_tottime"] = top(2)
        result["top_cumtime"] = top(3)
        result["profile_file"] = str(prof)
        self.results["profile"] = result
        say(f"  profiled run: {result['rate']:,.0f} ev/s under cProfile; "
            f"{total_tt:.1f}s of main-thread time attributed")

    # ---- driver

    def run(self) -> None:
        steps = self.args.steps
        try:
            self.produce()
            if "ceiling" in steps:
                self.ceilings()
            if "drain" in steps:
                self.faust_drain()
            if "naive" in steps:
                self.naive()
            if "worker" in steps:
                self.workers()
            if "scale" in steps:
                self.scale()
            if "plain" in steps:
                self.plain()
            if "latency" in steps:
                self.latencies()
            if "profile" in steps:
                self.profile()
        finally:
            self.results["meta"]["load_at_end"] = os.getloadavg()
            self.results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            with contextlib.suppress(Exception):
                self.pg.reset()
            self.pg.close()
            try:
                note = delete_topics_and_groups(self.bootstrap, self.topics, self.groups)
            except Exception as exc:
                note = f"cleanup failed: {exc!r}"
            self.results["meta"]["cleanup"] = note
            say(f"cleanup: {note}")
            if self.args.keep:
                say(f"kept {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------- report


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []

    def row(label: str, value: str, note: str = "") -> None:
        lines.append(f"  {label:<46} {value:>16}  {note}")

    def ld(values: Any) -> str:
        return f"load {values[0]:.2f}" if values else ""

    meta = results["meta"]
    lines.append(f"Kafka pipeline benchmark, run {meta['run_id']}, Python {meta['python']}, "
                 f"{meta['cpus']} CPUs, {meta['started']} .. {meta.get('finished', '?')}")
    produce = results.get("produce")
    if produce:
        lines.append(f"\n0. produce ({produce['published']:,} events, "
                     f"{produce['bytes'] / 1e6:.0f} MB JSON Lines)")
        row("simulate + write_jsonl", f"{produce['simulate_seconds']:.1f} s")
        row("produce_files (validate, lz4, acks=all)", f"{produce['rate']:,.0f} ev/s",
            f"{produce['seconds']:.1f} s, {ld(produce['load'])}")
    best = None
    if results.get("ceiling"):
        lines.append("\n1. (a) ceiling: read + parse every message, fresh group")
        for c in results["ceiling"]:
            if "skipped" in c:
                row(c["client"], "skipped", c["skipped"])
                continue
            label = f"{c['client']} + {c['parser']}"
            row(label, f"{c['rate']:,.0f} ev/s",
                f"wall {c['rate_wall']:,.0f} ev/s, RSS {c['peak_rss_mb']:.0f} MB, "
                f"end reached {c['reached_end_offsets']}, {ld(c['load'])}")
            if c["parser"] == "orjson" and (best is None or c["rate"] > best["rate"]):
                best = c
    for d in results.get("faust_drain", []):
        row(f"Faust drain (build_app, no-op), batch {d['batch_size']}", f"{d['rate']:,.0f} ev/s",
            f"incl. startup {d['rate_wall']:,.0f} ev/s, CPU "
            f"{d['cpu_seconds_after_first_batch'] / d['seconds']:.0%} of a core (main thread "
            f"{d['cpu_main_thread_s'] / d['seconds']:.0%}), mean batch {d['mean_batch']:,.0f}, "
            f"{ld(d['load'])}")
    naive = results.get("naive")
    if naive:
        lines.append("\n2. (b) naive Faust peer (one event, one upsert)")
        row("naive peer", f"{naive['rate']:,.1f} ev/s",
            f"{naive['events']:,} events in {naive['seconds']:.1f}s after first write "
            f"(ended by {naive['ended_by']}), {ld(naive['load'])}")
    workers = results.get("worker", [])
    baselines = results.get("baseline", [])
    for key, runs in (("baseline", baselines), ("worker", workers)):
        if not runs:
            continue
        which = " of the baseline checkout" if key == "baseline" else ""
        lines.append(f"\n3. (c) dispatch worker{which}, empty read models -> caught up")
        for w in runs:
            row(f"batch {w['batch_size']}: excl. startup", f"{w['rate']:,.0f} ev/s",
                f"{w['seconds_after_first_commit']:.1f}s after first commit at "
                f"{w['startup_seconds']:.1f}s, {ld(w['load'])}")
            row(f"batch {w['batch_size']}: incl. startup", f"{w['rate_incl_startup']:,.0f} ev/s",
                f"{w['seconds_total']:.1f}s from spawn")
            row(f"batch {w['batch_size']}: peak RSS (VmHWM)", f"{w['peak_rss_mb']:.0f} MB")
            if w.get("mean_batch"):
                row(f"batch {w['batch_size']}: commits, mean batch",
                    f"{w['commits_with_changes']:,}, {w['mean_batch']:,.0f}",
                    "commits that wrote the change log (every batch does)")
            steady = w["seconds_after_first_commit"]
            row(f"batch {w['batch_size']}: CPU, share of one core",
                f"{w['cpu_main_thread_s'] / steady:.0%}/{w['cpu_other_threads_s'] / steady:.0%}/"
                f"{w['cpu_pg_backends_s'] / steady:.0%}/{(w['cpu_broker_s'] or 0) / steady:.0%}",
                "worker main thread / other worker threads / its PG backend / broker, after "
                f"first commit; machine busy {w['machine_busy']:.0%} of 2 cores")
            done = max(1, w["events"] - w["first_commit_events"])
            row(f"batch {w['batch_size']}: CPU per event",
                f"{w['cpu_main_thread_s'] / done * 1e6:.0f}/"
                f"{w['cpu_other_threads_s'] / done * 1e6:.0f}/"
                f"{w['cpu_pg_backends_s'] / done * 1e6:.0f}/"
                f"{(w['cpu_broker_s'] or 0) / done * 1e6:.0f} us",
                "same split; independent of the load (the broker's includes other clients)")
            if "report_identical" in w:
                row(f"batch {w['batch_size']}: report store == file", str(w["report_identical"]))
    scale = results.get("scale", [])
    if scale:
        lines.append("\n3c. workers sharing the 6 partitions (one group)")
        for w in scale:
            steady = w["seconds_after_first_commit"]
            row(f"{w['processes']} process(es)", f"{w['rate']:,.0f} ev/s",
                f"CPU share of a core: workers "
                f"{'+'.join(f'{c / steady:.0%}' for c in w['cpu_per_process_s'])}, PG "
                f"{w['cpu_pg_backends_s'] / steady:.0%}, broker "
                f"{(w['cpu_broker_s'] or 0) / steady:.0%}; machine busy "
                f"{w['machine_busy']:.0%}; report identical {w.get('report_identical', '-')}; "
                f"{ld(w['load'])}")
    plain = results.get("plain")
    if plain:
        row(f"3b. same projection, plain aiokafka (batch {plain['batch_size']})",
            f"{plain['rate']:,.0f} ev/s",
            f"no Faust; mean batch {plain['mean_batch']:,.0f}, process CPU "
            f"{plain['cpu_process_share']:.0%}, PG backend {plain['cpu_pg_backend_share']:.0%}, "
            f"report identical {plain.get('report_identical')}, {ld(plain['load'])}")
    if workers:
        lines.append("\n4. ratios")
        for w in workers:
            if best:
                row(f"(c, batch {w['batch_size']}) / (a best: {best['client']}+orjson)",
                    f"{w['rate'] / best['rate']:.3f}")
            if naive:
                row(f"(c, batch {w['batch_size']}) / (b naive)",
                    f"{w['rate'] / naive['rate']:,.1f}x")
            if plain:
                row(f"(c, batch {w['batch_size']}) / plain aiokafka projector",
                    f"{w['rate'] / plain['rate']:.3f}")
            for d in results.get("faust_drain", []):
                if d["batch_size"] == w["batch_size"]:
                    row(f"(c, batch {w['batch_size']}) / Faust drain",
                        f"{w['rate'] / d['rate']:.3f}")
            for b in baselines:
                if b["batch_size"] == w["batch_size"]:
                    row(f"(c, batch {w['batch_size']}) / baseline checkout's worker",
                        f"{w['rate'] / b['rate']:.2f}x")

                    def per_event(r: dict[str, Any]) -> float:
                        cpu = r["cpu_main_thread_s"] + r["cpu_other_threads_s"]
                        return cpu / max(1, r["events"] - r["first_commit_events"])

                    row(f"(c, batch {w['batch_size']}) worker CPU per event vs baseline",
                        f"{per_event(w) * 1e6:.0f} / {per_event(b) * 1e6:.0f} us",
                        f"= {per_event(b) / per_event(w):.2f}x less")
    for label in ("latency_baseline", "latency"):
        lat = results.get(label)
        if not lat:
            continue
        which = "baseline checkout: " if label == "latency_baseline" else ""
        lines.append(f"\n5. {which}latency, {lat['rate_target']:,}/s for {lat['seconds_target']}s "
                     f"(achieved {lat['rate_achieved']:,.0f}/s), produce() -> positions row")
        row("p50 / p95 / p99 / max",
            f"{lat['p50_ms']:.0f}/{lat['p95_ms']:.0f}/{lat['p99_ms']:.0f}/{lat['max_ms']:.0f} ms",
            f"{lat['messages']:,} messages, unseen {lat['unseen']}, {ld(lat['load'])}")
        row("producer ack p50 / p99 / max",
            f"{lat['ack_p50_ms']:.0f}/{lat['ack_p99_ms']:.0f}/{lat['ack_max_ms']:.0f} ms",
            lat["producer"])
        row("poll resolution (mean / p99 gap)",
            f"{lat['poll_interval_mean_ms']:.1f}/{lat['poll_interval_p99_ms']:.1f} ms",
            f"target {lat['poll_target_ms']} ms, query p50 {lat['poll_query_p50_ms']:.2f} ms, "
            f"{lat['commits_seen']} position changes")
        row("worker CPU while at this rate", f"{lat['worker_cpu_share']:.0%} of a core",
            f"machine busy {lat['machine_busy']:.0%}")
        flush = lat.get("flush", {})
        if flush.get("flushes"):
            row("disk flush (8 kB fdatasync) p50 / p99 / max",
                f"{flush['p50_ms']:.1f}/{flush['p99_ms']:.0f}/{flush['max_ms']:.0f} ms",
                f"{flush['flushes']:,.0f} flushes in {flush['folder']}, "
                f"{flush['stalls']:.0f} over {flush['stall_ms']:.0f} ms")
            row(f"messages over {lat['late_ms']:.0f} ms / of them during a stall",
                f"{lat['late']:,} / {flush['late_in_a_stall']:,}",
                "in flight while some flush took over "
                f"{flush['stall_ms']:.0f} ms")
    prof = results.get("profile")
    if prof and "top_tottime" in prof:
        lines.append(f"\n6. cProfile, main thread only ({prof['events']:,} events at "
                     f"{prof['rate']:,.0f} ev/s under the profiler)")
        lines.append("  own time by package (share of all attributed main-thread time):")
        total = prof["profile_total_tottime_s"]
        for name, seconds in list(prof["tottime_by_package"].items())[:14]:
            lines.append(f"    {seconds:8.2f} s {seconds / total:6.1%}  {name}")
        for key, title in (("top_tottime", "by total (own) time"),
                           ("top_cumtime", "by cumulative time")):
            lines.append(f"  {title}:")
            lines.append(f"    {'tottime':>8} {'cumtime':>8} {'ncalls':>9}  function")
            for f in prof[key][:20]:
                lines.append(f"    {f['tottime']:8.2f} {f['cumtime']:8.2f} {f['ncalls']:9d}  "
                             f"{f['function']}")
    return "\n".join(lines)


def main() -> int:
    global BENCH_DB
    if len(sys.argv) > 1 and sys.argv[1] == "--ceiling-child":
        client, parser, topic, n, bootstrap, group = sys.argv[2:8]
        print(json.dumps(ceiling_child(client, parser, topic, int(n), bootstrap, group)))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--plain-child":
        topic, n, bootstrap, group, dsn, batch = sys.argv[2:8]
        print(json.dumps(plain_child(topic, int(n), bootstrap, group, dsn, int(batch))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", metavar="PATH", help="save all figures here")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--pg-root", default="postgresql://dispatch:dispatch@127.0.0.1:5432",
                        help="PostgreSQL URL without database")
    parser.add_argument("--database", default=BENCH_DB,
                        help=f"bench database (created if missing; default {BENCH_DB})")
    parser.add_argument("--steps", nargs="+", default=[
        "ceiling", "drain", "naive", "worker", "scale", "plain", "latency", "profile"])
    parser.add_argument("--clients", nargs="+",
                        default=["confluent", "aiokafka", "kafka-python"])
    parser.add_argument("--parsers", nargs="+", default=["none", "orjson", "json"])
    parser.add_argument("--pydeps", metavar="DIR",
                        help="PYTHONPATH for the kafka-python child (must hold lz4)")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[5000, 20000])
    parser.add_argument("--drain-events", type=int, help="Faust drain: stop after this many")
    parser.add_argument("--baseline-repo", type=lambda p: Path(p).resolve(), metavar="DIR",
                        help="step 3 also runs the worker of this checkout (e.g. a git "
                             "worktree of an older commit), same topic, same run")
    parser.add_argument("--baseline-events", type=int,
                        help="stop the baseline's worker after this many committed events")
    parser.add_argument("--scale", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 2, 3], help="step scale: worker process counts")
    parser.add_argument("--scale-events", type=int,
                        help="step scale: stop after this many committed (default: all)")
    parser.add_argument("--naive-seconds", type=float, default=60.0)
    parser.add_argument("--naive-events", type=int, default=50_000)
    parser.add_argument("--latency-rate", type=int, default=2000)
    parser.add_argument("--latency-seconds", type=int, default=60)
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument("--flush-probe", type=Path, metavar="DIR",
                        help="latency step: time disk flushes in DIR, on the file system "
                             "of PostgreSQL's WAL (default: the work directory)")
    parser.add_argument("--flush-probe-ms", type=float, default=20.0,
                        help="one probe flush every this many ms; 0: no probe")
    parser.add_argument("--profile-events", type=int, default=200_000)
    parser.add_argument("--skip-report-check", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="give up on one step after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    BENCH_DB = args.database
    bench = Bench(args)
    failed = None
    try:
        bench.run()
    except Exception as exc:
        failed = exc
        say(f"FAILED: {exc!r}")
    print("\n" + table(bench.results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str))
        print(f"\nsaved {args.json}")
    if failed is not None:
        raise failed
    return 0


if __name__ == "__main__":
    sys.exit(main())
