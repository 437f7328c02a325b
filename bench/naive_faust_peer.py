"""The naive peer of ``bench/kafka_pipeline.py``: Faust, one event at a time, one upsert each.

What a first Faust + PostgreSQL projection usually looks like: an agent that
iterates ``async for value in stream`` (one event per iteration), parses it
with orjson, and upserts the incident with one ``INSERT ... ON CONFLICT``
statement per event over a single asyncpg connection in autocommit mode. Each
checkpoint column keeps the earliest time seen (``LEAST``), and ``events``
counts the events applied, so the benchmark measures progress with
``SELECT sum(events)`` (what is durably in PostgreSQL, not what was fetched).
No deduplication, no dead letters, no exactly-once: it is a speed reference only.

Configured by environment (the benchmark sets it):
  NAIVE_TOPIC, NAIVE_GROUP, NAIVE_PG_DSN, NAIVE_BOOTSTRAP (127.0.0.1:9092),
  NAIVE_PARTITIONS (6)
Run (from a scratch directory: Faust writes ``<group>-data/`` into the cwd):
  .venv/bin/python bench/naive_faust_peer.py
Stop with SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import asyncpg
import faust
import orjson

TOPIC = os.environ["NAIVE_TOPIC"]
GROUP = os.environ["NAIVE_GROUP"]
DSN = os.environ["NAIVE_PG_DSN"]
BOOTSTRAP = os.environ.get("NAIVE_BOOTSTRAP", "127.0.0.1:9092")
PARTITIONS = int(os.environ.get("NAIVE_PARTITIONS", "6"))

CHECKPOINTS = {
    "call.received": "t_call",
    "call.verified": "t_verify",
    "crew.departed": "t_depart",
    "crew.arrived": "t_arrive",
    "fault.diagnosed": "t_diagnose",
    "repair.completed": "t_repair",
    "power.restored": "t_restore",
}
COLUMNS = tuple(CHECKPOINTS.values())

CREATE = (
    "CREATE TABLE IF NOT EXISTS naive_incidents (incident_id TEXT PRIMARY KEY, "
    + ", ".join(f"{c} BIGINT" for c in COLUMNS)
    + ", events BIGINT NOT NULL)"
)
UPSERT = (
    f"INSERT INTO naive_incidents (incident_id, {', '.join(COLUMNS)}, events) VALUES ("
    + ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 2))
    + ", 1) ON CONFLICT (incident_id) DO UPDATE SET "
    + ", ".join(f"{c} = LEAST(naive_incidents.{c}, excluded.{c})" for c in COLUMNS)
    + ", events = naive_incidents.events + 1"
)

app = faust.App(
    GROUP,
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",
    web_enabled=False,
    topic_partitions=PARTITIONS,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    value_serializer="raw",
    key_serializer="raw",
)
topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, partitions=PARTITIONS)


def micros(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339).timestamp() * 1_000_000)


@app.agent(topic)
async def project(stream: Any) -> None:
    conn = await asyncpg.connect(DSN)
    await conn.execute(CREATE)
    try:
        async for value in stream:
            event = orjson.loads(value)
            times: list[int | None] = [None] * len(COLUMNS)
            column = CHECKPOINTS.get(event["type"])
            if column is not None:
                times[COLUMNS.index(column)] = micros(event["occurred_at"])
            await conn.execute(UPSERT, event["incident_id"], *times)
    finally:
        await conn.close()


if __name__ == "__main__":
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
