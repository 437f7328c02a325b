"""``PartitionProjector`` pipelined on two sessions, on fakes.

The fake's two sessions share one in-memory store; a commit lands only when its
task gets a turn of the event loop, so the next batch is read and folded while
the store does not show the batch before it yet. Whatever the client delivers
(obeying the seeks), whether the next batch is prepared on the in-flight states
or after the commit landed, and whatever commit fails, the report equals the
naive oracle's.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager

import pytest

from projections.incident import Incident
from projections.ports import Commit, PositionKey, ProjectionStore, StoreUnavailable
from projections.queries import duty_report
from projections.runners.stream import Message, PartitionProjector
from projections.stores.memory import MemoryStore
from tests.oracle import compare_reports, oracle_report
from tests.unit.test_partition_projector import (
    CONSUMER,
    TOPIC,
    ListDeadLetters,
    event,
    messages,
    run,
)


class Session(MemoryStore):
    """One session on the ``shared`` store: reads see what has landed there; a
    commit lands after a turn of the event loop, or fails when ``fail`` says so."""

    def __init__(self, shared: MemoryStore) -> None:
        super().__init__(shared.calendar)
        self.shared = shared
        self.in_block = False
        self.fail: Exception | None = None
        """Raised by the next commit instead of landing (then cleared)."""
        self.twin: Session | None = None

    def sibling(self) -> Session:
        twin = Session(self.shared)
        twin.twin, self.twin = self, twin
        return twin

    async def still_writing(self, other: ProjectionStore) -> bool:
        assert other is self.twin and self.in_block
        return other.in_block

    @asynccontextmanager
    async def writing(self, *, partitioned: bool = False) -> AsyncIterator[None]:
        assert partitioned and not self.in_block
        self.in_block = True
        try:
            yield
        finally:
            self.in_block = False

    async def positions(self, consumer: str) -> dict[PositionKey, int]:
        return await self.shared.positions(consumer)

    async def known_events(self, event_ids: Sequence[str]) -> dict[str, bytes]:
        return await self.shared.known_events(event_ids)

    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        return await self.shared.load_incidents(incident_ids)

    async def commit(self, commit: Commit) -> None:
        await asyncio.sleep(0)
        failure, self.fail = self.fail, None
        if failure is not None:
            raise failure
        await self.shared.commit(commit)


def log_of(seed: int) -> tuple[list[bytes], dict[int, list[bytes]]]:
    """Events of 15 incidents (re-sent copies, one broken line), keyed by incident."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    for n in range(60):
        kind = rng.choice(["call.received", "call.verified", "crew.departed", "crew.arrived",
                           "fault.diagnosed", "repair.completed", "power.restored"])
        lines.append(event(n, kind, f"I{n % 15}", minute=rng.randrange(60)))
    lines += [rng.choice(lines) for _ in range(10)]
    lines.insert(rng.randrange(len(lines)), b"{broken")
    log: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for line in lines:
        incident = json.loads(line)["incident_id"] if line != b"{broken" else "I0"
        log[int(incident[1:]) % 3].append(line)
    return lines, log


async def deliver(projector: PartitionProjector, log: dict[int, list[bytes]],
                  rng: random.Random, fail_on: Sequence[Session] = ()) -> int:
    """Deliver ``log`` in random overlapping chunks until everything is stored;
    returns how many batches failed (a commit in five on ``fail_on`` fails)."""
    reading = dict.fromkeys(log, 0)
    failures = 0
    for _ in range(2000):
        if all(projector.owned[p] == len(log[p]) for p in log):
            return failures
        batch: list[Message] = []
        for _ in range(rng.randrange(1, 6)):
            p = rng.choice(list(log))
            start = max(0, reading[p] + rng.choice([-2, -1, 0, 0, 0, 0, 1]))
            chunk = log[p][start:start + rng.randrange(1, 6)]
            batch += messages(p, start, chunk)
            reading[p] = start + len(chunk)
        if fail_on and rng.random() < 0.2:
            rng.choice(fail_on).fail = StoreUnavailable("connection lost")
        try:
            outcome = await projector.handle(batch)
            if not batch or rng.random() < 0.05:
                reading.update((await projector.drain()).seek)
        except StoreUnavailable:
            failures += 1
            reading.update(await projector.rewind())
            continue
        reading.update(outcome.seek)
        if rng.random() < 0.3:  # sometimes the commit lands before the next batch
            for _ in range(3):
                await asyncio.sleep(0)
    raise AssertionError("did not converge")


@pytest.mark.parametrize("pipeline_from", [1, 4])
@pytest.mark.parametrize("seed", range(6))
def test_pipelined_delivery_gives_the_oracle_report(seed: int, pipeline_from: int) -> None:
    """``pipeline_from`` 4: batches below 4 messages commit before ``handle`` returns,
    after the one in flight, so both kinds follow each other."""
    lines, log = log_of(seed)
    rng = random.Random(seed)

    async def go() -> tuple[dict[str, object], int]:
        shared = MemoryStore()
        first = Session(shared)
        projector = PartitionProjector(first, TOPIC, CONSUMER, ListDeadLetters(shared),
                                       pipeline=first.sibling(), pipeline_from=pipeline_from)
        await projector.assign(list(log))
        await deliver(projector, log, rng)
        await projector.drain()
        assert await shared.positions(CONSUMER) == {(TOPIC, p): len(log[p]) for p in log}
        return await duty_report(shared), projector.overlaid

    engine, overlaid = run(go())
    assert overlaid > 0, "no batch was prepared on the states of the one in flight"
    assert engine["duplicate_events"] == 10 and engine["rejected_events"] == 1
    assert compare_reports(engine, oracle_report([line.decode() for line in lines])) == []


@pytest.mark.parametrize("pipeline_from", [1, 4])
@pytest.mark.parametrize("seed", range(4))
def test_failed_commits_in_flight_are_fetched_again_and_the_report_is_exact(
        seed: int, pipeline_from: int) -> None:
    lines, log = log_of(100 + seed)
    rng = random.Random(seed)

    async def go() -> tuple[dict[str, object], int]:
        shared = MemoryStore()
        first = Session(shared)
        twin = first.sibling()
        projector = PartitionProjector(first, TOPIC, CONSUMER, ListDeadLetters(shared),
                                       pipeline=twin, pipeline_from=pipeline_from)
        await projector.assign(list(log))
        failures = await deliver(projector, log, rng, fail_on=[first, twin])
        await projector.drain()
        return await duty_report(shared), failures

    engine, failures = run(go())
    assert failures > 0, "no commit failed"
    assert engine["duplicate_events"] == 10 and engine["rejected_events"] == 1
    assert compare_reports(engine, oracle_report([line.decode() for line in lines])) == []


def test_a_refused_commit_in_flight_voids_the_batch_prepared_on_it() -> None:
    async def go() -> None:
        shared = MemoryStore()
        first = Session(shared)
        zombie = PartitionProjector(first, TOPIC, CONSUMER, ListDeadLetters(shared),
                                    pipeline=first.sibling())
        await zombie.assign([0, 1])
        owner = PartitionProjector(MemoryStore(), TOPIC, CONSUMER, ListDeadLetters(shared))
        owner.store = shared
        owner._projectors[0].store = shared
        await owner.assign([0])
        await owner.handle(messages(0, 0, [event(1), event(2)]))
        # The zombie's batch on partition 0 is refused when it lands, while its next
        # batch (partitions 0 and 1) is being prepared on it.
        first_outcome = await zombie.handle(messages(0, 0, [event(1), event(99)]))
        assert first_outcome.committed == 0 and zombie.overlaid == 0
        outcome = await zombie.handle(messages(0, 2, [event(3)]) + messages(1, 0, [event(4)]))
        assert zombie.overlaid == 1
        assert outcome.stale is not None and outcome.committed == 0
        assert outcome.seek == {0: 2, 1: 0}
        assert zombie.owned == {0: 2, 1: 0}
        assert await shared.positions(CONSUMER) == {(TOPIC, 0): 2}
        assert await shared.event_count() == 2
        # Delivered again from the stored offsets, everything lands.
        await zombie.handle(messages(0, 2, [event(3)]) + messages(1, 0, [event(4)]))
        await zombie.drain()
        assert await shared.positions(CONSUMER) == {(TOPIC, 0): 3, (TOPIC, 1): 1}
        assert await shared.event_count() == 4
    run(go())
