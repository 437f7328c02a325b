"""The change log of the stores (projections/changes.py), once per backend.

Every committed batch appends its incident and period changes in the same
transaction, numbered by a store-wide sequence in commit order; the final
change of each incident and period equals an independent fold (tests/oracle.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path

import orjson
import pytest

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from projections.changes import period_detail, public_data
from projections.duty import DutyCalendar
from projections.ports import Change, ChangeWindow, NewChange, ProjectionStore, StalePosition
from projections.queries import duty_report
from projections.runners.embedded import ingest_files
from projections.stores.memory import MemoryStore
from projections.stores.postgres import PostgresStore
from projections.stores.sqlite import SqliteStore
from tests.accountability_oracle import compare_accountability, oracle_accountability
from tests.contract.test_store_contract import BERLIN, commit, vector
from tests.oracle import compare_reports, fold, incidents_of, oracle_report

DAY_US = 86_400_000_000


async def everything(store: ProjectionStore) -> list[Change]:
    out: list[Change] = []
    while batch := await store.changes_after(out[-1].seq if out else 0, limit=7):
        out += batch
    return out


class ChangeLogContract:
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ProjectionStore]:
        store = self.make_store(tmp_path, BERLIN)
        await store.open()
        yield store
        await store.close()

    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        raise NotImplementedError

    async def test_empty_log(self, store: ProjectionStore) -> None:
        assert store.change_log
        assert await store.changes_after(0) == []
        assert await store.change_window() == ChangeWindow(0, 0)

    async def test_each_commit_appends_its_incidents_and_periods(
            self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        await store.commit(commit(2, deltas={("", "", "2026-07-01"): vector(calls=2),
                                             ("grid", "G1", "2026-07-02"): vector(calls=3)}))
        changes = await everything(store)
        assert [(c.seq, c.kind, c.key) for c in changes] == [
            (1, "incident", "i1"), (2, "period", "2026-07-01"),
            (3, "incident", "i2"), (4, "period", "2026-07-01")]
        # The period change carries the committed total, not the delta.
        last = public_data(changes[-1], store.calendar)
        assert (last["calls"], last["incidents"]) == (3, 1)
        assert last["start"] == "2026-07-01T07:00:00+02:00"
        first = public_data(changes[0], store.calendar)
        assert first["incident_id"] == "i1"
        assert first["state"] == "restored"
        assert first["checkpoints"]["call"] == BERLIN.format_instant(1_000)
        assert first["stages_minutes"]["verify"] == 1_000 / 60_000_000
        assert await store.change_window() == ChangeWindow(0, 4)
        assert [c.seq for c in await store.changes_after(2, limit=1)] == [3]

    async def test_extra_changes_are_appended_verbatim(self, store: ProjectionStore) -> None:
        alert = orjson.dumps({"incident_id": "i1", "rule": "arrival", "level": "breach"})
        await store.commit(commit(1, incidents=[], deltas={},
                                  changes=[NewChange("alert", "i1/arrival/breach", alert)]))
        [change] = await everything(store)
        assert (change.kind, change.key, change.data) == ("alert", "i1/arrival/breach", alert)

    async def test_a_refused_commit_appends_nothing(self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        with pytest.raises(StalePosition):
            await store.commit(commit(2, expected={("src", 0): 5}))
        assert [c.seq for c in await everything(store)] == [1, 2]
        await store.commit(commit(2, expected={("src", 0): 10}))
        assert [c.seq for c in await everything(store)] == [1, 2, 3, 4]

    async def test_pruning_keeps_the_newest_and_never_reuses_a_sequence(
            self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        committed = (await everything(store))[-1].committed_us
        assert await store.prune_changes(committed + 1) == 0  # within retention
        assert await store.prune_changes(committed + 8 * DAY_US) == 2
        assert await store.changes_after(0) == []
        assert await store.change_window() == ChangeWindow(2, 2)
        await store.commit(commit(2))
        assert [c.seq for c in await everything(store)] == [3, 4]
        assert await store.change_window() == ChangeWindow(2, 4)


class TestMemoryChangeLog(ChangeLogContract):
    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        return MemoryStore(calendar, change_log=True)


class TestSqliteChangeLog(ChangeLogContract):
    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        return SqliteStore(tmp_path / "store.db", calendar)

    async def test_pruning_happens_on_commit_after_the_retention(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "store.db", BERLIN, change_retention_days=1e-6)
        async with store:
            await store.commit(commit(1))
            await asyncio.sleep(0.2)  # 1e-6 days = 86 ms
            await store.commit(commit(2))
            assert [c.seq for c in await everything(store)] == [3, 4]
            assert (await store.change_window()).pruned_through == 2


@pytest.mark.servers
class TestPostgresChangeLog(ChangeLogContract):
    @pytest.fixture(autouse=True)
    def _dsn(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        return PostgresStore(self.dsn, calendar)

    async def test_concurrent_writers_never_let_a_reader_skip_a_change(
            self, store: ProjectionStore) -> None:
        """Two writers commit at once while a reader tails ``seq > last``: if a
        smaller sequence could become visible after a larger one, the reader
        would miss it."""
        writers = [self.make_store(Path(), BERLIN) for _ in range(2)]
        for writer in writers:
            await writer.open()
        seen: list[int] = []
        done = asyncio.Event()

        async def write(w: int) -> None:
            for n in range(40):
                await writers[w].commit(commit(1000 * (w + 1) + n, positions={
                    (f"src{w}", 0): n + 1}))

        async def read() -> None:
            while True:
                finished = done.is_set()
                batch = await store.changes_after(seen[-1] if seen else 0)
                seen.extend(c.seq for c in batch)
                if finished and not batch:
                    return

        reader = asyncio.create_task(read())
        try:
            await asyncio.gather(write(0), write(1))
        finally:
            done.set()
            await reader
            for writer in writers:
                await writer.close()
        assert seen == list(range(1, 161))


# -- the log against an independent fold ------------------------------------------------

def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    plan = SimulationPlan(seed=11, start=date(2026, 3, 27), days=3, storm_days=(1,),
                          duplicate_rate=0.03, shuffle=True, late_rate=0.05, skew_rate=0.02)
    write_jsonl(simulate_lines(plan), path)
    return path


async def _check_final_states(store: ProjectionStore, events: Path) -> None:
    lines = events.read_text(encoding="utf-8").splitlines()  # noqa: ASYNC240
    summary = await ingest_files(store, [events], batch_size=300)
    assert summary.accepted > 1000
    changes = await everything(store)
    assert [c.seq for c in changes] == list(range(1, len(changes) + 1))
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:
        latest[(change.kind, change.key)] = change
    oracle = oracle_report(lines)
    periods = [public_data(c, store.calendar) for (kind, _), c in sorted(latest.items())
               if kind == "period"]
    periods = [p for p in periods if p["calls"] or p["incidents"]]
    assert compare_reports({**oracle, "duty_periods": periods}, oracle) == []

    # With the periods' context read from the store, each final period change is the
    # report's period row, accountability block included.
    days = [key for (kind, key) in latest if kind == "period"]
    detail = period_detail(await store.period_context(days), store.calendar)
    full = [public_data(c, store.calendar, detail=detail) for (kind, _), c
            in sorted(latest.items()) if kind == "period"]
    full = [p for p in full if p["calls"] or p["incidents"]]
    want = oracle_accountability(lines, store.calendar.timezone, store.calendar.start_text)
    assert compare_accountability({"duty_periods": full,
                                   "overall": {"accountability": want["overall"]}}, want) == []
    assert any(p["accountability"]["handover"] for p in full)
    assert any(p["accountability"]["team"] for p in full)
    assert full == (await duty_report(store))["duty_periods"]

    accepted, _, _ = fold(lines)
    expected = incidents_of(accepted)
    got = {key: public_data(c, store.calendar) for (kind, key), c in latest.items()
           if kind == "incident"}
    assert got.keys() == expected.keys()
    names = dict(enumerate(
        ("call", "verify", "depart", "arrive", "diagnose", "repair", "restore")))
    for incident_id, oracle_incident in expected.items():
        checkpoints = got[incident_id]["checkpoints"]
        for k, name in names.items():
            want = oracle_incident.checkpoints.get(k)
            text = checkpoints[name]
            assert (None if text is None else datetime.fromisoformat(text)) == want, (
                incident_id, name)
        assert (got[incident_id]["state"] in ("rejected", "merged")) == oracle_incident.ended
    assert sum(p["calls"] for p in periods) == oracle["overall"]["calls"]


async def test_memory_log_replays_to_the_oracle(tmp_path: Path) -> None:
    async with MemoryStore(change_log=True) as store:
        await _check_final_states(store, _events(tmp_path))


async def test_sqlite_log_replays_to_the_oracle(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        await _check_final_states(store, _events(tmp_path))


@pytest.mark.servers
async def test_postgres_log_replays_to_the_oracle(tmp_path: Path, pg_dsn: str) -> None:
    async with PostgresStore(pg_dsn) as store:
        await _check_final_states(store, _events(tmp_path))
