"""Driving the real stack from tests: topics, producers, worker processes, reports.

Fault tests strike only once the fault can matter: ``Stack.wait_for_progress``
waits until the read models show work committed by the worker in question (on
partitions its log says it owns) while some, but not all, events are committed,
and fails the test if that window never opens. Workers run with a short session
timeout so that the group notices a dead or stopped member within seconds.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[2]
SESSION_TIMEOUT = 6.0
"""Seconds: the broker's smallest allowed session timeout (group.min.session.timeout.ms)."""

_ASSIGNED = re.compile(r"\] assigned partitions \[([\d, ]*)\], resuming at (\{[^}]*\})")
_REVOKED = re.compile(r"\] revoked partitions \[([\d, ]*)\]")


def _numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


@dataclass
class Worker:
    """One ``dispatch worker`` process and what its log says it owns."""

    process: subprocess.Popen[bytes]
    log: Path
    name: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_lines(self) -> list[str]:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if f"[{self.pid}]" in line]

    def ownership(self) -> dict[int, int]:
        """partition -> offset it resumed at, for the partitions it owns now."""
        owned: dict[int, int] = {}
        for line in self.log_lines():
            if (assigned := _ASSIGNED.search(line)) is not None:
                resumed = ast.literal_eval(assigned.group(2))
                owned.update({p: resumed[p] for p in _numbers(assigned.group(1))})
            elif (revoked := _REVOKED.search(line)) is not None:
                for partition in _numbers(revoked.group(1)):
                    owned.pop(partition, None)
        return owned

    def refusals(self) -> list[str]:
        """Log lines of batches the store refused (another worker moved the partition)."""
        return [line for line in self.log_lines() if "batch refused:" in line]


@dataclass(frozen=True)
class Progress:
    """What the store showed when a fault's window opened."""

    committed: int
    total: int
    owned: dict[int, int]
    stored: dict[int, int]

    def done_by_worker(self) -> int:
        return sum(self.stored.get(p, 0) - at for p, at in self.owned.items())


def dispatch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dispatch.cli", *args]


@dataclass
class Stack:
    bootstrap: str
    pg_dsn: str
    topic: str = field(default_factory=lambda: f"test.events.{uuid.uuid4().hex[:8]}")
    group: str = field(default_factory=lambda: f"test-group-{uuid.uuid4().hex[:8]}")
    partitions: int = 6
    workers: list[Worker] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPATCH_KAFKA_BOOTSTRAP": self.bootstrap,
                "DISPATCH_PG_DSN": self.pg_dsn, "DISPATCH_TOPIC_EVENTS": self.topic,
                "DISPATCH_TOPIC_DLQ": f"{self.topic}.dlq", "DISPATCH_CONSUMER_GROUP": self.group,
                "DISPATCH_TOPIC_ALERTS": f"{self.topic}.alerts",
                "DISPATCH_PARTITIONS": str(self.partitions), "DISPATCH_METRICS_PORT": "0",
                "DISPATCH_WORKER_SESSION_TIMEOUT": str(SESSION_TIMEOUT),
                "DISPATCH_WORKER_HEARTBEAT_INTERVAL": str(SESSION_TIMEOUT / 3),
                # A worker frozen on purpose mid-batch must come back to its transaction.
                "DISPATCH_WORKER_IDLE_TRANSACTION_TIMEOUT": "120",
                "PYTHONPATH": str(REPO)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(dispatch_cmd(*args), env=self.env, capture_output=True, text=True,
                              timeout=600, cwd=REPO)
        if check and done.returncode != 0:
            raise AssertionError(f"dispatch {args[0]} exited {done.returncode}:\n{done.stderr}")
        return done

    def produce_raw(self, lines: Iterable[bytes]) -> int:
        """Publish lines as they are (invalid ones too, so the worker's DLQ path runs),
        keyed by their ``incident_id`` like ``dispatch produce``."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=20)
        count = 0
        for line in lines:
            try:
                obj = json.loads(line)
                key = "duty" if str(obj.get("type")).startswith("duty.") else obj.get("incident_id")
            except (ValueError, AttributeError):
                key = None
            producer.send(self.topic, value=line, key=str(key).encode() if key else None)
            count += 1
        producer.flush(60)
        producer.close()
        return count

    def create_topics(self) -> None:
        self.run("topics")

    def start_worker(self, *extra: str, log: Path | None = None, name: str = "") -> Worker:
        """Start ``dispatch worker`` logging at info level to ``log`` (default: a new
        temporary file; the log tells which partitions it owns). ``name``: static
        membership (--instance-id)."""
        options = ["--instance-id", name] if name else []
        if log is None:
            handle, where = tempfile.mkstemp(prefix="dispatch-worker-", suffix=".log")
            os.close(handle)
            log = Path(where)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                dispatch_cmd("worker", "--log-level", "info", *options, *extra),
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        worker = Worker(process, log, name)
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: Worker, sig: int = signal.SIGTERM) -> None:
        process = worker.process
        if process.poll() is None:
            if sig != signal.SIGKILL:
                process.send_signal(signal.SIGCONT)  # a stopped process cannot exit
            process.send_signal(sig)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def stop_all(self) -> None:
        for worker in self.workers:
            self.stop_worker(worker, signal.SIGKILL)

    def total(self) -> int:
        return sum(self.end_offsets().values())

    def wait_for_progress(self, worker: Worker, total: int, *, beyond: int = 1,
                          timeout: float = 90, what: str = "the fault") -> Progress:
        """Wait until ``worker`` owns partitions and has committed at least ``beyond``
        events on them past where it resumed, while 0 < committed < ``total``.

        Fails when the worker dies, when everything is committed first (the window
        closed) or when nothing happens within ``timeout`` seconds (it never opened).
        """
        deadline = time.monotonic() + timeout
        committed = 0
        owned: dict[int, int] = {}
        while time.monotonic() < deadline:
            if not worker.alive():
                raise AssertionError(f"worker {worker.pid} exited ({worker.process.returncode})"
                                     f" before {what}; log {worker.log}")
            owned = worker.ownership()
            stored = self.stored_positions()
            committed = sum(stored.values())
            if committed >= total:
                raise AssertionError(
                    f"window for {what} closed: all {total} events were committed before "
                    f"worker {worker.pid} showed {beyond} events of progress")
            progress = Progress(committed, total, owned, stored)
            if owned and progress.done_by_worker() >= beyond:
                return progress
            time.sleep(0.05)
        raise AssertionError(f"window for {what} never opened in {timeout}s: worker "
                             f"{worker.pid} owns {sorted(owned)}, {committed} of {total} "
                             f"committed; log {worker.log}")

    def end_offsets(self) -> dict[int, int]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
        finally:
            consumer.close()

    def stored_positions(self) -> dict[int, int]:
        async def read() -> dict[int, int]:
            conn = await asyncpg.connect(self.pg_dsn)
            try:
                rows = await conn.fetch(
                    "SELECT partition, next_position FROM positions "
                    "WHERE consumer = $1 AND source = $2", self.group, self.topic)
            except asyncpg.UndefinedTableError:
                return {}
            finally:
                await conn.close()
            return {r[0]: r[1] for r in rows}
        import asyncio
        return asyncio.run(read())

    def sessions_of(self, pid: int) -> list[tuple[str, str, str]]:
        """``(state, wait_event_type, query)`` from ``pg_stat_activity`` for every
        PostgreSQL session of process ``pid`` that commits its batches (named
        ``dispatch[PID]``; its SLA timer runs in a child process, whose session is
        ``dispatch-sla[CHILD PID]``)."""
        async def read() -> list[tuple[str, str, str]]:
            conn = await asyncpg.connect(self.pg_dsn)
            try:
                rows = await conn.fetch(
                    "SELECT state, coalesce(wait_event_type, ''), query "
                    "FROM pg_stat_activity WHERE application_name = $1", f"dispatch[{pid}]")
            finally:
                await conn.close()
            return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
        import asyncio
        return asyncio.run(read())

    def wait_caught_up(self, timeout: float = 120) -> None:
        target = self.end_offsets()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stored = self.stored_positions()
            if all(stored.get(p, 0) >= o for p, o in target.items()):
                return
            time.sleep(0.25)
        raise AssertionError(f"workers did not catch up in {timeout}s: stored "
                             f"{self.stored_positions()} vs end offsets {target}")

    def report_from_store(self) -> str:
        return self.run("report", "--store", self.pg_dsn, "--format", "json").stdout


def embedded_report(path: Path) -> str:
    done = subprocess.run(dispatch_cmd("report", "--input", str(path), "--format", "json"),
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return done.stdout
