"""The production path under stress: Kafka -> Faust workers -> PostgreSQL.

Every test compares the report read from PostgreSQL with the embedded engine's
report of the same event file: they must be byte-identical. (The plain run and
the SIGKILL run are in tests/contract/test_pipeline_contract.py.)
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from tests.integration.harness import Stack, embedded_report

pytestmark = [pytest.mark.servers, pytest.mark.slow]


@pytest.fixture
def stack(kafka_bootstrap: str, pg_dsn: str) -> Iterator[Stack]:
    stack = Stack(kafka_bootstrap, pg_dsn)
    stack.create_topics()
    yield stack
    stack.stop_all()


def history(tmp_path: Path, days: int = 3, seed: int = 11) -> Path:
    """Shuffled, duplicated, late, skewed and partly malformed events."""
    path = tmp_path / "events.jsonl"
    plan = SimulationPlan(seed=seed, start=date(2026, 7, 1), days=days, storm_days=(1,),
                          duplicate_rate=0.03, shuffle=True, late_rate=0.02, skew_rate=0.02,
                          malformed_rate=0.002)
    write_jsonl(simulate_lines(plan), path)
    return path


def lines(path: Path) -> list[bytes]:
    return [line.rstrip(b"\n") for line in path.read_bytes().splitlines() if line.strip()]


def test_produce_command_validates_and_keys_by_incident(stack: Stack, tmp_path: Path) -> None:
    events = history(tmp_path, days=2)
    done = stack.run("produce", str(events), "--rejects", str(tmp_path / "rejects.jsonl"))
    assert "rejected to" in done.stderr
    rejected = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert rejected, "the history has malformed lines"
    stack.start_worker(log=tmp_path / "worker.log")
    stack.wait_caught_up()
    expected = embedded_report(events).replace(
        f'"rejected_events": {len(rejected)}', '"rejected_events": 0')
    assert stack.report_from_store() == expected


def test_two_workers_share_partitions_through_rebalances(stack: Stack, tmp_path: Path) -> None:
    events = history(tmp_path, days=4, seed=31)
    all_lines = lines(events)
    half = len(all_lines) // 2
    first = stack.start_worker("--batch-size", "100", log=tmp_path / "w1.log")
    stack.produce_raw(all_lines[:half])
    time.sleep(6)
    second = stack.start_worker("--batch-size", "100", log=tmp_path / "w2.log")
    stack.produce_raw(all_lines[half:])
    time.sleep(6)
    stack.stop_worker(first)  # a graceful leave: the survivor takes over its partitions
    stack.wait_caught_up(timeout=180)
    assert second.poll() is None
    assert stack.report_from_store() == embedded_report(events)


def test_postgres_and_broker_restarts_mid_stream(stack: Stack, tmp_path: Path) -> None:
    events = history(tmp_path, days=4, seed=41)
    all_lines = lines(events)
    stack.start_worker("--batch-size", "100", log=tmp_path / "worker.log")
    third = len(all_lines) // 3
    stack.produce_raw(all_lines[:third])
    time.sleep(3)
    restart("postgres")
    stack.produce_raw(all_lines[third:2 * third])
    time.sleep(3)
    restart("kafka")
    stack.produce_raw(all_lines[2 * third:])
    stack.wait_caught_up(timeout=240)
    assert stack.report_from_store() == embedded_report(events)


def restart(server: str) -> None:
    script = Path(__file__).resolve().parents[2] / "deploy" / "local" / f"{server}.sh"
    done = subprocess.run(["bash", str(script), "restart"], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_killed_postgres_connection_is_retried_without_loss(stack: Stack,
                                                              tmp_path: Path) -> None:
    """The store turns the driver's error into StoreUnavailable; the worker reconnects,
    rewinds to the stored offsets and loses or repeats nothing. (No server restart:
    only this test database's other connections are terminated.)"""
    events = history(tmp_path, days=3, seed=53)
    all_lines = lines(events)
    log = tmp_path / "worker.log"
    stack.start_worker("--batch-size", "100", log=log)
    half = len(all_lines) // 2
    stack.produce_raw(all_lines[:half])
    deadline = time.monotonic() + 120
    while not any(stack.stored_positions().values()):
        assert time.monotonic() < deadline, "the worker committed nothing"
        time.sleep(0.25)
    assert terminate_other_connections(stack.pg_dsn) >= 1
    stack.produce_raw(all_lines[half:])
    stack.wait_caught_up(timeout=180)
    assert "batch not committed" in log.read_text(), "the worker never saw the lost connection"
    assert stack.report_from_store() == embedded_report(events)


def terminate_other_connections(dsn: str) -> int:
    import asyncio

    import asyncpg

    async def kill() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        finally:
            await conn.close()
        return sum(1 for r in rows if r[0])
    return asyncio.run(kill())
