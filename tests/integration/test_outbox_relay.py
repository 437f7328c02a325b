"""Commands published through the outbox: ``dispatch serve --publish`` on
PostgreSQL with Kafka; the topic gets each event once, keyed by incident or
``crew:<id>``; a worker folding the topic into the same store counts them all
as duplicates and the report does not change."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

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
