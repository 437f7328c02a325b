"""The SQLite migrator applies every shipped migration it has not recorded,
whatever its number, and upgrades stores that only carry ``PRAGMA user_version``."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from projections.stores import sqlite as sqlite_store
from projections.stores.migrate import migrations
from projections.stores.sqlite import SqliteStore

SHIPPED = migrations("sqlite")
AFTER_7 = [number for number, _n, _s in SHIPPED if number > 7]
"""Shipped migrations a store left at version 7 by the old migrator still lacks."""


def open_and_close(path: Path) -> None:
    store = SqliteStore(path)
    asyncio.run(store.open())
    asyncio.run(store.close())


def recorded(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in
                db.execute("SELECT version FROM schema_migrations ORDER BY version")]


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def store_made_by_old_code(path: Path, version: int) -> None:
    """A store as the migrator before ``schema_migrations`` left it at ``version``:
    migrations up to ``version`` applied, only ``user_version`` telling so."""
    db = sqlite3.connect(path, isolation_level=None)
    for number, _name, sql in SHIPPED:
        if number <= version:
            for statement in sqlite_store.statements(sql):
                db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    db.close()


def with_extra(monkeypatch: pytest.MonkeyPatch, *extra: tuple[int, str, str]) -> None:
    shipped = sorted([*SHIPPED, *extra])
    monkeypatch.setattr(sqlite_store, "migrations", lambda dialect: shipped)


# Not idempotent on purpose: applying one twice fails with "table already exists".
LATER = (912, "0912_later.sql", "CREATE TABLE later_table (x INTEGER);")
LOWER = (908, "0908_lower.sql", "CREATE TABLE lower_table (x INTEGER);\n"
                                "INSERT INTO lower_table VALUES (1);")


def test_a_fresh_store_records_every_shipped_migration(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    open_and_close(path)
    assert recorded(path) == [number for number, _n, _s in SHIPPED]
    assert user_version(path) == SHIPPED[-1][0]
    open_and_close(path)  # nothing pending: opening again changes nothing
    assert recorded(path) == [number for number, _n, _s in SHIPPED]


def test_an_old_store_gets_a_later_then_a_lower_numbered_migration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    store_made_by_old_code(path, 7)
    assert "schema_migrations" not in tables(path)

    with_extra(monkeypatch, LATER)
    open_and_close(path)
    # 1..7 counted as applied (not run again: 0001 would fail on existing tables).
    assert recorded(path) == sorted([*range(1, 8), *AFTER_7, 912])
    assert "later_table" in tables(path)
    assert user_version(path) == 912

    with_extra(monkeypatch, LATER, LOWER)
    open_and_close(path)
    assert recorded(path) == sorted([*range(1, 8), *AFTER_7, 908, 912])
    assert "lower_table" in tables(path)
    assert user_version(path) == 912  # the highest applied, not the last one
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM lower_table").fetchone()[0] == 1

    open_and_close(path)  # and never twice
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM lower_table").fetchone()[0] == 1


def test_an_old_store_with_nothing_pending_is_not_written(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store_made_by_old_code(path, SHIPPED[-1][0])
    open_and_close(path)  # meta is stamped (calendar, limits) but no migration runs
    assert "schema_migrations" not in tables(path)
    assert user_version(path) == SHIPPED[-1][0]


def test_stores_opened_at_once_apply_each_missing_migration_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    store_made_by_old_code(path, 7)
    with_extra(monkeypatch, LATER, LOWER)
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def opener() -> None:
        try:
            start.wait()
            open_and_close(path)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert recorded(path) == sorted([*range(1, 8), *AFTER_7, 908, 912])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM lower_table").fetchone()[0] == 1

