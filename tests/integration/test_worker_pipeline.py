"""The production path under stress: Kafka -> Faust workers -> PostgreSQL.

Every test compares the report read from PostgreSQL with the embedded engine's
report of the same event file: they must be byte-identical. (The plain run and
the SIGKILL run are in tests/contract/test_pipeline_contract.py.) Each fault is
struck only once the store shows the worker in question committing on
partitions it owns, with part of the stream still to do, and the test checks
that the fault happened (the server really restarted, the zombie's commit was
really refused).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from tests.integration.harness import REPO, SESSION_TIMEOUT, Stack, embedded_report

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


def topic_messages(stack: Stack) -> list[tuple[bytes | None, bytes]]:
    """Every message of the events topic as (key, value); confluent-kafka reads the
    lz4 batches ``dispatch produce`` writes."""
    from confluent_kafka import Consumer, TopicPartition

    ends = stack.end_offsets()
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": stack.group + "-read",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(stack.topic, p, 0) for p in range(stack.partitions)])
        found: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + 60
        while len(found) < sum(ends.values()) and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                found.append((message.key(), message.value()))
        return found
    finally:
        consumer.close()


def test_produce_command_validates_and_keys_by_incident(stack: Stack, tmp_path: Path) -> None:
    events = history(tmp_path, days=2)
    done = stack.run("produce", str(events), "--rejects", str(tmp_path / "rejects.jsonl"))
    assert "rejected to" in done.stderr
    rejected = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert rejected, "the history has malformed lines"
    messages = topic_messages(stack)
    assert len(messages) == len(lines(events)) - len(rejected)
    for key, value in messages:
        event = json.loads(value)
        # duty.* events concern no incident: the contract keys them "duty"
        expected = "duty" if event["type"].startswith("duty.") else event["incident_id"]
        assert key == expected.encode(), (key, value[:120])
    assert any(not json.loads(v)["type"].startswith("duty.") for _, v in messages)
    stack.start_worker(log=tmp_path / "worker.log")
    stack.wait_caught_up()
    expected = embedded_report(events).replace(
        f'"rejected_events": {len(rejected)}', '"rejected_events": 0')
    assert stack.report_from_store() == expected


def test_two_workers_share_partitions_through_rebalances(stack: Stack, tmp_path: Path) -> None:
    events = history(tmp_path, days=10, seed=31)
    all_lines = lines(events)
    half = len(all_lines) // 2
    first = stack.start_worker("--batch-size", "20", log=tmp_path / "w1.log")
    stack.produce_raw(all_lines[:half])
    stack.wait_for_progress(first, len(all_lines), what="the second worker's join")
    second = stack.start_worker("--batch-size", "20", log=tmp_path / "w2.log")
    # Rebalance 1: both own a share before the second half is published, so that the
    # second worker has work on its partitions however fast the first one is.
    everything = set(range(stack.partitions))
    wait_until(lambda: set(first.ownership()) | set(second.ownership()) == everything
               and bool(second.ownership()) and bool(first.ownership()),
               "both workers own their share", timeout=60)
    mine, theirs = set(second.ownership()), set(first.ownership())
    assert not mine & theirs, (mine, theirs)
    stack.produce_raw(all_lines[half:])
    total = stack.total()
    # The second worker commits on its partitions while the first still owns the rest.
    stack.wait_for_progress(second, total, what="the first worker's leave")
    assert set(first.ownership()) == theirs
    # Rebalance 2: a graceful leave; the survivor takes over every partition.
    stack.stop_worker(first)
    assert first.process.returncode == 0
    wait_until(lambda: set(second.ownership()) == everything,
               "the survivor owns every partition", timeout=4 * SESSION_TIMEOUT)
    stack.wait_caught_up(timeout=180)
    assert second.alive()
    assert stack.report_from_store() == embedded_report(events)


def test_zombie_worker_commit_is_refused(stack: Stack, tmp_path: Path) -> None:
    """A worker frozen in the middle of a batch loses its partitions to another one;
    when it thaws, the commit of that batch must be refused, and nothing is lost."""
    events = history(tmp_path, days=10, seed=53)
    stack.produce_raw(lines(events))
    total = stack.total()
    zombie = stack.start_worker("--batch-size", "20", log=tmp_path / "zombie.log")
    before = stack.wait_for_progress(zombie, total, what="SIGSTOP")
    # Freeze it mid-batch, outside any transaction: an exclusive lock on the incidents
    # table holds its next batch in the read of the incidents it touches (after it
    # noted the positions it expects); SIGSTOP, then let the read finish.
    # (If the lock catches it inside a commit instead, let go and try again.)
    loop = asyncio.new_event_loop()
    blocker = loop.run_until_complete(asyncpg.connect(stack.pg_dsn))
    try:
        for _ in range(20):
            loop.run_until_complete(blocker.execute(
                "BEGIN; LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE"))
            session = wait_for_lock(stack, zombie.pid)
            if reading_incidents(session):
                zombie.process.send_signal(signal.SIGSTOP)
                loop.run_until_complete(blocker.execute("COMMIT"))
                break
            loop.run_until_complete(blocker.execute("COMMIT"))
            time.sleep(0.05)
        else:
            pytest.fail("the worker was never caught reading incidents in 20 tries")
    finally:
        loop.run_until_complete(blocker.close())
        loop.close()
    frozen = stack.stored_positions()
    ends = stack.end_offsets()
    pending = {p for p in before.owned if ends[p] > frozen.get(p, 0)}
    assert pending, "the frozen batch has partitions with events left"
    taker = stack.start_worker("--batch-size", "20", log=tmp_path / "taker.log")
    # The frozen batch covers some of the zombie's partitions with events left; once
    # the taker has committed on every one of them, that batch cannot be committed.
    wait_until(lambda: all(stack.stored_positions().get(p, 0) > frozen.get(p, 0)
                           for p in pending),
               "the taker committed on every partition the zombie had work on",
               timeout=60 + 4 * SESSION_TIMEOUT)
    assert set(taker.ownership()) >= pending
    assert not zombie.refusals()
    zombie.process.send_signal(signal.SIGCONT)
    wait_until(lambda: bool(zombie.refusals()), "the zombie's commit is refused", timeout=30)
    assert "expected" in zombie.refusals()[0]
    stack.wait_caught_up(timeout=180)
    assert stack.report_from_store() == embedded_report(events)


def wait_for_lock(stack: Stack, pid: int) -> tuple[str, str, str]:
    """The session of ``pid`` that waits for a lock, once one does."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for session in stack.sessions_of(pid):
            if session[:2] == ("active", "Lock"):
                return session
        time.sleep(0.02)
    raise AssertionError(f"worker {pid} never waited for the lock: {stack.sessions_of(pid)}")


def reading_incidents(session: tuple[str, str, str]) -> bool:
    """True when the session waits in the batch's read of incidents (no transaction
    open), not in a commit's write to them."""
    query = " ".join(session[2].split()).upper()
    return query.startswith("SELECT") and " FROM INCIDENTS " in query


def test_postgres_and_broker_restarts_mid_stream(stack: Stack, tmp_path: Path) -> None:
    events = history(tmp_path, days=10, seed=41)
    stack.produce_raw(lines(events))
    total = stack.total()
    worker = stack.start_worker("--batch-size", "20", name="restart-worker",
                                log=tmp_path / "worker.log")
    for server in ("postgres", "kafka"):
        progress = stack.wait_for_progress(worker, total, what=f"the {server} restart")
        restart(server, stack)
        # The worker must commit again after the restart, before the next fault.
        stack.wait_for_progress(worker, total, beyond=progress.done_by_worker() + 1,
                                what=f"progress after the {server} restart", timeout=120)
    stack.wait_caught_up(timeout=240)
    assert worker.alive()
    assert stack.report_from_store() == embedded_report(events)


# -- helpers -----------------------------------------------------------------------------

def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def postmaster_started(dsn: str) -> str:
    async def read() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SELECT pg_postmaster_start_time()"))
        finally:
            await conn.close()
    return asyncio.run(read())


def restart(server: str, stack: Stack) -> None:
    """Restart the server the test talks to (the scripts act on the instance named by
    these variables, and only if they started it) and prove that it happened."""
    pg_port = stack.pg_dsn.rsplit(":", 1)[1].split("/")[0]
    env = {**os.environ, "DISPATCH_KAFKA_BOOTSTRAP": stack.bootstrap,
           "DISPATCH_PG_PORT": pg_port}
    before = postmaster_started(stack.pg_dsn) if server == "postgres" else ""
    script = REPO / "deploy" / "local" / f"{server}.sh"
    done = subprocess.run(["bash", str(script), "restart"], capture_output=True, text=True,
                          timeout=180, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    if server == "postgres":
        assert postmaster_started(stack.pg_dsn) != before, output
    else:
        assert "stopping broker" in output and "broker started" in output, output


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
                # Client sessions of our own user only: an autovacuum worker on this
                # database is a superuser backend, and terminating it is refused.
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND usename = current_user AND backend_type = 'client backend'")
        finally:
            await conn.close()
        return sum(1 for r in rows if r[0])
    return asyncio.run(kill())
