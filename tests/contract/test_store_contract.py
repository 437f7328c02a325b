"""The ``ProjectionStore`` contract (projections/ports.py), once per backend.

Each backend subclasses ``StoreContract`` and provides ``make_store``; every
test here then runs against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, time
from pathlib import Path

import pytest

from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.ports import Commit, LoggedEvent, ProjectionStore, StalePosition, StoreError
from projections.sla import SlaLimits
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

    def make_store(self, tmp_path: Path, calendar: DutyCalendar,
                   sla_limits: SlaLimits | None = None) -> ProjectionStore:
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

    async def test_bulk_loading_keeps_what_the_store_holds(
            self, store: ProjectionStore) -> None:
        first = [LoggedEvent("b", "i1", "crew.arrived", 30, b"{}", 70),
                 LoggedEvent("a", "i1", "call.received", 10, b"{}", 60)]
        async with store.writing():
            async with store.bulk_loading():
                await store.stage(Commit("c", positions={}, events=first))
                await store.stage(Commit("c", positions={}, recorded_updates={"a": 40, "b": 90},
                                         events=[LoggedEvent("c", "i2", "call.received", 20,
                                                             b"{}", 80)]))
            await store.stage(commit(9))
            await store.finish()
        assert await store.event_count() == 4
        assert await store.known_event_ids(["a", "b", "c", "e9", "z"]) == {"a", "b", "c", "e9"}
        assert await store.incident_events("i1") == [
            LoggedEvent("a", "i1", "call.received", 10, b"{}", 40),
            LoggedEvent("b", "i1", "crew.arrived", 30, b"{}", 70)]
        assert await store.positions("c") == {("src", 0): 90}

    async def test_new_rows_are_written_as_given(self, store: ProjectionStore) -> None:
        await store.commit(commit(1, new_rows=True))
        other = {("grid", "G1", "2026-07-02"): vector(calls=3)}
        await store.commit(commit(2, new_rows=True, deltas=other))
        assert await store.load_incidents(["i1", "i2"]) == {"i1": incident("i1"),
                                                            "i2": incident("i2")}
        assert await store.totals() == {("", "", "2026-07-01"): vector(calls=1, incidents=1),
                                        **other}
        assert await store.positions("c") == {("src", 0): 20}

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

    # -- duty accountability ---------------------------------------------------------

    async def test_shift_facts_are_kept(self, store: ProjectionStore) -> None:
        shifts = [Fact("s1", "duty.shift_started", "", 100, team="A", leader="L1",
                       members=("M1", "M2")),
                  Fact("s2", "duty.shift_started", "", 200, team="B", leader="L2")]
        await store.commit(commit(1, shifts=shifts))
        await store.commit(commit(2))
        assert sorted(await store.shifts()) == shifts

    async def test_accountability_fields_round_trip(self, store: ProjectionStore) -> None:
        owned = incident("i1", owner="AG-7", call_event_id="e1", callbacks=1 | 2 | 8,
                         arrived_crews=("C1", "C2"))
        await store.commit(commit(1, incidents=[owned]))
        assert (await store.load_incidents(["i1"]))["i1"] == owned
        assert [i async for i in store.all_incidents()] == [owned]

    async def test_handover_incidents_are_those_open_at_their_period_end(
            self, store: ProjectionStore) -> None:
        start, end = BERLIN.bounds(date(2026, 7, 1))

        def at(t0: int, t6: int | None, **changes: object) -> Incident:
            return incident(f"i{t0}-{t6}", times=[t0, None, None, None, None, None, t6],
                            **changes)

        rows = [at(start, None), at(start + 1, end), at(end - 1, end - 2),
                at(start + 2, end - 1), at(start + 3, None, rejected_at=start + 4),
                incident("no-call", times=[None] * 6 + [end + 5])]
        await store.commit(commit(1, incidents=rows))
        found = {i.incident_id for i in await store.handover_incidents()}
        assert found == {rows[0].incident_id, rows[1].incident_id}
        rows[0].times[6] = start + 10  # restored within the period: off the list
        await store.commit(commit(2, incidents=[rows[0]]))
        assert {i.incident_id for i in await store.handover_incidents()} == {
            rows[1].incident_id}

    async def test_sla_limits_are_fixed_at_creation(self, tmp_path: Path) -> None:
        if not self.persistent:
            pytest.skip("not persistent")
        strict = SlaLimits({"arrival": {"urban": 20, "rural": 60, "remote": 90},
                            "restoration": {"urban": 120, "rural": 180, "remote": 200}},
                           {"arrival": 15, "restoration": 60})
        first = self.make_store(tmp_path, BERLIN, strict)
        async with first:
            assert first.sla_limits == strict
        again = self.make_store(tmp_path, BERLIN, SlaLimits())
        async with again:
            assert again.sla_limits == strict


class TestMemoryStore(StoreContract):
    persistent = False

    def make_store(self, tmp_path: Path, calendar: DutyCalendar,
                   sla_limits: SlaLimits | None = None) -> ProjectionStore:
        return MemoryStore(calendar, sla_limits=sla_limits)


class TestSqliteStore(StoreContract):
    def make_store(self, tmp_path: Path, calendar: DutyCalendar,
                   sla_limits: SlaLimits | None = None) -> ProjectionStore:
        return SqliteStore(tmp_path / "store.db", calendar, sla_limits=sla_limits)


@pytest.mark.servers
class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _dsn(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def make_store(self, tmp_path: Path, calendar: DutyCalendar,
                   sla_limits: SlaLimits | None = None) -> ProjectionStore:
        return PostgresStore(self.dsn, calendar, sla_limits=sla_limits)

    @staticmethod
    async def indexes(store: ProjectionStore) -> list[tuple[str, str]]:
        assert isinstance(store, PostgresStore)
        rows = await store.conn.fetch("SELECT indexname, indexdef FROM pg_indexes "
                                      "WHERE tablename = 'event_log' ORDER BY indexname")
        keys = await store.conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'event_log'::regclass ORDER BY conname")
        return [(r[0], r[1]) for r in (*rows, *keys)]

    async def test_bulk_loading_sets_the_indexes_aside_and_builds_them_again(
            self, store: ProjectionStore) -> None:
        before = await self.indexes(store)
        assert len(before) == 5  # sequence number, event id, incident id; two keys
        async with store.writing():
            async with store.bulk_loading():
                assert await self.indexes(store) == []
                await store.stage(commit(1))
            assert await self.indexes(store) == before
            await store.finish()
        assert await self.indexes(store) == before
        with pytest.raises(StoreError, match="unique"):  # enforced again by the build
            async with store.writing(), store.bulk_loading():
                await store.stage(commit(2))
                await store.stage(Commit("c", positions={}, events=commit(1).events))
        assert await self.indexes(store) == before
        assert await store.known_event_ids(["e1", "e2"]) == {"e1"}  # rolled back

    async def test_new_rows_already_stored_fail_the_commit(
            self, store: ProjectionStore) -> None:
        await store.commit(commit(1))
        for clash in ({"incidents": [incident("i1")]},
                      {"deltas": {("", "", "2026-07-01"): vector(calls=1)}}):
            with pytest.raises(StoreError, match="duplicate key"):
                await store.commit(commit(2, new_rows=True, **clash))
        assert await store.positions("c") == {("src", 0): 10}
        assert await store.totals() == {("", "", "2026-07-01"): vector(calls=1, incidents=1)}

    async def test_readers_of_the_event_log_wait_for_a_bulk_load(
            self, store: ProjectionStore) -> None:
        reader = store.sibling()
        assert isinstance(reader, PostgresStore)
        async with reader:
            await reader.conn.execute("SET lock_timeout = '200ms'")
            async with store.writing():
                async with store.bulk_loading():
                    await store.stage(commit(1))
                    with pytest.raises(StoreError, match="lock timeout"):
                        await reader.event_count()
                await store.finish()
            assert await reader.event_count() == 1

    async def test_bulk_loading_is_undone_with_its_block(self, store: ProjectionStore) -> None:
        before = await self.indexes(store)
        with pytest.raises(ZeroDivisionError):
            async with store.writing(), store.bulk_loading():
                await store.stage(commit(1))
                raise ZeroDivisionError
        assert await self.indexes(store) == before
        assert await store.event_count() == 0
        with pytest.raises(RuntimeError, match="writing"):
            async with store.bulk_loading():
                pass
