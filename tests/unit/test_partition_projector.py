"""``PartitionProjector`` admission on fakes: the memory store and list-backed dead letters.

The same rules the Kafka integration tests exercise through real servers, here
without any: gaps are refused with a seek back, re-deliveries are skipped,
positions moved by another consumer make the batch stale, invalid messages reach
the dead letters before the commit that skips them, and whatever order the
client delivers in (obeying the seeks), the report equals the naive oracle's.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from projections.ports import Rejected
from projections.queries import duty_report
from projections.runners.stream import Message, PartitionProjector
from projections.stores.memory import MemoryStore
from tests.oracle import compare_reports, oracle_report

TOPIC = "outage.events"
CONSUMER = "projector"
T = TypeVar("T")


class ListDeadLetters:
    """Dead-letter fake: keeps what it was sent, and what the store held at that moment."""

    def __init__(self, store: MemoryStore, fail: bool = False) -> None:
        self.store = store
        self.fail = fail
        self.sent: list[Rejected] = []
        self.positions_when_sent: list[dict[tuple[str, int], int]] = []

    async def send(self, rejected: Sequence[Rejected]) -> None:
        if self.fail:
            raise ConnectionError("dead-letter topic unreachable")
        self.positions_when_sent.append(await self.store.positions(CONSUMER))
        self.sent.extend(rejected)


class CountingObserver:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int, int, int]] = []

    def batch_committed(self, size: int, accepted: int, rejected: int, duplicates: int,
                        seconds: float, new_stages: Sequence[tuple[str, float]]) -> None:
        self.batches.append((size, accepted, rejected, duplicates))


def event(n: int, kind: str = "call.received", incident: str | None = None,
          minute: int = 0, event_id: str | None = None) -> bytes:
    data: dict[str, object] = {"grid": "G1", "area": "urban"} if kind == "call.received" else {}
    if kind.startswith("crew."):
        data = {"crew": "C1"}
    return json.dumps({
        "event_id": event_id or f"e{n}", "type": kind, "incident_id": incident or f"I{n}",
        "occurred_at": f"2026-07-01T09:{minute:02d}:00+08:00", "data": data,
    }).encode()


def messages(partition: int, first_offset: int, values: Sequence[bytes]) -> list[Message]:
    return [Message(partition, first_offset + i, v) for i, v in enumerate(values)]


def random_batch(log: dict[int, list[bytes]], reading: dict[int, int], rng: random.Random,
                 jumps: Sequence[int], longest: int) -> list[Message]:
    """What a careless client fetches: 1-5 chunks of up to ``longest`` messages of
    random partitions, each starting a jump away from where it was reading (which
    it moves on)."""
    batch: list[Message] = []
    for _ in range(rng.randrange(1, 6)):
        p = rng.choice(list(log))
        start = max(0, reading[p] + rng.choice(jumps))
        chunk = log[p][start:start + rng.randrange(1, longest + 1)]
        batch += messages(p, start, chunk)
        reading[p] = start + len(chunk)
    return batch


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make(store: MemoryStore | None = None, fail: bool = False
         ) -> tuple[PartitionProjector, MemoryStore, ListDeadLetters, CountingObserver]:
    store = store or MemoryStore()
    dead = ListDeadLetters(store, fail)
    observer = CountingObserver()
    return PartitionProjector(store, TOPIC, CONSUMER, dead, observer), store, dead, observer


def test_assign_resumes_from_the_stored_positions_not_from_zero() -> None:
    async def go() -> None:
        projector, store, _, _ = make()
        assert await projector.assign([0, 1]) == {0: 0, 1: 0}
        outcome = await projector.handle(messages(1, 0, [event(1), event(2)]))
        assert outcome.committed == 2
        again, _, _, _ = make(store)
        assert await again.assign([0, 1, 2]) == {0: 0, 1: 2, 2: 0}
    run(go())


def test_in_order_messages_are_committed_with_their_next_offsets() -> None:
    async def go() -> None:
        projector, store, dead, observer = make()
        await projector.assign([0, 1])
        outcome = await projector.handle(
            messages(0, 0, [event(1), event(2)]) + messages(1, 0, [event(3)]))
        assert (outcome.committed, outcome.skipped, outcome.seek) == (3, 0, {})
        assert await store.positions(CONSUMER) == {(TOPIC, 0): 2, (TOPIC, 1): 1}
        assert await store.event_count() == 3
        assert projector.owned == {0: 2, 1: 1}
        assert observer.batches == [(3, 3, 0, 0)]
        assert dead.sent == []
    run(go())


def test_redelivered_offsets_are_skipped_and_change_nothing() -> None:
    async def go() -> None:
        projector, store, _, _ = make()
        await projector.assign([0])
        await projector.handle(messages(0, 0, [event(1), event(2), event(3)]))
        before = await duty_report(store)
        # The client re-delivers 1..2 (e.g. Kafka's committed offset trailed ours), then 3.
        outcome = await projector.handle(messages(0, 1, [event(2), event(3), event(4)]))
        assert (outcome.committed, outcome.skipped, outcome.seek) == (1, 2, {})
        report = await duty_report(store)
        assert report["duplicate_events"] == 0, "a skipped offset is not even a duplicate"
        assert report["overall"]["calls"] == before["overall"]["calls"] + 1
        assert await store.positions(CONSUMER) == {(TOPIC, 0): 4}
    run(go())


def test_a_gap_is_refused_with_a_seek_back_until_the_sought_offset_arrives() -> None:
    async def go() -> None:
        projector, store, _, observer = make()
        await projector.assign([0])
        await projector.handle(messages(0, 0, [event(1)]))
        # Offsets 1..2 are missing: the client read from somewhere else.
        outcome = await projector.handle(messages(0, 3, [event(4), event(5)]))
        assert (outcome.committed, outcome.skipped, outcome.seek) == (0, 2, {0: 1})
        assert await store.positions(CONSUMER) == {(TOPIC, 0): 1}
        # Until the client has seeked, later offsets are still skipped, without a new seek.
        outcome = await projector.handle(messages(0, 5, [event(6)]))
        assert (outcome.committed, outcome.skipped) == (0, 1)
        # The sought offset shows up: the partition continues from there.
        outcome = await projector.handle(messages(0, 1, [event(n) for n in range(2, 7)]))
        assert (outcome.committed, outcome.skipped, outcome.seek) == (5, 0, {})
        assert await store.positions(CONSUMER) == {(TOPIC, 0): 6}
        assert await store.event_count() == 6
        assert len(observer.batches) == 2
    run(go())


def test_messages_of_partitions_not_owned_are_skipped() -> None:
    async def go() -> None:
        projector, store, _, _ = make()
        await projector.assign([0, 1])
        projector.revoke([1])
        outcome = await projector.handle(messages(1, 0, [event(1)]) + messages(0, 0, [event(2)]))
        assert (outcome.committed, outcome.skipped) == (1, 1)
        assert await store.positions(CONSUMER) == {(TOPIC, 0): 1}
    run(go())


def test_a_position_moved_by_another_consumer_makes_the_batch_stale() -> None:
    async def go() -> None:
        zombie, store, _, _ = make()
        await zombie.assign([0])
        owner, _, _, _ = make(store)
        await owner.assign([0])
        await owner.handle(messages(0, 0, [event(1), event(2)]))
        # The zombie still believes partition 0 is at 0 and offers the same offsets.
        outcome = await zombie.handle(messages(0, 0, [event(1), event(99)]))
        assert (outcome.committed, outcome.seek) == (0, {0: 2})
        assert zombie.owned == {0: 2}
        assert await store.event_count() == 2
        assert "e99" not in {e.event_id for e in await store.incident_events("I99")}
    run(go())


def test_invalid_messages_reach_the_dead_letters_before_the_commit() -> None:
    async def go() -> None:
        projector, store, dead, observer = make()
        await projector.assign([0])
        bad = b'{"event_id": "x", "type": "crew.teleported"}'
        outcome = await projector.handle(messages(0, 0, [event(1), bad, b"not json", event(2)]))
        assert outcome.committed == 4
        assert [r.record.label for r in dead.sent] == [f"{TOPIC}[0]@1", f"{TOPIC}[0]@2"]
        assert [r.record.raw for r in dead.sent] == [bad, b"not json"]
        assert "unknown event type" in dead.sent[0].reason
        assert dead.positions_when_sent == [{}], "sent while the store had not moved yet"
        assert await store.positions(CONSUMER) == {(TOPIC, 0): 4}
        assert (await store.counters())["rejected_events"] == 2
        assert observer.batches == [(4, 2, 2, 0)]
    run(go())


def test_when_the_dead_letters_fail_nothing_is_committed() -> None:
    async def go() -> None:
        projector, store, _, _ = make(fail=True)
        await projector.assign([0])
        with pytest.raises(ConnectionError):
            await projector.handle(messages(0, 0, [event(1), b"not json"]))
        assert await store.positions(CONSUMER) == {}
        assert await store.event_count() == 0
        assert await projector.rewind() == {0: 0}
    run(go())


def test_duplicate_event_ids_at_new_offsets_are_counted_as_duplicates() -> None:
    async def go() -> None:
        projector, store, _, observer = make()
        await projector.assign([0])
        await projector.handle(messages(0, 0, [event(1), event(1)]))
        await projector.handle(messages(0, 2, [event(1)]))
        assert (await store.counters())["duplicate_events"] == 2
        assert await store.event_count() == 1
        assert [b[3] for b in observer.batches] == [1, 1]
    run(go())


@pytest.mark.parametrize("seed", range(6))
def test_any_delivery_that_obeys_the_seeks_gives_the_oracle_report(seed: int) -> None:
    """A client that re-delivers, jumps ahead and interleaves partitions, but seeks
    where it is told, ends with the report of the whole log, as the oracle computes it."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    for n in range(40):
        incident = f"I{n % 15}"
        kind = rng.choice(["call.received", "call.verified", "crew.departed", "crew.arrived",
                           "fault.diagnosed", "repair.completed", "power.restored"])
        lines.append(event(n, kind, incident, minute=rng.randrange(60)))
    lines += [rng.choice(lines) for _ in range(8)]  # re-sent by producers: same event_id
    lines.insert(rng.randrange(len(lines)), b"{broken")
    # Keyed by incident, as the producer does: one incident, one partition.
    log: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for line in lines:
        incident = json.loads(line)["incident_id"] if line != b"{broken" else "I0"
        log[int(incident[1:]) % 3].append(line)

    async def go() -> dict[str, object]:
        projector, store, dead, _ = make()
        await projector.assign(list(log))
        reading = dict.fromkeys(log, 0)
        seeks = 0
        for _ in range(500):
            if all(projector.owned[p] == len(log[p]) for p in log):
                break
            batch = random_batch(log, reading, rng, jumps=(-2, -1, 0, 0, 0, 1, 2), longest=4)
            outcome = await projector.handle(batch)
            reading.update(outcome.seek)
            seeks += len(outcome.seek)
        assert all(projector.owned[p] == len(log[p]) for p in log), "did not converge"
        assert seeks > 0, "the delivery should have jumped ahead at least once"
        assert len(dead.sent) == 1
        return await duty_report(store)

    engine = run(go())
    assert engine["duplicate_events"] == 8 and engine["rejected_events"] == 1
    oracle = oracle_report([line.decode() for line in lines])
    assert compare_reports(engine, oracle) == []
