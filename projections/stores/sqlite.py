"""SQLite store: the embedded engine's event log and read models in one file.

Every ``commit`` is one ``BEGIN IMMEDIATE`` transaction in WAL mode with
``synchronous=FULL``, so a kill at any point leaves either the whole batch (rows
and positions) or none of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any

import orjson

from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.ports import Commit, LoggedEvent, PositionKey, ProjectionStore, StalePosition
from projections.sla import SlaLimits
from projections.stores.migrate import migrations
from projections.stores.rows import (
    COUNTERS,
    INCIDENT_COLUMNS,
    SHIFT_COLUMNS,
    TOTALS_COLUMNS,
    TOTALS_KEY,
    calendar_from_meta,
    calendar_meta,
    incident_from_row,
    incident_row,
    limits_from_meta,
    limits_meta,
    shift_from_row,
    shift_row,
)
from projections.totals import FIELDS, Bucket, Totals

_INCIDENT_UPSERT = (
    f"INSERT INTO incidents ({', '.join(INCIDENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(INCIDENT_COLUMNS))}) ON CONFLICT (incident_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in INCIDENT_COLUMNS[1:])
)
_INCIDENT_SELECT = f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents"
_TOTALS_UPSERT = (
    f"INSERT INTO totals ({', '.join(TOTALS_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(TOTALS_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(TOTALS_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in FIELDS)
)


class SqliteStore(ProjectionStore):
    def __init__(self, path: str | Path, calendar: DutyCalendar | None = None,
                 sla_limits: SlaLimits | None = None) -> None:
        self.path = Path(path)
        self.calendar = calendar or DutyCalendar()
        self.sla_limits = sla_limits or SlaLimits()
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        if self._db is not None:
            return
        if self.path.parent and not self.path.parent.exists():
            raise FileNotFoundError(f"folder {self.path.parent} does not exist")
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache: big batches stay hot
        self._db = db
        self._migrate()
        self._load_or_save_calendar()

    def _migrate(self) -> None:
        current = self.db.execute("PRAGMA user_version").fetchone()[0]
        for version, _name, sql in migrations("sqlite"):
            if version > current:
                # One script, one transaction: the schema and its version move together.
                self.db.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {version};\nCOMMIT;")

    def _load_or_save_calendar(self) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        stored = calendar_from_meta(meta)
        limits = limits_from_meta(meta)
        if stored is not None:
            self.calendar = stored
        if limits is not None:
            self.sla_limits = limits
        if stored is not None and limits is not None:
            return
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "INSERT OR IGNORE INTO meta VALUES (?, ?)",
            calendar_meta(self.calendar) + limits_meta(self.sla_limits))
        self.db.execute("COMMIT")

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def positions(self, consumer: str) -> dict[PositionKey, int]:
        rows = self.db.execute(
            "SELECT source, partition, next_position FROM positions WHERE consumer = ?",
            (consumer,))
        return {(source, partition): position for source, partition, position in rows}

    async def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        # One statement per batch: the ids travel as one JSON array parameter.
        rows = self.db.execute(
            "SELECT event_id FROM event_log WHERE event_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(event_ids)),))
        return {row[0] for row in rows}

    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        rows = self.db.execute(
            f"{_INCIDENT_SELECT} WHERE incident_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(incident_ids)),))
        return {row[0]: incident_from_row(row) for row in rows}

    async def commit(self, commit: Commit) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for (source, partition), expected in commit.expected.items():
                row = db.execute(
                    "SELECT next_position FROM positions "
                    "WHERE consumer = ? AND source = ? AND partition = ?",
                    (commit.consumer, source, partition)).fetchone()
                if (row[0] if row else 0) != expected:
                    raise StalePosition(f"{source}[{partition}] moved to {row}")
            db.executemany(
                "INSERT INTO event_log (event_id, incident_id, type, occurred_us, raw) "
                "VALUES (?, ?, ?, ?, ?)", commit.events)
            calendar = self.calendar
            db.executemany(_INCIDENT_UPSERT, [incident_row(i, calendar) for i in commit.incidents])
            db.executemany(
                "INSERT INTO calls VALUES (?, ?, ?, ?, ?)",
                [(c.event_id, c.incident_id, c.at, c.grid, c.area) for c in commit.calls])
            if commit.shifts:
                db.executemany(
                    f"INSERT INTO shifts ({', '.join(SHIFT_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
                    map(shift_row, commit.shifts))
            db.executemany(_TOTALS_UPSERT, [(*b, *v) for b, v in commit.deltas.items()])
            db.executemany(
                "INSERT INTO counters VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                [("rejected_events", commit.rejected), ("duplicate_events", commit.duplicates)])
            db.executemany(
                "INSERT INTO positions VALUES (?, ?, ?, ?) ON CONFLICT "
                "(consumer, source, partition) DO UPDATE "
                "SET next_position = excluded.next_position",
                [(commit.consumer, s, p, v) for (s, p), v in commit.positions.items()])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def totals(self) -> dict[Bucket, Totals]:
        rows = self.db.execute(f"SELECT {', '.join(TOTALS_COLUMNS)} FROM totals")
        return {(r[0], r[1], r[2]): list(r[3:]) for r in rows if any(r[3:])}

    async def counters(self) -> dict[str, int]:
        stored = dict(self.db.execute("SELECT name, value FROM counters").fetchall())
        return {name: int(stored.get(name, 0)) for name in COUNTERS}

    async def all_incidents(self) -> AsyncIterator[Incident]:
        for row in self.db.execute(_INCIDENT_SELECT):
            yield incident_from_row(row)

    async def all_calls(self) -> AsyncIterator[Fact]:
        for event_id, incident_id, at, grid, area in self.db.execute("SELECT * FROM calls"):
            yield Fact(event_id, "call.received", incident_id, at, grid, area)

    async def shifts(self) -> list[Fact]:
        rows = self.db.execute(f"SELECT {', '.join(SHIFT_COLUMNS)} FROM shifts")
        return [shift_from_row(row) for row in rows]

    async def handover_incidents(self) -> list[Incident]:
        rows = self.db.execute(f"{_INCIDENT_SELECT} WHERE handover_end IS NOT NULL")
        return [incident_from_row(row) for row in rows]

    async def incident_events(self, incident_id: str) -> list[LoggedEvent]:
        rows: Any = self.db.execute(
            "SELECT event_id, incident_id, type, occurred_us, raw FROM event_log "
            "WHERE incident_id = ? ORDER BY occurred_us, event_id", (incident_id,))
        return [LoggedEvent(*row) for row in rows]

    async def event_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM event_log").fetchone()[0])
