"""The outbox relay on an SQLite store with a fake producer: nothing is marked
published before Kafka acknowledged it, a failed publish leaves the rows for
the next try, and every row goes out with its key and original bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dispatch.api.relay import OutboxRelay
from projections.ports import Commit, OutboxEntry
from projections.stores.sqlite import SqliteStore


class FakeProducer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.pending: list[tuple[str, bytes, bytes]] = []
        self.acked: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        self.pending.append((topic, key, value))

    def flush(self, timeout: float) -> int:
        if self.fail:
            return len(self.pending)  # nothing acknowledged
        self.acked += self.pending
        self.pending = []
        return 0


def test_rows_are_marked_only_after_kafka_acknowledged_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "s.db")
        async with store:
            entries = [OutboxEntry("e1", "INC-1", b'{"a":1}'), OutboxEntry("e2", "crew:C1", b"{}")]
            await store.commit(Commit("commands", {}, outbox=entries))
            broken = FakeProducer(fail=True)
            relay = OutboxRelay(lambda: store, lambda: broken, "events")
            with pytest.raises(Exception, match="not acknowledged"):
                await relay.drain(store)
            assert [e for _, e in await store.unpublished()] == entries  # kept for later
            working = FakeProducer(fail=False)
            relay = OutboxRelay(lambda: store, lambda: working, "events")
            assert await relay.drain(store) == 2
            assert working.acked == [("events", b"INC-1", b'{"a":1}'),
                                     ("events", b"crew:C1", b"{}")]
            assert await store.unpublished() == []
            assert await relay.drain(store) == 0  # nothing goes out twice

    asyncio.run(scenario())
