"""Driving the real stack from tests: topics, producers, worker processes, reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[2]


def dispatch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dispatch.cli", *args]


@dataclass
class Stack:
    bootstrap: str
    pg_dsn: str
    topic: str = field(default_factory=lambda: f"test.events.{uuid.uuid4().hex[:8]}")
    group: str = field(default_factory=lambda: f"test-group-{uuid.uuid4().hex[:8]}")
    partitions: int = 6
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPATCH_KAFKA_BOOTSTRAP": self.bootstrap,
                "DISPATCH_PG_DSN": self.pg_dsn, "DISPATCH_TOPIC_EVENTS": self.topic,
                "DISPATCH_TOPIC_DLQ": f"{self.topic}.dlq", "DISPATCH_CONSUMER_GROUP": self.group,
                "DISPATCH_TOPIC_ALERTS": f"{self.topic}.alerts",
                "DISPATCH_PARTITIONS": str(self.partitions), "DISPATCH_METRICS_PORT": "0",
                "PYTHONPATH": str(REPO)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(dispatch_cmd(*args), env=self.env, capture_output=True, text=True,
                              timeout=600, cwd=REPO)
        if check and done.returncode != 0:
            raise AssertionError(f"dispatch {args[0]} exited {done.returncode}:\n{done.stderr}")
        return done

    def produce_raw(self, lines: Iterable[bytes]) -> int:
        """Publish lines as they are (invalid ones too, so the worker's DLQ path runs)."""
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

    def start_worker(self, *extra: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else None  # noqa: SIM115
        try:
            worker = subprocess.Popen(dispatch_cmd("worker", "--log-level", "info", *extra),
                                      env=self.env, stdout=out or subprocess.DEVNULL,
                                      stderr=subprocess.STDOUT, cwd=REPO)
        finally:
            if out is not None:
                out.close()  # the child holds its own descriptor
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if worker.poll() is None:
            worker.send_signal(sig)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)

    def stop_all(self) -> None:
        for worker in self.workers:
            self.stop_worker(worker, signal.SIGKILL)

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
