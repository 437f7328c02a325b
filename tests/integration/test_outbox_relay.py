"""Commands published through the outbox: ``dispatch serve --publish`` on
PostgreSQL with Kafka; the topic gets each event once, keyed by incident or
``crew:<id>``; a worker folding the topic into the same store counts them all
as duplicates and the report does not change; a relay SIGKILLed after Kafka
acknowledged a batch and before it marked it is followed by one that publishes
nothing twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from confluent_kafka import Consumer

from tests.api.harness import serving
from tests.integration.harness import Stack

pytestmark = [pytest.mark.servers]
TOKEN = "relay-dispatcher-token"


@pytest.fixture
def stack(kafka_bootstrap: str, pg_dsn: str) -> Iterator[Stack]:
    stack = Stack(kafka_bootstrap, pg_dsn)
    stack.create_topics()
    yield stack
    stack.stop_all()


def outbox_state(dsn: str) -> tuple[int, int]:
    async def read() -> tuple[int, int]:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow("SELECT count(*), count(published_us) FROM outbox")
            return int(row[0]), int(row[1])
        finally:
            await conn.close()
    return asyncio.run(read())


def test_commands_reach_the_topic_once_and_the_worker_sees_duplicates(
        stack: Stack, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    stack.run("ingest", str(empty), "--store", stack.pg_dsn)
    env = {k: v for k, v in stack.env.items() if k.startswith("DISPATCH_")}
    env["DISPATCH_API_TOKENS"] = f"{TOKEN}:dispatcher"
    with serving(stack.pg_dsn, tmp_path, "--publish", env=env) as server, \
            httpx.Client(base_url=server.url, timeout=10,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.post("/api/crews", json={"crew": "C1", "grid": "G1"}).status_code == 201
        incident = client.post("/api/incidents", json={
            "data": {"grid": "G1", "area": "urban"}}).json()["incident_id"]
        for body in ({"type": "call.verified"},
                     {"type": "crew.dispatched", "data": {"crew": "C1"}},
                     {"type": "crew.arrived", "data": {"crew": "C1"}},
                     {"type": "power.restored"}):
            answer = client.post(f"/api/incidents/{incident}/events", json=body)
            assert answer.status_code == 201, answer.text
        deadline = time.monotonic() + 60
        while outbox_state(stack.pg_dsn) != (6, 6) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outbox_state(stack.pg_dsn) == (6, 6), server.stderr()
        before = stack.report_from_store()

    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "auto.offset.reset": "earliest",
                         "group.id": f"{stack.group}-reader", "enable.auto.commit": False})
    consumer.subscribe([stack.topic])
    messages = []
    deadline = time.monotonic() + 30
    while len(messages) < 6 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            messages.append(message)
    extra = consumer.poll(3.0)  # nothing published twice
    consumer.close()
    assert extra is None or extra.error() is not None
    keys = sorted(m.key().decode() for m in messages)
    assert keys == sorted(["crew:C1", *[incident] * 5])
    events = [json.loads(m.value()) for m in messages]
    assert len({e["event_id"] for e in events}) == 6

    stack.start_worker(log=tmp_path / "worker.log")
    stack.wait_caught_up()
    first, after = json.loads(before), json.loads(stack.report_from_store())
    assert after.pop("duplicate_events") == first.pop("duplicate_events") + 6
    assert after == first  # nothing folded twice


RELAY_CLAIM = 7_343_005
"""The advisory lock a relay holds (``claim_event_relay`` of the PostgreSQL store)."""


def read_topic(stack: Stack, expected: int) -> list[Any]:
    """Every message of the events topic (waits for ``expected``, then 3 s for more)."""
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "auto.offset.reset": "earliest",
                         "group.id": f"{stack.group}-{time.monotonic_ns()}",
                         "enable.auto.commit": False})
    consumer.subscribe([stack.topic])
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    quiet_until = None
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            messages.append(message)
            quiet_until = None
        elif len(messages) >= expected:
            quiet_until = quiet_until or time.monotonic() + 3
            if time.monotonic() > quiet_until:
                break
    consumer.close()
    return messages


def test_a_relay_killed_between_publish_and_mark_publishes_nothing_twice(
        stack: Stack, tmp_path: Path) -> None:
    """The relay publishes a batch, then is SIGKILLed while its mark waits on row locks
    the test holds; the next relay finds the batch on the topic and marks it."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    stack.run("ingest", str(empty), "--store", stack.pg_dsn)
    env = {k: v for k, v in stack.env.items() if k.startswith("DISPATCH_")}
    env["DISPATCH_API_TOKENS"] = f"{TOKEN}:dispatcher"

    async def hold(conn: asyncpg.Connection) -> None:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_CLAIM)

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(stack.pg_dsn)

    loop = asyncio.new_event_loop()
    holder = loop.run_until_complete(connect())
    watcher = loop.run_until_complete(connect())  # outside the holder's transaction
    try:
        # 1. Commands while the test holds the relay's claim: rows wait in the outbox.
        loop.run_until_complete(hold(holder))
        with serving(stack.pg_dsn, tmp_path, "--publish", env=env) as server, \
                httpx.Client(base_url=server.url, timeout=10,
                             headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            assert client.post("/api/crews", json={"crew": "C1", "grid": "G1"}).status_code == 201
            incidents = [client.post("/api/incidents", json={
                "data": {"grid": "G1", "area": "urban"}}).json()["incident_id"]
                for _ in range(5)]
            assert client.post(f"/api/incidents/{incidents[0]}/events", json={
                "type": "crew.dispatched", "data": {"crew": "C1"}}).status_code == 201
            time.sleep(1.0)
            assert outbox_state(stack.pg_dsn) == (7, 0)  # the claim is ours: nothing sent

            # 2. Lock the rows, so the relay's mark will wait; hand it the claim.
            assert loop.run_until_complete(_lock_rows(holder)) == 7
            loop.run_until_complete(holder.execute("SELECT pg_advisory_unlock($1)",
                                                   RELAY_CLAIM))
            # 3. The kill point: all 7 on the topic, and the mark waiting on our locks.
            deadline = time.monotonic() + 60
            waiting: list[Any] = []
            while time.monotonic() < deadline and not waiting:
                waiting = loop.run_until_complete(watcher.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE outbox SET published_us%'"))
                time.sleep(0.1)
            assert waiting, "the relay never reached its mark: " + server.stderr()
            assert len(read_topic(stack, 7)) == 7
            server.process.kill()
            server.process.wait()
        for row in waiting:  # its transaction dies with it, nothing marked
            loop.run_until_complete(watcher.execute("SELECT pg_terminate_backend($1)",
                                                    row["pid"]))
        loop.run_until_complete(holder.execute("ROLLBACK"))
        assert outbox_state(stack.pg_dsn) == (7, 0)
    finally:
        loop.run_until_complete(holder.close())
        loop.run_until_complete(watcher.close())
        loop.close()

    # 4. The next relay recovers the batch from the topic and publishes only what is new.
    with serving(stack.pg_dsn, tmp_path, "--publish", env=env) as server, \
            httpx.Client(base_url=server.url, timeout=10,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        deadline = time.monotonic() + 60
        while outbox_state(stack.pg_dsn) != (7, 7) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outbox_state(stack.pg_dsn) == (7, 7), server.stderr()
        assert client.post(f"/api/incidents/{incidents[1]}/events",
                           json={"type": "call.verified"}).status_code == 201
        while outbox_state(stack.pg_dsn) != (8, 8) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outbox_state(stack.pg_dsn) == (8, 8), server.stderr()

    messages = read_topic(stack, 8)
    ids = [json.loads(m.value())["event_id"] for m in messages]
    assert len(ids) == 8 and len(set(ids)) == 8, ids  # each event once
    assert sorted(m.key().decode() for m in messages) == sorted(
        ["crew:C1", *incidents, incidents[0], incidents[1]])
    seqs = sorted(int(dict(m.headers())["outbox_seq"]) for m in messages)
    assert seqs == list(range(seqs[0], seqs[0] + 8))


async def _lock_rows(conn: asyncpg.Connection) -> int:
    await conn.execute("BEGIN")
    rows = await conn.fetch("SELECT seq FROM outbox FOR UPDATE")
    return len(rows)
