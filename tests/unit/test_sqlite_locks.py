"""The SQLite store waits out another process's lock wherever SQLite answers
``SQLITE_BUSY`` without consulting the busy timeout."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from projections.stores.sqlite import SqliteStore


def open_and_close(path: Path) -> None:
    store = SqliteStore(path)
    asyncio.run(store.open())
    asyncio.run(store.close())


def test_a_new_store_opens_while_another_process_writes_the_file_first(
        tmp_path: Path) -> None:
    """Two processes creating one store: the other one is mid-write, still in
    rollback-journal mode. SQLite fails the switch to WAL at once there (the busy
    timeout is not consulted), so opening must wait for that write, not fail."""
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE first_writer (x)")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    released = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    began = time.monotonic()
    released.start()
    try:
        open_and_close(path)
        waited = time.monotonic() - began
    finally:
        released.join()
        other.close()
    assert waited >= 0.3  # it did meet the other writer's lock, and waited for it
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] > 0


class RecoveringOnce:
    """A connection whose first ``BEGIN IMMEDIATE`` meets another process
    rebuilding the WAL index (``SQLITE_BUSY_RECOVERY``), as after a killed writer."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.refused = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE" and self.refused == 0:
            self.refused += 1
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY_RECOVERY
            raise busy
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_writing_waits_out_a_wal_recovery_in_another_process(tmp_path: Path) -> None:
    async def scenario() -> RecoveringOnce:
        store = SqliteStore(tmp_path / "store.db")
        await store.open()
        recovering = RecoveringOnce(store.db)
        store._db = recovering  # type: ignore[assignment]
        try:
            async with store.writing():
                assert store.db.in_transaction
        finally:
            store._db = recovering.db
            await store.close()
        return recovering

    assert asyncio.run(scenario()).refused == 1
