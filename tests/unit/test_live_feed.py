"""The pure and in-process parts of ``dispatch serve``: token parsing, the change
feed's fan-out, slow subscribers being dropped, and resuming from the store."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from dispatch.api.app import Answer, LatestOnly, ReportKey
from dispatch.api.auth import ApiTokens, Principal, bearer
from dispatch.api.feed import ChangeFeed, Subscriber, backlog
from projections.history import Window
from projections.stores.memory import MemoryStore
from tests.contract.test_store_contract import commit


def test_tokens_and_roles() -> None:
    tokens = ApiTokens.parse(" viewer-token-1 , disp-token-22:dispatcher,crew-token-3:crew:C-7 ")
    assert len(tokens) == 3
    assert tokens.identify("viewer-token-1") == Principal("viewer")
    assert tokens.identify("disp-token-22") == Principal("dispatcher")
    assert tokens.identify("crew-token-3") == Principal("crew:C-7")
    for wrong in (None, "", "viewer-token-", "viewer-token-11", "disp-token-22:dispatcher"):
        assert tokens.identify(wrong) is None
    assert len(ApiTokens.parse("")) == 0


@pytest.mark.parametrize(("text", "message"), [
    ("good-token-1,,other-token-2", "entry 2 is empty"),
    ("good-token-1:admin", "entry 1: unknown role"),
    ("good-token-1:crew:", "entry 1: unknown role"),
    ("short", "at least 8 characters"),
])
def test_bad_token_lists_name_the_entry_never_the_token(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        ApiTokens.parse(text)
    assert "good-token" not in str(caught.value)


def test_bearer_header() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer(None) is None


def ids(chunks: list[bytes]) -> list[int]:
    """The ``id:`` of every frame in ``chunks``, in order."""
    return [int(line[4:]) for chunk in chunks for line in chunk.split(b"\n")
            if line.startswith(b"id: ")]


async def _feed(store: MemoryStore, queue_size: int = 100) -> ChangeFeed:
    feed = ChangeFeed(lambda: store, poll_interval=0.01, queue_size=queue_size)
    await feed.start()
    return feed


async def test_feed_fans_out_in_order_from_its_start() -> None:
    store = MemoryStore(change_log=True)
    await store.commit(commit(1))
    feed = await _feed(store)
    assert feed.position == 2
    first, second = feed.subscribe(), feed.subscribe()
    assert first.since == 2
    task = asyncio.create_task(feed.run())
    try:
        await store.commit(commit(2))
        chunk = await asyncio.wait_for(first.take(), 2)
        assert chunk == await second.take()
        assert chunk is not None and first.pending == 0
        assert chunk.startswith(b"id: 3\nevent: incident\ndata: {")
        assert b"\n\nid: 4\nevent: period\n" in chunk
    finally:
        task.cancel()


async def test_a_slow_subscriber_is_dropped_and_the_others_are_not() -> None:
    store = MemoryStore(change_log=True)
    feed = await _feed(store, queue_size=5)
    slow, fast = feed.subscribe(), feed.subscribe()
    task = asyncio.create_task(feed.run())
    got: list[bytes] = []

    async def drain() -> None:
        while len(ids(got)) < 10:
            chunk = await fast.take()
            assert chunk is not None
            got.append(chunk)

    reader = asyncio.create_task(drain())
    try:
        for n in range(1, 6):
            await store.commit(commit(n))
            await asyncio.sleep(0.05)
        await asyncio.wait_for(reader, 2)
    finally:
        task.cancel()
    assert slow.dropped and not fast.dropped
    assert not slow.chunks and await slow.take() is None  # the stream ends
    assert slow not in feed.stats.subscribers and fast in feed.stats.subscribers
    assert feed.stats.dropped == 1
    assert ids(got) == list(range(1, 11))


async def test_backlog_reads_exactly_the_range_from_the_store() -> None:
    store = MemoryStore(change_log=True)
    for n in range(1, 5):
        await store.commit(commit(n))
    feed = await _feed(store)
    chunks = [item async for item in backlog(store, 3, 6, feed.calendar)]
    assert ids([c for c, _ in chunks]) == [4, 5, 6]
    assert sum(n for _, n in chunks) == 3


class FlakyStore(MemoryStore):
    """Fails its reads while ``down`` is set, as a store whose server went away."""

    down = False

    async def changes_after(self, seq: int, limit: int = 1000):  # type: ignore[no-untyped-def]
        if self.down:
            raise ConnectionRefusedError("store down")
        return await super().changes_after(seq, limit)


async def test_the_feed_survives_a_store_outage_and_loses_nothing() -> None:
    store = FlakyStore(change_log=True)
    feed = await _feed(store)
    subscriber = feed.subscribe()
    task = asyncio.create_task(feed.run())
    try:
        store.down = True
        await asyncio.sleep(0.1)
        assert not feed.healthy
        await store.commit(commit(1))  # committed while the feed cannot read
        store.down = False
        chunk = await asyncio.wait_for(subscriber.take(), 3)
    finally:
        task.cancel()
    assert feed.healthy and feed.stats.store_errors >= 1
    assert chunk is not None and ids([chunk]) == [1, 2]


async def test_take_batches_times_out_and_ends() -> None:
    subscriber = Subscriber(since=0, limit=10)
    assert await subscriber.take(0.01) == b""  # quiet: the caller sends a heartbeat
    subscriber.offer(b"a", 1)
    subscriber.offer(b"b", 2)
    assert subscriber.pending == 3
    assert await subscriber.take(1) == b"ab" and subscriber.pending == 0
    waiting = asyncio.create_task(subscriber.take(5))
    await asyncio.sleep(0.01)
    subscriber.offer(b"c", 1)
    assert await asyncio.wait_for(waiting, 1) == b"c"
    subscriber.offer(b"d", 1)
    subscriber.end()  # server stopping: what is queued still goes out
    assert await subscriber.take(1) == b"d"
    assert await subscriber.take(1) is None
    gone = Subscriber(since=0, limit=10)
    gone.offer(b"e", 1)
    gone.close()  # client left: nothing more
    assert await gone.take(1) is None


def _key(seq: int, zone: str = "Asia/Shanghai") -> ReportKey:
    return ReportKey(zone, "08:30", Window(), seq, ())


async def test_report_cache_builds_once_per_key_and_shares_the_build() -> None:
    cache = LatestOnly()
    builds: list[int] = []

    async def build() -> Answer:
        builds.append(1)
        await asyncio.sleep(0.05)
        return await Answer.of(b"report %d" % len(builds))

    first = await asyncio.gather(*(cache.get(_key(7), build) for _ in range(5)))
    assert [a.body for a in first] == [b"report 1"] * 5 and len(builds) == 1
    assert (await cache.get(_key(7), build)).body == b"report 1" and len(builds) == 1
    assert (await cache.get(_key(8), build)).body == b"report 2"
    assert gzip.decompress(first[0].gzipped) == b"report 1"
    assert first[0].etag != (await cache.get(_key(8), build)).etag

    async def broken() -> Answer:
        raise ConnectionRefusedError("store down")

    with pytest.raises(ConnectionRefusedError):
        await cache.get(_key(1, "UTC"), broken)
    assert (await cache.get(_key(1, "UTC"), build)).body == b"report 3"  # not cached
