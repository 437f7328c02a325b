"""Every store keeps each event's recorded time, so a known-at report can be re-folded.

Run against memory, SQLite and PostgreSQL: an event without ``recorded_at`` is
known from its ingestion time; one with it, from the earliest ``recorded_at``
among its copies, also when the earlier copy arrives in a later batch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from projections.duty import DutyCalendar
from projections.history import Window, parse_instant
from projections.ports import ProjectionStore, Record
from projections.projector import Projector
from projections.report import build_report
from projections.runners.batch import fold_history, load_store
from projections.stores.memory import MemoryStore
from projections.stores.postgres import PostgresStore
from projections.stores.sqlite import SqliteStore

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.servers)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> ProjectionStore:
    """A fresh, unopened store (the PostgreSQL fixture resets its schema synchronously)."""
    calendar = DutyCalendar()
    if request.param == "memory":
        return MemoryStore(calendar)
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "store.db", calendar)
    return PostgresStore(request.getfixturevalue("pg_dsn"), calendar)


@pytest.fixture
async def store(backend: ProjectionStore) -> AsyncIterator[ProjectionStore]:
    async with backend:
        yield backend


def line(event_id: str, kind: str, at: str, recorded: str | None = None) -> bytes:
    obj = {"event_id": event_id, "type": kind, "incident_id": "INC-1",
           "occurred_at": at, "data": {"grid": "G", "area": "urban"}
           if kind == "call.received" else {}}
    if recorded is not None:
        obj["recorded_at"] = recorded
    return json.dumps(obj).encode()


async def ingest(store: ProjectionStore, clock: str, *raws: bytes) -> None:
    projector = Projector(store, "test", clock=lambda: parse_instant(clock))
    prepared = await projector.prepare(
        [Record("f", 0, n + 1, raw, n + 1) for n, raw in enumerate(raws)])
    await store.commit(prepared.commit)


async def known_report(store: ProjectionStore, known_at: str) -> dict[str, object]:
    events = await load_store(store)
    _, totals, _ = fold_history(events, store.calendar, Window(known_at=parse_instant(known_at)))
    return build_report(totals, events.counters(), store.calendar)


async def test_store_keeps_ingestion_time_and_earliest_copy(store: ProjectionStore) -> None:
    call = line("c0", "call.received", "2026-07-01T09:00:00+08:00")  # no recorded_at
    late = line("r6", "power.restored", "2026-07-01T10:00:00+08:00",
                recorded="2026-07-01T18:00:00+08:00")
    await ingest(store, "2026-07-01T12:00:00+08:00", call, late)
    # a second copy of the restoration, recorded earlier, arrives in a later batch
    early = line("r6", "power.restored", "2026-07-01T10:00:00+08:00",
                 recorded="2026-07-01T10:01:00+08:00")
    await ingest(store, "2026-07-02T12:00:00+08:00", early)

    logged = {e.event_id: e.recorded async for e in store.history_events()}
    assert logged == {"c0": parse_instant("2026-07-01T12:00:00+08:00"),
                      "r6": parse_instant("2026-07-01T10:01:00+08:00")}

    before_ingest = await known_report(store, "2026-07-01T11:59:59+08:00")
    assert before_ingest["overall"]["incidents"] == 0  # type: ignore[index]
    assert before_ingest["unattributed"] == 1  # the restoration alone, no call yet
    at_ingest = await known_report(store, "2026-07-01T12:00:00+08:00")
    assert at_ingest["overall"]["restored"] == 1  # type: ignore[index]
    assert at_ingest["duplicate_events"] == 1


async def test_copies_in_one_batch_keep_the_earliest(store: ProjectionStore) -> None:
    await ingest(store, "2026-07-03T00:00:00Z",
                 line("e", "call.received", "2026-07-01T01:00:00Z", "2026-07-01T05:00:00Z"),
                 line("e", "call.received", "2026-07-01T01:00:00Z", "2026-07-01T03:00:00Z"),
                 line("e", "call.received", "2026-07-01T01:00:00Z"))
    logged = [e.recorded async for e in store.history_events()]
    assert logged == [parse_instant("2026-07-01T03:00:00Z")]
