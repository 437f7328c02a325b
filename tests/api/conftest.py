"""Fixtures of the API tests: a store with a simulated history, on SQLite and PostgreSQL.

The loaded store and its server are shared by the tests of a module (loading and
starting take seconds); tests that write to the store make their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from tests.api.harness import Server, dispatch, serving
from tests.conftest import PG_TEST_DSN, need_server


def history(path: Path, seed: int = 5, days: int = 2, start: date = date(2026, 7, 1)) -> Path:
    plan = SimulationPlan(seed=seed, start=start, days=days, storm_days=(1,) if days > 1 else (),
                          duplicate_rate=0.02, shuffle=True, late_rate=0.02)
    write_jsonl(simulate_lines(plan), path)
    return path


def empty_postgres() -> str:
    need_server("PostgreSQL", "127.0.0.1", int(PG_TEST_DSN.rsplit(":", 1)[1].split("/")[0]))

    async def reset() -> None:
        conn = await asyncpg.connect(PG_TEST_DSN)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(reset())
    return PG_TEST_DSN


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.servers)])
def loaded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``(store URL, events file)``: the store holds the file's events."""
    folder = tmp_path_factory.mktemp("loaded")
    store = (f"sqlite:///{folder / 'store.db'}" if request.param == "sqlite"
             else empty_postgres())
    events = history(folder / "history.jsonl")
    done = dispatch("ingest", str(events), "--store", store, cwd=folder)
    assert done.returncode == 0, done.stderr
    return store, events


@pytest.fixture(scope="module")
def server(loaded: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    with serving(loaded[0], tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.servers)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind, for one test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn
