"""The ``ProjectionStore`` contract (projections/ports.py), once per backend.

Each backend subclasses ``StoreContract`` and provides ``make_store``; every
test here then runs against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time
from pathlib import Path

import pytest

from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.ports import Commit, LoggedEvent, ProjectionStore, StalePosition
from projections.stores.memory import MemoryStore
from projections.stores.postgres import PostgresStore
from projections.stores.sqlite import SqliteStore
from projections.totals import WIDTH

BERLIN = DutyCalendar("Europe/Berlin", time(7, 0))


def incident(incident_id: str, **changes: object) -> Incident:
    state = Incident(incident_id, [1_000, 2_000, None, 4_000, None, None, 9_000],
                     grid="G1", area="rural", priority="vulnerable", customers=12,
                     dispatched_at=1_500, dispatched_crew="C1", arrived_crew="C2",
                     merged_into=None, closed_at=None, owner="AG-7")
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def vector(**values: int) -> list[int]:
    v = [0] * WIDTH
    v[0] = values.get("calls", 0)
    v[1] = values.get("incidents", 0)
    return v


def commit(n: int, **changes: object) -> Commit:
    base = Commit(
        consumer="c",
        positions={("src", 0): n * 10},
        events=[LoggedEvent(f"e{n}", f"i{n}", "call.received", n, b'{"n": %d}' % n)],
        incidents=[incident(f"i{n}")],
        calls=[Fact(f"e{n}", "call.received", f"i{n}", n, "G1", "rural")],
        deltas={("", "", "2026-07-01"): vector(calls=1, incidents=1)},
        rejected=1,
        duplicates=2,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


class StoreContract:
    """Every store must pass these."""

    persistent = True

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ProjectionStore]:
        store = self.make_store(tmp_path, BERLIN)
        await store.open()
        yield store
        await store.close()

    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        raise NotImplementedError

    async def test_new_store_is_empty(self, store: ProjectionStore) -> None:
        assert await store.totals() == {}
        assert await store.counters() == {"rejected_events": 0, "duplicate_events": 0,
                                          "conflicting_events": 0}
        assert await store.positions("c") == {}
        assert await store.known_event_ids(["e1"]) == set()
        assert await store.load_incidents(["i1"]) == {}
        assert await store.event_count() == 0

    async def test_commit_writes_every_part(self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        assert await store.known_event_ids(["e1", "e9"]) == {"e1"}
        assert await store.load_incidents(["i1", "i9"]) == {"i1": incident("i1")}
        assert await store.totals() == {("", "", "2026-07-01"): vector(calls=1, incidents=1)}
        assert await store.counters() == {"rejected_events": 1, "duplicate_events": 2,
                                          "conflicting_events": 0}
        assert await store.positions("c") == {("src", 0): 10}
        assert await store.positions("other") == {}
        assert [c async for c in store.all_calls()] == [
            Fact("e1", "call.received", "i1", 1, "G1", "rural")]
        assert await store.incident_events("i1") == [
            LoggedEvent("e1", "i1", "call.received", 1, b'{"n": 1}')]

    async def test_totals_and_counters_add_up(self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        retract = vector(incidents=-1)
        await store.commit(commit(2, deltas={("", "", "2026-07-01"): retract,
                                             ("grid", "G1", "2026-07-02"): vector(calls=3)}))
        assert await store.totals() == {("", "", "2026-07-01"): vector(calls=1),
                                        ("grid", "G1", "2026-07-02"): vector(calls=3)}
        assert await store.counters() == {"rejected_events": 2, "duplicate_events": 4,
                                          "conflicting_events": 0}
        assert await store.positions("c") == {("src", 0): 20}

    async def test_incident_rows_are_replaced(self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        changed = incident("i1", rejected_at=5, merged_at=6, merged_into="i0", closed_at=7,
                           times=[1, 2, 3, 4, 5, 6, 7])
        await store.commit(commit(2, incidents=[changed]))
        assert (await store.load_incidents(["i1"]))["i1"] == changed
        assert {i.incident_id async for i in store.all_incidents()} == {"i1"}

    async def test_stale_position_refuses_whole_commit(self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        with pytest.raises(StalePosition):
            await store.commit(commit(2, expected={("src", 0): 5}))
        assert await store.known_event_ids(["e2"]) == set()
        assert await store.positions("c") == {("src", 0): 10}
        assert await store.counters() == {"rejected_events": 1, "duplicate_events": 2,
                                          "conflicting_events": 0}
        await store.commit(commit(2, expected={("src", 0): 10}))
        assert await store.positions("c") == {("src", 0): 20}

    async def test_unstored_position_counts_as_zero(self, store: ProjectionStore) -> None:
        await store.commit(commit(1, expected={("src", 0): 0}))
        with pytest.raises(StalePosition):
            await store.commit(commit(2, expected={("src", 0): 0}))
        assert await store.positions("c") == {("src", 0): 10}

    async def test_incident_events_in_event_time_order(self, store: ProjectionStore) -> None:
        events = [LoggedEvent("b", "i1", "crew.arrived", 30, b"{}"),
                  LoggedEvent("a", "i1", "call.received", 10, b"{}"),
                  LoggedEvent("c", "i2", "call.received", 20, b"{}")]
        await store.commit(commit(1, events=events))
        assert [e.event_id for e in await store.incident_events("i1")] == ["a", "b"]

    async def test_calendar_is_fixed_at_creation(self, tmp_path: Path) -> None:
        if not self.persistent:
            pytest.skip("not persistent")
        first = self.make_store(tmp_path, BERLIN)
        async with first:
            await first.commit(commit(1))
        again = self.make_store(tmp_path, DutyCalendar())
        async with again:
            assert again.calendar == BERLIN
            assert await again.positions("c") == {("src", 0): 10}


class TestMemoryStore(StoreContract):
    persistent = False

    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        return MemoryStore(calendar)


class TestSqliteStore(StoreContract):
    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        return SqliteStore(tmp_path / "store.db", calendar)


@pytest.mark.servers
class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _dsn(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def make_store(self, tmp_path: Path, calendar: DutyCalendar) -> ProjectionStore:
        return PostgresStore(self.dsn, calendar)
