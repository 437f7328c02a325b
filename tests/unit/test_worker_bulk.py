"""The worker's bulk delivery on fakes: ``Batches``, ``fetch_loop`` and both feeding
``PartitionProjector`` through rebalances.

A fake consumer stands for Faust's: ``_wait_next_records`` returns scripted
fetches, or reads a partitioned log from positions that seeks move, as aiokafka
does. No Kafka, no Faust, no PostgreSQL (the memory store).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NamedTuple, TypeVar

import pytest

from dispatch.worker.bulk import Batches, fetch_loop, messages_of, parsed_batches
from projections.projector import facts_of
from projections.queries import duty_report
from projections.runners.stream import Message, PartitionProjector
from projections.stores.memory import MemoryStore
from tests.oracle import compare_reports, oracle_report
from tests.unit.test_partition_projector import CONSUMER, TOPIC, ListDeadLetters, event

T = TypeVar("T")


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    offset: int
    value: bytes | None


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


def msgs(partition: int, first: int, count: int) -> list[Message]:
    return [Message(partition, first + i, b"x%d" % (first + i)) for i in range(count)]


# --------------------------------------------------------------------------- Batches


def test_take_returns_what_was_put_in_order_and_at_most_the_asked_count() -> None:
    async def go() -> None:
        batches = Batches(limit=100)
        await batches.put(msgs(0, 0, 3))
        await batches.put(msgs(1, 10, 4))
        assert await batches.take(5) == msgs(0, 0, 3) + msgs(1, 10, 2)
        assert len(batches) == 2
        assert await batches.take(5) == msgs(1, 12, 2)
        assert len(batches) == 0
    run(go())


def test_take_waits_for_a_put() -> None:
    async def go() -> None:
        batches = Batches(limit=10)
        taker = asyncio.ensure_future(batches.take(10))
        await asyncio.sleep(0.01)
        assert not taker.done()
        await batches.put(msgs(2, 5, 1))
        assert await taker == msgs(2, 5, 1)
    run(go())


def test_put_waits_while_the_limit_is_reached_and_resumes_after_a_take() -> None:
    async def go() -> None:
        batches = Batches(limit=4)
        await batches.put(msgs(0, 0, 4))
        putter = asyncio.ensure_future(batches.put(msgs(0, 4, 3)))
        await asyncio.sleep(0.01)
        assert not putter.done(), "a full buffer must hold the fetcher back"
        assert await batches.take(2) == msgs(0, 0, 2)
        await asyncio.wait_for(putter, 1)
        assert await batches.take(100) == msgs(0, 2, 5)
    run(go())


def test_discard_drops_the_pending_messages_of_those_partitions_and_frees_a_put() -> None:
    async def go() -> None:
        batches = Batches(limit=3)
        await batches.put(msgs(0, 0, 2) + msgs(3, 7, 1))
        putter = asyncio.ensure_future(batches.put(msgs(1, 0, 1)))
        await asyncio.sleep(0.01)
        assert not putter.done()
        assert batches.discard({0, 2}) == 2
        await asyncio.wait_for(putter, 1)
        assert await batches.take(10) == msgs(3, 7, 1) + msgs(1, 0, 1)
        assert batches.discard({3}) == 0
    run(go())


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Batches(limit=0)


# --------------------------------------------------------------------------- fetch_loop


def test_messages_of_keeps_our_topic_only_and_turns_a_missing_value_into_empty_bytes() -> None:
    records = {TP(TOPIC, 1): [Record(7, b"a"), Record(8, None)],
               TP("other.topic", 1): [Record(3, b"z")],
               TP(TOPIC, 0): [Record(0, b"b")]}
    assert messages_of(records, TOPIC) == [Message(1, 7, b"a"), Message(1, 8, b""),
                                           Message(0, 0, b"b")]


class ScriptedConsumer:
    """Returns the scripted fetches one per call, then nothing; counts the calls."""

    def __init__(self, script: Sequence[dict[TP, list[Record]] | None]) -> None:
        self.script = list(script)
        self.calls = 0

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        self.calls += 1
        await asyncio.sleep(0)
        return (self.script.pop(0) if self.script else {}), None


def test_fetch_loop_delivers_every_fetch_of_the_topic_whole_and_stops_when_told() -> None:
    script: list[dict[TP, list[Record]] | None] = [
        {TP(TOPIC, 0): [Record(0, b"a"), Record(1, b"b")], TP(TOPIC, 3): [Record(5, b"c")]},
        None,  # the flow was stopped: nothing fetched
        {},
        {TP("other", 0): [Record(0, b"x")]},
        {TP(TOPIC, 0): [Record(2, b"d")]},
    ]
    consumer = ScriptedConsumer(script)

    async def go() -> list[Message]:
        batches = Batches(limit=100)
        await fetch_loop(consumer, TOPIC, batches, lambda: consumer.calls >= 6)
        return await batches.take(100)

    assert run(go()) == [Message(0, 0, b"a"), Message(0, 1, b"b"), Message(3, 5, b"c"),
                         Message(0, 2, b"d")]
    assert consumer.calls == 6


# --------------------------------------------------------------------------- parse ahead


def test_parsed_batches_parse_the_next_batch_while_the_current_one_is_worked_on() -> None:
    parsed: list[list[bytes]] = []

    def parse(values: Sequence[bytes]) -> list[bytes]:
        parsed.append(list(values))
        return [v.upper() for v in values]

    async def go() -> None:
        batches = Batches(limit=100)
        await batches.put(msgs(0, 0, 3))
        stream = parsed_batches(batches, 2, parse)
        batch, values = await stream.__anext__()
        assert batch == msgs(0, 0, 2)
        assert values == [b"X0", b"X1"]
        # While this batch is "committed", the rest is taken and parsed already.
        await asyncio.sleep(0.01)
        assert parsed[-1] == [b"x2"]
        await batches.put(msgs(1, 0, 1))
        assert await stream.__anext__() == (msgs(0, 2, 1), [b"X2"])
        assert await stream.__anext__() == (msgs(1, 0, 1), [b"X0"])
        await stream.aclose()
    run(go())


def test_the_batch_ahead_grows_while_the_consumer_is_busy_and_not_once_it_waits() -> None:
    async def go() -> None:
        batches = Batches(limit=100)
        await batches.put(msgs(0, 0, 1))
        stream = parsed_batches(batches, 4, list)
        assert (await stream.__anext__())[0] == msgs(0, 0, 1)
        # The consumer is busy with that batch: three fetches arrive meanwhile.
        for first in (1, 3, 5):
            await batches.put(msgs(0, first, 2))
            await asyncio.sleep(0.01)
        batch, parsed = await stream.__anext__()
        assert batch == msgs(0, 1, 4), "the next batch takes what came, up to 4"
        assert parsed == [m.value for m in batch]
        await asyncio.sleep(0.01)
        assert len(batches) == 0, "the rest is taken into the batch ahead"
        # Now the consumer waits: what is there comes at once, without waiting for 4.
        assert (await stream.__anext__())[0] == msgs(0, 5, 2)
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.01)
        await batches.put(msgs(1, 0, 2))
        assert (await asyncio.wait_for(waiting, 1))[0] == msgs(1, 0, 2)
        await stream.aclose()
    run(go())


def test_parsed_batches_slice_a_big_batch_and_keep_alignment() -> None:
    calls: list[int] = []

    def parse(values: Sequence[bytes]) -> list[bytes]:
        calls.append(len(values))
        return list(values)

    async def go() -> None:
        batches = Batches(limit=5000)
        await batches.put(msgs(2, 0, 1200))
        stream = parsed_batches(batches, 5000, parse)
        batch, values = await stream.__anext__()
        assert values == [m.value for m in batch] and len(batch) == 1200
        await stream.aclose()
    run(go())
    assert calls == [500, 500, 200]


def test_a_parse_error_reaches_the_consumer() -> None:
    def parse(values: Sequence[bytes]) -> list[bytes]:
        raise RuntimeError("parser broke")

    async def go() -> None:
        batches = Batches(limit=10)
        await batches.put(msgs(0, 0, 1))
        with pytest.raises(RuntimeError, match="parser broke"):
            await parsed_batches(batches, 10, parse).__anext__()
    run(go())


# --------------------------------------------------------------------------- with the projection


class LogConsumer:
    """A partitioned log read from per-partition positions, like aiokafka: each fetch
    returns up to ``most`` records of some assigned partitions and moves their
    positions; ``seek`` moves a position. ``on_fetch`` may change the assignment
    between two fetches (a rebalance)."""

    def __init__(self, log: dict[int, list[bytes]], rng: random.Random, most: int) -> None:
        self.log = log
        self.rng = rng
        self.most = most
        self.position = dict.fromkeys(log, 0)
        self.assigned: set[int] = set()
        self.fetches = 0
        self.on_fetch: Callable[[int], Coroutine[Any, Any, None]] | None = None

    def seek(self, partition: int, offset: int) -> None:
        self.position[partition] = offset

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        self.fetches += 1
        if self.on_fetch is not None:
            await self.on_fetch(self.fetches)
        await asyncio.sleep(0)
        out: dict[TP, list[Record]] = {}
        for p in sorted(self.assigned):
            if self.rng.random() < 0.3:
                continue
            start = self.position[p]
            chunk = self.log[p][start:start + self.rng.randrange(1, self.most)]
            if chunk:
                out[TP(TOPIC, p)] = [Record(start + i, v) for i, v in enumerate(chunk)]
                self.position[p] = start + len(chunk)
        return out, set(self.assigned)


def partitioned_log(rng: random.Random, partitions: int
                    ) -> tuple[list[bytes], dict[int, list[bytes]]]:
    lines: list[bytes] = []
    for n in range(120):
        incident = f"I{n % 30}"
        kind = rng.choice(["call.received", "call.verified", "crew.departed", "crew.arrived",
                           "fault.diagnosed", "repair.completed", "power.restored"])
        lines.append(event(n, kind, incident, minute=rng.randrange(60)))
    lines += [rng.choice(lines) for _ in range(10)]  # re-sent: same event_id
    lines.insert(rng.randrange(len(lines)), b"{broken")
    log: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for line in lines:
        incident = json.loads(line)["incident_id"] if line != b"{broken" else "I0"
        log[int(incident[1:]) % partitions].append(line)
    return lines, log


@pytest.mark.parametrize("ahead", [True, False], ids=["parsed-ahead", "parsed-in-commit"])
@pytest.mark.parametrize("seed", range(5))
def test_bulk_delivery_through_rebalances_gives_the_oracle_report(seed: int, ahead: bool) -> None:
    """Fetches flow through ``fetch_loop`` and ``Batches`` into the projection while
    partitions are revoked and assigned again between fetches and while fetched
    messages of a revoked partition are still pending; the store ends with the report
    of the whole log and every partition at its end."""
    rng = random.Random(seed)
    lines, log = partitioned_log(rng, partitions=4)
    store = MemoryStore()
    dead = ListDeadLetters(store)
    projector = PartitionProjector(store, TOPIC, CONSUMER, dead)
    consumer = LogConsumer(log, rng, most=6)
    batches = Batches(limit=12)
    rebalances: list[tuple[int, set[int]]] = []
    revoked_with_pending: list[int] = []

    async def assign(partitions: set[int]) -> None:
        # As the worker does: revoke what went away, seek the new ones to the store.
        gone = [p for p in projector.owned if p not in partitions]
        projector.revoke(gone)
        consumer.assigned = set(partitions)
        pending = batches.discard(gone)
        if pending:
            revoked_with_pending.append(pending)
        seeks = await projector.assign([p for p in partitions if p not in projector.owned])
        for p, offset in seeks.items():
            consumer.seek(p, offset)
        # Then Faust seeks every assigned partition to Kafka's committed offset, at or
        # below the stored position (it trails the store).
        stored = await store.positions(CONSUMER)
        for p in partitions:
            consumer.seek(p, max(0, stored.get((TOPIC, p), 0) - rng.randrange(0, 3)))

    async def rebalance(fetch: int) -> None:
        if fetch == 60:  # rebalancing ends: one worker owns all
            await assign(set(log))
        elif fetch < 60 and fetch % 5 == 0:
            mine = set(rng.sample(sorted(log), rng.randrange(1, len(log) + 1)))
            rebalances.append((fetch, mine))
            await assign(mine)

    def done() -> bool:
        return all(store_positions.get(p, 0) == len(log[p]) for p in log)

    store_positions: dict[int, int] = {}

    async def commit(batch: list[Message], parsed: Any) -> None:
        outcome = await projector.handle(batch, parsed)
        for p, offset in outcome.seek.items():
            consumer.seek(p, offset)
        stored = await store.positions(CONSUMER)
        store_positions.update({p: o for (_, p), o in stored.items()})

    async def project() -> None:
        if ahead:
            async for batch, parsed in parsed_batches(batches, 7, facts_of):
                await commit(batch, parsed)
        while True:
            await commit(await batches.take(7), None)

    async def go() -> dict[str, object]:
        await assign(set(log))
        consumer.on_fetch = rebalance
        task = asyncio.ensure_future(project())
        given_up = False
        fetching = asyncio.ensure_future(
            fetch_loop(consumer, TOPIC, batches, lambda: done() or given_up))
        for _ in range(50_000):
            await asyncio.sleep(0)
            if done():
                break
        given_up = True
        task.cancel()
        await asyncio.gather(fetching, task, return_exceptions=True)
        assert done(), f"did not converge: {store_positions} of {[len(v) for v in log.values()]}"
        return await duty_report(store)

    engine = run(go())
    assert len(rebalances) >= 3, rebalances
    assert revoked_with_pending, "no partition was revoked while its messages were pending"
    assert any(mine != set(log) for _, mine in rebalances), "no partition was ever revoked"
    assert len(dead.sent) == 1, "the broken line reaches the dead letters exactly once"
    oracle = oracle_report([line.decode() for line in lines])
    assert compare_reports(engine, oracle) == []
