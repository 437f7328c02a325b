"""The pipelined projector on PostgreSQL, with an exclusive writer cutting in.

A batch is prepared on the in-flight batch's states only while the database
shows that batch's write block still open. Here an exclusive writer (an
embedded ingest into the same database) queues for the write lock while batch
N commits, and batch N+1 queues behind it: once N commits, the ingest commits
an event of the same incident, and N+1 must read that incident from the store,
not from N's states, or the ingest's event would be lost from the read model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import asyncpg
import pytest

from projections.ports import Commit, Record, Rejected
from projections.projector import Projector
from projections.queries import duty_report
from projections.runners.stream import Message, PartitionProjector
from projections.stores.postgres import PostgresStore
from tests.oracle import compare_reports, oracle_report

pytestmark = [pytest.mark.servers]
TOPIC, CONSUMER = "outage.events", "worker"


class SlowToHear(PostgresStore):
    """A session whose commits return to the client a while after the database has
    made them: the window in which the client cannot tell that a block has ended."""

    async def commit(self, commit: Commit) -> None:
        await super().commit(commit)
        await asyncio.sleep(0.3)


class NoDeadLetters:
    async def send(self, rejected: Sequence[Rejected]) -> None:
        raise AssertionError(f"nothing here is invalid: {rejected}")


def event(n: int, kind: str, minute: int) -> bytes:
    data: dict[str, object] = {}
    if kind == "call.received":
        data = {"grid": "G1", "area": "urban", "customers_affected": 10}
    elif kind.startswith("crew."):
        data = {"crew": "C1"}
    return json.dumps({"event_id": f"e{n}", "type": kind, "incident_id": "I1",
                       "occurred_at": f"2026-07-01T09:{minute:02d}:00+08:00",
                       "data": data}).encode()


async def waiting_for_write_lock(conn: asyncpg.Connection, pid: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $1 "
        "AND NOT granted)", pid))


async def until(check: object, what: str) -> None:
    for _ in range(500):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_a_batch_queued_behind_an_exclusive_writer_reads_the_store(pg_dsn: str) -> None:
    first = [event(1, "call.received", 0)]
    in_flight = [event(2, "call.verified", 5)]
    ingested = event(3, "crew.dispatched", 10)
    queued = [event(4, "crew.departed", 15), event(5, "crew.arrived", 30)]

    async def go() -> tuple[dict[str, object], int, list[str]]:
        store = SlowToHear(pg_dsn)
        await store.open()
        session = store.sibling()
        await session.open()
        projector = PartitionProjector(store, TOPIC, CONSUMER, NoDeadLetters(),
                                       pipeline=session)
        ingest = PostgresStore(pg_dsn)
        await ingest.open()
        spy = await asyncpg.connect(pg_dsn)
        try:
            await projector.assign([0])
            await projector.handle([Message(0, 0, first[0])])
            await projector.drain()  # the positions row now exists
            # Batch N stalls in its commit on the positions row, its write block open.
            await spy.execute("BEGIN")
            await spy.execute("SELECT 1 FROM positions FOR UPDATE")
            await projector.handle([Message(0, 1, in_flight[0])])
            flight_pid = store.conn.get_server_pid()
            await until(lambda: spy_waits(flight_pid, "Lock"), "batch N waits on the row")

            async def embedded_ingest() -> None:
                async with ingest.writing():
                    prepared = await Projector(ingest, "file").prepare(
                        [Record("file", 0, 1, ingested)])
                    await ingest.commit(prepared.commit)
            writer = asyncio.ensure_future(embedded_ingest())
            await until(lambda: waiting_for_write_lock(spy, ingest.conn.get_server_pid()),
                        "the ingest queues for the exclusive lock")
            following = asyncio.ensure_future(projector.handle(
                [Message(0, 2, queued[0]), Message(0, 3, queued[1])]))
            await until(lambda: waiting_for_write_lock(spy, session.conn.get_server_pid()),
                        "batch N+1 queues behind the ingest")
            await spy.execute("ROLLBACK")
            await writer
            await following
            await projector.drain()
            order = [r[0] for r in await spy.fetch("SELECT event_id FROM event_log ORDER BY seq")]
            return await duty_report(store), projector.overlaid, order
        finally:
            await spy.close()
            for s in (store, session, ingest):
                await s.close()

    async def spy_waits(pid: int, kind: str) -> bool:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return await conn.fetchval(
                "SELECT wait_event_type = $2 FROM pg_stat_activity WHERE pid = $1",
                pid, kind) is True
        finally:
            await conn.close()

    report, overlaid, order = asyncio.run(go())
    assert order == ["e1", "e2", "e3", "e4", "e5"], "the ingest did not cut in between"
    # N's commit had not returned when N+1 got the lock: only the database could tell.
    assert overlaid == 0, "batch N+1 was prepared on N's states after N's block closed"
    lines = [e.decode() for e in [*first, *in_flight, ingested, *queued]]
    assert compare_reports(report, oracle_report(lines)) == []
