"""``dispatch replay`` on the real broker and PostgreSQL (and SQLite as the target).

The replayed store must be the one the worker would have built: after a replay
of the first part of the topic, more events are produced, a ``dispatch worker``
of the same group is started on the replayed store, and the final report must
equal ``report --input`` over every event, byte for byte. The worker must resume
at the offsets the replay stored (its log says where), not from the start.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from tests.integration.harness import Stack, embedded_report

pytestmark = [pytest.mark.servers]


@pytest.fixture
def stack(kafka_bootstrap: str, pg_dsn: str) -> Iterator[Stack]:
    stack = Stack(kafka_bootstrap, pg_dsn)
    stack.create_topics()
    yield stack
    stack.stop_all()


def history(tmp_path: Path, seed: int = 3) -> list[bytes]:
    path = tmp_path / "all.jsonl"
    plan = SimulationPlan(seed=seed, start=date(2026, 7, 1), days=2, storm_days=(1,),
                          duplicate_rate=0.03, shuffle=True, late_rate=0.02,
                          malformed_rate=0.003)
    write_jsonl(simulate_lines(plan), path)
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def event_log_keys(dsn: str) -> list[str]:
    """The event log's index definitions, then its key constraints."""
    async def read() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            indexes = await conn.fetch("SELECT indexdef FROM pg_indexes "
                                       "WHERE tablename = 'event_log' ORDER BY indexname")
            keys = await conn.fetch(
                "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'event_log'::regclass ORDER BY conname")
            return [r[0] for r in (*indexes, *keys)]
        finally:
            await conn.close()
    return asyncio.run(read())


def test_replay_then_worker_continues_exactly(stack: Stack, tmp_path: Path) -> None:
    lines = history(tmp_path)
    half = len(lines) // 2
    stack.produce_raw(lines[:half])
    rejects = tmp_path / "rejects.jsonl"
    done = stack.run("replay", "--from-topic", "--store", stack.pg_dsn,
                     "--rejects", str(rejects), "--batch-size", "700")
    assert "replayed" in done.stderr and "ETA" in done.stderr, done.stderr
    ends = stack.end_offsets()
    assert stack.stored_positions() == ends
    first_part = write(tmp_path / "first.jsonl", lines[:half])
    assert stack.report_from_store() == embedded_report(first_part)
    assert rejects.read_text().count("\n") == json.loads(
        embedded_report(first_part))["rejected_events"] > 0
    # The replay set the event log's indexes aside while it copied: they are back, as
    # the migrations define them.
    assert event_log_keys(stack.pg_dsn) == [
        "CREATE UNIQUE INDEX event_log_event_id_key ON public.event_log USING btree (event_id)",
        "CREATE INDEX event_log_incident ON public.event_log USING btree (incident_id)",
        "CREATE UNIQUE INDEX event_log_pkey ON public.event_log USING btree (seq)",
        "event_log_event_id_key UNIQUE (event_id)", "event_log_pkey PRIMARY KEY (seq)"]

    # The live store's data is not overwritten: a second replay into it is refused.
    again = stack.run("replay", "--from-topic", "--store", stack.pg_dsn, check=False)
    assert again.returncode == 1 and "already holds events" in again.stderr

    stack.produce_raw(lines[half:])
    worker = stack.start_worker()
    stack.wait_caught_up()
    assert stack.report_from_store() == embedded_report(write(tmp_path / "all2.jsonl", lines))
    # It resumed at the replay's offsets (a worker reading from 0 would count duplicates).
    assert worker.ownership() == ends


def test_replay_into_sqlite_by_time_window(stack: Stack, tmp_path: Path) -> None:
    lines = history(tmp_path, seed=8)
    third = len(lines) // 3
    stack.produce_raw(lines[:third])
    time.sleep(1.2)
    since = time.time()
    time.sleep(1.2)
    stack.produce_raw(lines[third:2 * third])
    time.sleep(1.2)
    until = time.time()
    time.sleep(1.2)
    stack.produce_raw(lines[2 * third:])

    def instant(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    whole = tmp_path / "whole.db"
    stack.run("replay", "--from-topic", "--store", f"sqlite:///{whole}")
    assert stack.run("report", "--store", f"sqlite:///{whole}").stdout == embedded_report(
        write(tmp_path / "all.jsonl", lines))

    window = tmp_path / "window.db"
    stack.run("replay", "--from-topic", "--store", f"sqlite:///{window}",
              "--from-time", instant(since), "--to-time", instant(until))
    assert stack.run("report", "--store", f"sqlite:///{window}").stdout == embedded_report(
        write(tmp_path / "middle.jsonl", lines[third:2 * third]))

    bad = stack.run("replay", "--from-topic", "--store", f"sqlite:///{tmp_path / 'x.db'}",
                    "--from-time", instant(until), "--to-time", instant(since), check=False)
    assert bad.returncode == 2 and "after --to-time" in bad.stderr


def test_export_from_the_topic_matches_the_oracle(stack: Stack, tmp_path: Path) -> None:
    from tests.e2e.test_history_cli import assert_export_matches_the_oracle

    lines = history(tmp_path, seed=13)
    stack.produce_raw(lines)
    rejects = tmp_path / "rejects.jsonl"
    done = stack.run("export", "--from-topic", "--to", str(tmp_path / "out"),
                     "--rejects", str(rejects))
    assert "exported" in done.stderr
    assert_export_matches_the_oracle(tmp_path / "out", [line.decode() for line in lines])
    assert rejects.read_text().count("\n") == json.loads(embedded_report(
        write(tmp_path / "all.jsonl", lines)))["rejected_events"]
