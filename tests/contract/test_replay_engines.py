"""The columnar replay writes the rows the exact replay writes, table by table.

Random histories (``histories(conflicts=True)``: duplicates, conflicting copies,
DST zones, odd duty starts, hostile lines) plus shift and roster events, copies
recorded at other times, events without ``recorded_at`` (known from their log
timestamp, or from the time of the replay when the log keeps none) and messages
that cannot be a line of their own (line breaks, a carriage return, a NUL byte,
nothing), published on a partitioned log: ``replay(columnar=False)`` into one
store, ``replay(columnar=True)`` into another, then every table compared: the
event log in order (its sequence numbers aside), the incidents, calls, totals
(all-zero buckets aside: module contract of ``replay_columnar``), counters,
positions (at offset 0 or absent alike) and shift rows; and the rejected messages
and what the summaries count. On SQLite by hypothesis, on PostgreSQL for simulated
days.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import projections.runners.replay_columnar
from projections.columnar import NotColumnar
from projections.duty import DutyCalendar, parse_duty_start
from projections.line_index import RecordRows
from projections.ports import ProjectionStore, Rejected
from projections.runners.replay import LogMessage, ReplaySummary, planned, replay
from projections.runners.replay_columnar import validate_log
from projections.stores.postgres import PostgresStore
from projections.stores.rows import TOTALS_KEY
from projections.stores.sqlite import SqliteStore
from tests.unit.test_columnar import VALID
from tests.unit.test_replay import ListLog, history_lines
from tests.unit.test_report_oracle import PROPERTY_SETTINGS, histories

TOPIC = "outage.events"
GROUP = "dispatch-projector"
NOW = 1_790_000_000_000_000
"""The replay's clock: when messages whose log keeps no timestamp were read."""
TABLES = {
    "event_log": ("SELECT event_id, incident_id, type, occurred_us, raw, recorded_us "
                  "FROM event_log ORDER BY seq"),
    "incidents": "SELECT * FROM incidents ORDER BY incident_id",
    "calls": "SELECT * FROM calls ORDER BY event_id",
    "totals": f"SELECT * FROM totals ORDER BY {', '.join(TOTALS_KEY)}",
    "counters": "SELECT * FROM counters ORDER BY name",
    "positions": "SELECT * FROM positions ORDER BY consumer, source, partition",
    "shifts": "SELECT * FROM shifts ORDER BY event_id",
}
ODD = [b"", b"   ", b"{\"event_id\": \"x1\",\n\"type\": \"call.received\"}",
       b"\r", b"{\"a\": 1}\x00", json.dumps(VALID[0]).replace(", ", ",\n").encode(),
       json.dumps({**VALID[1], "event_id": "crlf"}).replace(", ", ",\r\n").encode()]
"""Messages that cannot stand as one line (the last two valid JSON, so accepted)."""


class StampedLog(ListLog):
    """``ListLog`` whose messages may have no log timestamp (an old message format)."""

    def __init__(self, partitions: int, unstamped: set[int]) -> None:
        super().__init__(partitions)
        self.unstamped = unstamped
        self.count = 0

    def read(self, starts: dict[int, int], stops: dict[int, int],
             max_messages: int) -> Iterator[list[LogMessage]]:
        for chunk in super().read(starts, stops, max_messages):
            yield [m._replace(timestamp_us=None) if (m.partition, m.offset) in self.unstamped
                   else m for m in chunk]


def run_replay(store: ProjectionStore, log: ListLog, columnar: bool,
               chunk: int) -> tuple[ReplaySummary, list[Rejected]]:
    rejected: list[Rejected] = []

    async def go() -> ReplaySummary:
        async with store:
            return await replay(store, log, GROUP, columnar=columnar, chunk=chunk,
                                on_rejected=rejected.append, ingestion_clock=lambda: NOW)
    return asyncio.run(go()), rejected


def without_zero_totals(table: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows equal to no row: all-zero totals, and positions at offset 0 (a partition with
    no row is read at 0; the exact replay writes one only when it commits that key)."""
    if table == "totals":
        return [r for r in rows if any(r[len(TOTALS_KEY):])]
    if table == "positions":
        return [r for r in rows if r[-1] != 0]
    return rows


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        return {t: without_zero_totals(t, db.execute(q).fetchall()) for t, q in TABLES.items()}


def postgres_tables(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    async def read() -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(dsn)
        try:
            return {t: without_zero_totals(t, [tuple(r) for r in await conn.fetch(q)])
                    for t, q in TABLES.items()}
        finally:
            await conn.close()
    return asyncio.run(read())


def assert_same_outcome(exact: tuple[ReplaySummary, list[Rejected]],
                        columnar: tuple[ReplaySummary, list[Rejected]]) -> None:
    (one, one_rejected), (other, other_rejected) = exact, columnar
    assert "store" in other.phases and "read and validate" in one.phases  # each engine ran
    counted = ("messages", "accepted", "duplicates", "rejected", "conflicts", "stop")
    assert ({k: getattr(other, k) for k in counted} == {k: getattr(one, k) for k in counted})
    # The same messages for the same reasons (the columnar path reports them in read order).
    assert (sorted(other_rejected, key=str) == sorted(one_rejected, key=str))


def assert_same_tables(exact: dict[str, list[tuple[Any, ...]]],
                       columnar: dict[str, list[tuple[Any, ...]]]) -> None:
    for table in TABLES:
        assert columnar[table] == exact[table], table
    assert exact["event_log"] and exact["positions"]  # something was compared


@st.composite
def logs(draw: st.DrawFn) -> tuple[StampedLog, DutyCalendar]:
    history = draw(histories(conflicts=True))
    rng = random.Random(draw(st.integers(0, 2**32)))
    lines = [_maybe_unrecorded(line, rng).encode() for line in history.lines]
    extras = draw(st.lists(st.sampled_from(range(len(VALID))), max_size=4))
    lines += [json.dumps(VALID[i]).encode() for i in extras]  # shifts, rosters, callbacks
    events = [obj for obj in map(_object, lines)
              if obj is not None and isinstance(obj.get("occurred_at"), str)]
    for _ in range(draw(st.integers(0, 3)) if events else 0):  # recorded at another time
        obj = dict(draw(st.sampled_from(events)))
        if draw(st.booleans()):
            obj["recorded_at"] = obj["occurred_at"]
        else:
            obj.pop("recorded_at", None)
        lines.append(json.dumps(obj).encode())
    lines += draw(st.lists(st.sampled_from(ODD), max_size=3))
    order = draw(st.permutations(range(len(lines))))
    partitions = draw(st.integers(1, 4))
    log = StampedLog(partitions, set())
    for i in order:
        log.publish(lines[i], tick_us=draw(st.sampled_from((1, 1000, 60_000_000))))
    every = [(p, o) for p, ms in log.messages.items() for o in range(len(ms))]
    log.unstamped = (set(draw(st.lists(st.sampled_from(every), max_size=len(every) // 3)))
                     if every else set())
    return log, DutyCalendar(history.zone, parse_duty_start(history.duty_start))


def _object(raw: str | bytes) -> dict[str, Any] | None:
    """The JSON object of a line, None for a malformed line or any other value."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _maybe_unrecorded(line: str, rng: random.Random) -> str:
    """A third of the events without ``recorded_at``: known from their log timestamp."""
    obj = _object(line) if rng.random() < 1 / 3 else None
    if obj is None or "recorded_at" not in obj:
        return line
    del obj["recorded_at"]
    return json.dumps(obj)


@PROPERTY_SETTINGS
@given(logs(), st.sampled_from((5, 23, 50_000)))
def test_columnar_replay_writes_the_rows_of_the_exact_replay_sqlite(
        tmp_path_factory: pytest.TempPathFactory, case: tuple[StampedLog, DutyCalendar],
        chunk: int) -> None:
    log, calendar = case
    folder = tmp_path_factory.mktemp("engines")
    outcomes, tables = [], []
    for columnar in (False, True):
        path = folder / f"{'columnar' if columnar else 'exact'}.db"
        outcomes.append(run_replay(SqliteStore(path, calendar), log, columnar, chunk))
        tables.append(sqlite_tables(path))
    assert_same_outcome(*outcomes)
    assert_same_tables(*tables)
    assert_export_reads_the_event_log(log, chunk, outcomes[0], tables[0]["event_log"])


def assert_export_reads_the_event_log(log: ListLog, chunk: int,
                                      exact: tuple[ReplaySummary, list[Rejected]],
                                      event_log: list[tuple[Any, ...]]) -> None:
    """``validate_log`` (``export --from-topic``: no store) keeps the events, known
    times and rejected messages of the exact replay, and counts what it does."""
    summary = planned(log)
    events, rejected = validate_log(log, summary, clock=lambda: NOW, chunk=chunk)
    try:
        kept = events.db.execute(
            "SELECT eid, iid, typ, ts, known FROM facts ORDER BY n").fetchall()
    finally:
        events.db.close()
    assert kept == [(e, i, t, at, known) for e, i, t, at, _, known in event_log]
    assert sorted(rejected, key=str) == sorted(exact[1], key=str)
    counted = ("messages", "accepted", "duplicates", "rejected", "conflicts")
    assert ({k: getattr(summary, k) for k in counted}
            == {k: getattr(exact[0], k) for k in counted})


@pytest.mark.servers
@pytest.mark.parametrize("seed", [5, 11])
def test_columnar_replay_writes_the_rows_of_the_exact_replay_postgres(
        pg_dsn: str, seed: int) -> None:
    lines = history_lines(days=2, seed=seed)
    shuffled = random.Random(seed)
    lines += [json.dumps(v).encode() for v in VALID] + ODD
    shuffled.shuffle(lines)
    log = StampedLog(3, set())
    for raw in lines:
        log.publish(raw)
    log.unstamped = {(0, 3), (1, 0), (2, 5)}
    calendar = DutyCalendar("Europe/Berlin", parse_duty_start("20:00"))
    outcomes, tables = [], []
    for columnar in (False, True):
        asyncio.run(_empty(pg_dsn))
        outcomes.append(run_replay(PostgresStore(pg_dsn, calendar), log, columnar, 500))
        tables.append(postgres_tables(pg_dsn))
    assert outcomes[0][0].rejected > 0 and outcomes[0][0].duplicates > 0
    assert_same_outcome(*outcomes)
    assert_same_tables(*tables)


async def _empty(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def test_a_columnar_replay_stopped_at_its_last_chunk_rolls_back_and_replays_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: the chunks staged before the columnar engine gave up are rolled back,
    so the exact engine replays into the empty store and writes the same rows; the
    rejected messages of those chunks are reported once."""
    lines = history_lines(days=1, seed=7)
    log = StampedLog(3, set())
    for raw in lines:
        log.publish(raw)
    calendar = DutyCalendar()
    exact = run_replay(SqliteStore(tmp_path / "exact.db", calendar), log, False, 100)
    add_records = projections.runners.replay_columnar.add_records
    failed: list[int] = []

    def last_chunk_fails(events: Any, rows: RecordRows, *args: Any) -> Any:
        if rows.row_base + rows.rows == len(lines):
            failed.append(rows.row_base)
            raise NotColumnar("rows do not match")
        return add_records(events, rows, *args)

    monkeypatch.setattr(projections.runners.replay_columnar, "add_records", last_chunk_fails)
    fallback = run_replay(SqliteStore(tmp_path / "fallback.db", calendar), log, True, 100)
    assert len(failed) == 1 and failed[0] >= 200  # chunks were staged before it gave up
    assert "read and validate" in fallback[0].phases
    assert sqlite_tables(tmp_path / "fallback.db") == sqlite_tables(tmp_path / "exact.db")
    assert fallback[0].accepted == exact[0].accepted > 200
    assert fallback[1] == exact[1] and exact[1]  # each rejected message reported once
