"""The live SLA part of the store contract (projections/ports.py), once per backend:
SLA rows and outbox entries written in the commit's transaction, the timer's
``due`` evaluation, at most one outbox entry per alert_id, the event clock, and
the relay's bookkeeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from projections.incident import Incident
from projections.ports import ALERT_RELAY, Commit, ProjectionStore
from projections.sla import SlaLimits
from projections.sla_live import SlaPlan
from projections.stores.memory import MemoryStore
from projections.stores.postgres import PostgresStore
from projections.stores.sqlite import SqliteStore

MINUTE = 60_000_000
T0 = 1_782_864_000_000_000  # 2026-07-01T00:00:00Z
LIMITS = SlaLimits()  # urban arrival 45 min: warning at 33.75, breach at 45


def urban(incident_id: str, t3: int | None = None) -> Incident:
    state = Incident(incident_id, grid="G1", area="urban", priority="normal", owner="AG-1")
    state.times[0] = T0
    state.times[3] = t3
    return state


def batch(n: int, incidents: list[Incident], as_of: int, clock: str = "wall",
          event_us: int | None = None) -> Commit:
    return Commit("worker", {("events", 0): n}, incidents=incidents,
                  sla=SlaPlan(LIMITS, clock, as_of, event_us, tuple(incidents)))


def tick(as_of: int) -> SlaPlan:
    return SlaPlan(LIMITS, "wall", as_of, due=True)


class SlaStoreContract:
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ProjectionStore]:
        store = self.make_store(tmp_path)
        await store.open()
        yield store
        await store.close()

    def make_store(self, tmp_path: Path) -> ProjectionStore:
        raise NotImplementedError

    async def alert_ids(self, store: ProjectionStore) -> list[str]:
        return [e.alert_id for e in await store.alert_outbox()]

    async def test_batch_writes_rows_and_no_alert_while_ok(self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A")], T0 + 10 * MINUTE))
        rows = await store.sla_rows()
        assert [(r.incident_id, r.rule, r.state, r.raised) for r in rows] == \
               [("A", "arrival", "ok", None)]
        assert rows[0].due_us == T0 + 45 * MINUTE * 3 // 4
        assert rows[0].deadline_us == T0 + 45 * MINUTE
        assert (rows[0].area, rows[0].owner, rows[0].limit_minutes) == ("urban", "AG-1", 45.0)
        assert await store.alert_outbox() == []

    async def test_timer_raises_warning_then_breach_once(self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A"), urban("B", t3=T0 + MINUTE)], T0 + MINUTE))
        update = await store.sla_tick(tick(T0 + 34 * MINUTE))
        assert [t.alert_id for t in update.transitions] == ["A/arrival/warning"]
        assert (await store.sla_tick(tick(T0 + 40 * MINUTE))).transitions == []
        await store.sla_tick(tick(T0 + 45 * MINUTE))
        await store.sla_tick(tick(T0 + 46 * MINUTE))
        assert await self.alert_ids(store) == ["A/arrival/warning", "A/arrival/breach"]
        breach = orjson.loads((await store.alert_outbox())[1].payload)
        assert breach == {"alert_id": "A/arrival/breach", "incident_id": "A", "rule": "arrival",
                          "level": "breach", "start": "2026-07-01T00:00:00Z",
                          "deadline": "2026-07-01T00:45:00Z", "limit_minutes": 45.0,
                          "grid": "G1", "area": "urban", "priority": "normal", "owner": "AG-1",
                          "at": "2026-07-01T00:45:00Z"}

    async def test_rows_can_be_limited_to_some_states(self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A"), urban("B", t3=T0 + MINUTE)], T0 + MINUTE))
        await store.sla_tick(tick(T0 + 34 * MINUTE))
        every = [(r.incident_id, r.rule, r.state) for r in await store.sla_rows()]
        assert ("A", "arrival", "warning") in every and len(every) > 1
        alerting = await store.sla_rows(("warning", "breach"))
        assert [(r.incident_id, r.rule, r.state) for r in alerting] == [
            ("A", "arrival", "warning")]
        assert await store.sla_rows(("breach",)) == []

    async def test_arrival_resolves_a_raised_alert_and_drops_the_row(
            self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A")], T0 + 50 * MINUTE))
        assert await self.alert_ids(store) == ["A/arrival/breach"]  # ok -> breach: one jump
        await store.commit(batch(2, [urban("A", t3=T0 + 52 * MINUTE)], T0 + 53 * MINUTE))
        assert await self.alert_ids(store) == ["A/arrival/breach", "A/arrival/resolved"]
        resolved = orjson.loads((await store.alert_outbox())[1].payload)
        assert (resolved["outcome"], resolved["at"]) == ("late", "2026-07-01T00:52:00Z")
        assert [(r.rule, r.state) for r in await store.sla_rows()] == [("restoration", "ok")]

    async def test_rejection_cancels_a_raised_alert(self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A")], T0 + 35 * MINUTE))
        rejected = urban("A")
        rejected.rejected_at = T0 + 36 * MINUTE
        await store.commit(batch(2, [rejected], T0 + 37 * MINUTE))
        entries = await store.alert_outbox()
        assert [e.alert_id for e in entries] == ["A/arrival/warning", "A/arrival/cancelled"]
        assert orjson.loads(entries[1].payload)["outcome"] == "rejected"
        assert await store.sla_rows() == []

    async def test_an_alert_id_is_written_once_even_if_evaluated_again(
            self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A")], T0 + 50 * MINUTE))
        # A stale evaluation (as if another worker had not seen the first one).
        again = Commit("other", {}, sla=SlaPlan(LIMITS, "wall", T0 + 51 * MINUTE, None,
                                                (urban("A"),)))
        await store.commit(again)
        await store.commit(batch(2, [urban("A")], T0 + 52 * MINUTE))
        assert await self.alert_ids(store) == ["A/arrival/breach"]

    async def test_event_clock_is_the_largest_occurred_at(self, store: ProjectionStore) -> None:
        assert await store.sla_event_clock() is None
        await store.commit(batch(1, [urban("A")], 0, "event", T0 + 40 * MINUTE))
        await store.commit(batch(2, [], 0, "event", T0 + 5 * MINUTE))
        assert await store.sla_event_clock() == T0 + 40 * MINUTE
        assert await self.alert_ids(store) == ["A/arrival/warning"]
        await store.sla_tick(SlaPlan(LIMITS, "event", 0, T0 + 45 * MINUTE, due=True))
        assert await self.alert_ids(store) == ["A/arrival/warning", "A/arrival/breach"]

    async def test_relay_bookkeeping(self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A"), urban("B")], T0 + 50 * MINUTE))
        unsent = await store.unsent_alerts()
        assert [e.alert_id for e in unsent] == ["A/arrival/breach", "B/arrival/breach"]
        assert unsent[0].seq < unsent[1].seq
        await store.mark_alerts_sent(["A/arrival/breach"], 123, {("alerts", 2): 8})
        assert [e.alert_id for e in await store.unsent_alerts()] == ["B/arrival/breach"]
        await store.mark_alerts_sent(["B/arrival/breach"], 124, {("alerts", 2): 5})
        assert await store.unsent_alerts() == []
        assert [e.sent_us for e in await store.alert_outbox()] == [123, 124]
        assert await store.positions(ALERT_RELAY) == {("alerts", 2): 8}
        assert await store.claim_alert_relay()

    async def test_prune_deletes_only_entries_sent_before_the_cutoff(
            self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A"), urban("B"), urban("C")], T0 + 50 * MINUTE))
        await store.mark_alerts_sent(["A/arrival/breach"], 100, {})
        await store.mark_alerts_sent(["B/arrival/breach"], 200, {})
        assert await store.prune_alert_outbox(200) == 1  # sent at 100: before the cutoff
        assert await self.alert_ids(store) == ["B/arrival/breach", "C/arrival/breach"]
        assert await store.prune_alert_outbox(10**18) == 1  # C is unsent: it stays
        assert [e.alert_id for e in await store.unsent_alerts()] == ["C/arrival/breach"]
        # A pruned alert is not written again: the raised level is in the SLA state.
        await store.sla_tick(tick(T0 + 60 * MINUTE))
        await store.commit(batch(2, [urban("A")], T0 + 61 * MINUTE))
        assert await self.alert_ids(store) == ["C/arrival/breach"]
        # New entries after a prune get later sequence numbers than the ones kept.
        await store.commit(batch(3, [urban("D")], T0 + 62 * MINUTE))
        seqs = [e.seq for e in await store.alert_outbox()]
        assert seqs == sorted(seqs) and len(set(seqs)) == 2

    async def test_transitions_past_the_horizon_are_recorded_not_published(
            self, store: ProjectionStore) -> None:
        horizon = 60 * MINUTE
        year_later = T0 + 365 * 24 * 60 * MINUTE
        fresh = Incident("F", grid="G1", area="urban", priority="normal", owner="AG-1")
        fresh.times[0] = year_later - 40 * MINUTE  # warning 6.25 min ago: within the horizon
        plan = SlaPlan(LIMITS, "wall", year_later, None, (urban("OLD"), fresh),
                       horizon_us=horizon)
        await store.commit(Commit("worker", {("events", 0): 1},
                                  incidents=[urban("OLD"), fresh], sla=plan))
        entries = {e.alert_id: e for e in await store.alert_outbox()}
        assert sorted(entries) == ["F/arrival/warning", "OLD/arrival/breach"]
        assert entries["OLD/arrival/breach"].withheld
        assert entries["OLD/arrival/breach"].sent_us is not None
        assert not entries["F/arrival/warning"].withheld
        assert [e.alert_id for e in await store.unsent_alerts()] == ["F/arrival/warning"]
        assert [(r.incident_id, r.raised) for r in await store.sla_rows()
                if r.rule == "arrival"] == [("F", "warning"), ("OLD", "breach")]
        # Its resolution, found in time, is published like any other.
        arrived = urban("OLD", t3=year_later + MINUTE)
        await store.commit(Commit("worker", {("events", 0): 2}, incidents=[arrived],
                                  sla=SlaPlan(LIMITS, "wall", year_later + 2 * MINUTE, None,
                                              (arrived,), horizon_us=horizon)))
        assert [e.alert_id for e in await store.unsent_alerts()] == \
               ["F/arrival/warning", "OLD/arrival/resolved"]


class TestMemorySla(SlaStoreContract):
    def make_store(self, tmp_path: Path) -> ProjectionStore:
        return MemoryStore(change_log=True)


class TestSqliteSla(SlaStoreContract):
    def make_store(self, tmp_path: Path) -> ProjectionStore:
        return SqliteStore(tmp_path / "store.db")

    async def test_alert_transitions_reach_the_change_log(self, store: ProjectionStore) -> None:
        await store.commit(batch(1, [urban("A")], T0 + 50 * MINUTE))
        alerts = [c for c in await store.changes_after(0) if c.kind == "alert"]
        assert [c.key for c in alerts] == ["A/arrival/breach"]

    async def test_withheld_transitions_stay_out_of_the_change_log(
            self, store: ProjectionStore) -> None:
        plan = SlaPlan(LIMITS, "wall", T0 + 50 * 24 * 60 * MINUTE, None, (urban("A"),),
                       horizon_us=24 * 60 * MINUTE)
        await store.commit(Commit("w", {("events", 0): 1}, incidents=[urban("A")], sla=plan))
        assert [e.alert_id for e in await store.alert_outbox()] == ["A/arrival/breach"]
        assert [c for c in await store.changes_after(0) if c.kind == "alert"] == []


@pytest.mark.servers
class TestPostgresSla(SlaStoreContract):
    @pytest.fixture(autouse=True)
    def _dsn(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def make_store(self, tmp_path: Path) -> ProjectionStore:
        return PostgresStore(self.dsn)
