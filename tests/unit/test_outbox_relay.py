"""The outbox relay on an SQLite store with an in-memory topic: nothing is marked
published before the topic acknowledged it, a failed publish leaves the rows for
the next try, every row goes out with its key and original bytes, a relay that
died between publishing and marking is followed by one that publishes nothing
twice, and only one relay per store runs."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from dispatch.api.relay import OutboxRelay
from projections.ports import EVENT_RELAY, Commit, OutboxEntry, PositionKey
from projections.stores.sqlite import SqliteStore

TOPIC = "events"


class FakeTopic:
    """Two partitions of (key, value, event id) records, chosen by key."""

    def __init__(self) -> None:
        self.partitions: dict[int, list[tuple[bytes, bytes, str]]] = {0: [], 1: []}
        self.fail = False
        self.reads: list[Mapping[PositionKey, int]] = []

    def publish(self, rows: Sequence[tuple[int, OutboxEntry]]) -> dict[PositionKey, int]:
        if self.fail:
            raise ConnectionError("broker away: nothing acknowledged")
        reached = {}
        for _, entry in rows:
            partition = len(entry.key) % 2
            self.partitions[partition].append((entry.key.encode(), entry.raw, entry.event_id))
            reached[(TOPIC, partition)] = len(self.partitions[partition])
        return reached

    def ends(self) -> dict[PositionKey, int]:
        return {(TOPIC, p): len(records) for p, records in self.partitions.items()}

    def published_since(self, positions: Mapping[PositionKey, int]
                        ) -> tuple[set[str], dict[PositionKey, int]]:
        self.reads.append(dict(positions))
        found = {event_id for p, records in self.partitions.items()
                 for _, _, event_id in records[positions.get((TOPIC, p), 0):]}
        return found, self.ends()

    def records(self) -> list[tuple[bytes, bytes, str]]:
        return [r for p in sorted(self.partitions) for r in self.partitions[p]]


ENTRIES = [OutboxEntry("e1", "INC-1", b'{"a":1}'), OutboxEntry("e2", "crew:C1", b"{}"),
           OutboxEntry("e3", "INC-22", b'{"b":2}')]


def test_rows_are_marked_only_after_the_topic_acknowledged_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SqliteStore(tmp_path / "s.db") as store:
            topic = FakeTopic()
            # Someone else's message before the relay's first start: never read back.
            topic.partitions[0].append((b"INC-0", b"{}", "other"))
            await store.commit(Commit("commands", {}, outbox=ENTRIES[:2]))
            topic.fail = True
            relay = OutboxRelay(lambda: store, topic)
            with pytest.raises(ConnectionError):
                await relay.step(store)
            assert [e for _, e in await store.unpublished()] == ENTRIES[:2]  # kept
            assert await store.positions(EVENT_RELAY) == {(TOPIC, 0): 1, (TOPIC, 1): 0}
            topic.fail = False
            assert await relay.step(store) == 2
            assert topic.records()[1:] == [(b"INC-1", b'{"a":1}', "e1"),
                                           (b"crew:C1", b"{}", "e2")]
            assert await store.unpublished() == []
            assert await relay.step(store) == 0  # nothing goes out twice

    asyncio.run(scenario())


class DiesBeforeMarking(SqliteStore):
    async def mark_published(self, seqs: Sequence[int],
                             positions: Mapping[PositionKey, int] | None = None) -> None:
        if seqs:  # the first start's empty mark (the positions) passes
            raise ConnectionResetError("killed between publish and mark")
        await super().mark_published(seqs, positions)


def test_a_relay_that_died_between_publish_and_mark_is_not_repeated(tmp_path: Path) -> None:
    async def scenario() -> None:
        topic = FakeTopic()
        async with DiesBeforeMarking(tmp_path / "s.db") as dying:
            await dying.commit(Commit("commands", {}, outbox=ENTRIES[:2]))
            first = OutboxRelay(lambda: dying, topic)
            with pytest.raises(ConnectionResetError):
                await first.step(dying)
            assert len(topic.records()) == 2  # published...
            assert len(await dying.unpublished()) == 2  # ...and not marked
        async with SqliteStore(tmp_path / "s.db") as store:
            await store.commit(Commit("commands", {}, outbox=ENTRIES[2:]))
            second = OutboxRelay(lambda: store, topic)
            assert await second.step(store) == 1  # only the row never published
            assert second.recovered == 2
            assert topic.reads == [{(TOPIC, 0): 0, (TOPIC, 1): 0}]
            assert await store.unpublished() == []
        assert sorted(e for _, _, e in topic.records()) == ["e1", "e2", "e3"]

    asyncio.run(scenario())


def test_recovery_reads_only_from_the_offsets_stored_with_the_last_mark(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        topic = FakeTopic()
        async with SqliteStore(tmp_path / "s.db") as store:
            await store.commit(Commit("commands", {}, outbox=ENTRIES[:1]))
            assert await OutboxRelay(lambda: store, topic).step(store) == 1
        async with DiesBeforeMarking(tmp_path / "s.db") as dying:
            await dying.commit(Commit("commands", {}, outbox=ENTRIES[1:]))
            with pytest.raises(ConnectionResetError):
                await OutboxRelay(lambda: dying, topic).step(dying)
        async with SqliteStore(tmp_path / "s.db") as store:
            relay = OutboxRelay(lambda: store, topic)
            assert await relay.step(store) == 0
            assert relay.recovered == 2
            # Both recoveries (the dying relay's and this one) start past e1's record.
            assert topic.reads == [{(TOPIC, 0): 0, (TOPIC, 1): 1}] * 2
        assert sorted(e for _, _, e in topic.records()) == ["e1", "e2", "e3"]

    asyncio.run(scenario())


def test_one_relay_per_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        topic = FakeTopic()
        first, second = SqliteStore(tmp_path / "s.db"), SqliteStore(tmp_path / "s.db")
        async with first, second:
            await first.commit(Commit("commands", {}, outbox=ENTRIES))
            relaying, waiting = OutboxRelay(lambda: first, topic), OutboxRelay(
                lambda: second, topic)
            assert await relaying.step(first) == 3
            await first.commit(Commit("commands", {}, outbox=[
                OutboxEntry("e4", "INC-4", b"{}")]))
            assert await waiting.step(second) == 0 and not waiting.claimed
            await first.close()  # the relaying process goes away: its claim with it
            assert await waiting.step(second) == 1 and waiting.claimed
        assert sorted(e for _, _, e in topic.records()) == ["e1", "e2", "e3", "e4"]

    asyncio.run(scenario())
