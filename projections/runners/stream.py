"""Exactly-once projection of a partitioned log (Kafka) into a store.

Consumer-library agnostic: the Faust worker (and the benchmark's plain aiokafka
consumer) feed ``PartitionProjector`` the messages they fetch and seek where it
says. Contract:
- ``assign(partitions)`` returns the offset to seek each partition to: the next
  position stored in the read-model database, never Kafka's committed offset;
- ``handle(messages)`` projects one batch and commits it in one store
  transaction together with the next offsets; its reads and its commit form
  one ``writing(partitioned=True)`` block, so it relies on every incident's
  events being in one partition (the key is the incident id); only messages that continue a
  partition exactly where the store left it are applied: re-deliveries are
  skipped, and a gap (the client reads from somewhere else) is refused with a
  seek back to the stored position;
- invalid messages reach the dead-letter port before the commit that skips them;
- ``StalePosition`` (another worker moved a partition) drops the batch and asks
  for a seek to what is stored now;
- ``resync(partition)``: the runner's remedy for a partition that lags but
  receives nothing (its client reads past the end of what was stored).

Pipelined (given a ``pipeline`` session, a sibling of the store on the same
database; for batches of at least ``pipeline_from`` messages): ``handle``
prepares its batch (reads, fold, dead letters) in a write block on one session
while the previous batch's commit is still running on the other, then waits for
that commit and leaves its own running in a task; it returns what the previous
batch's commit did (``Outcome.committed``) and its own admission (skips,
seeks). The prepared batch reads the in-flight batch's events and incident
states from memory, which is exact only while that batch's write block is still
open in the database (no exclusive writer, e.g. an API command or an embedded
ingest, can commit in between); otherwise it waits for the commit and reads
everything from the store. A failed in-flight commit abandons the batch prepared
on it: a refused one (stale positions) seeks every partition of both back to
what is stored; an unreachable store raises ``StoreUnavailable``. A smaller
batch first waits for the commit in flight, then commits before returning.
``drain()`` waits for the commit in flight; ``assign`` and ``rewind`` need none
in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from projections.incident import STAGES, Fact, Incident
from projections.ports import (
    PositionKey,
    ProjectionStore,
    Record,
    Rejected,
    StalePosition,
    StoreUnavailable,
)
from projections.projector import PreparedBatch, Projector
from projections.sla_live import SlaPolicy


class Message(NamedTuple):
    partition: int
    offset: int
    value: bytes


class DeadLetters(Protocol):
    async def send(self, rejected: Sequence[Rejected]) -> None:
        """Deliver every rejected message (with its reason) durably, or raise."""


class Observer(Protocol):
    """Receives what a batch did (metrics); every method must be cheap."""

    def batch_committed(self, size: int, accepted: int, rejected: int, duplicates: int,
                        seconds: float, new_stages: Sequence[tuple[str, float]]) -> None: ...


@dataclass(slots=True)
class Outcome:
    committed: int = 0
    """Messages whose commit completed during the call (pipelined: the previous batch)."""
    skipped: int = 0
    seek: dict[int, int] = field(default_factory=dict)
    """Partitions the client must seek to these offsets before fetching more."""
    stale: str | None = None
    """Why the store refused the batch (another worker moved its partitions)."""


@dataclass(slots=True)
class _InFlight:
    """A batch whose commit runs in ``task`` while the next one is prepared."""

    session: int
    prepared: PreparedBatch
    partitions: set[int]
    size: int
    task: asyncio.Task[None]


class _Abandoned(Exception):
    """The in-flight commit was refused: the batch prepared on it is void."""


class PartitionProjector:
    def __init__(self, store: ProjectionStore, topic: str, consumer: str,
                 dead_letters: DeadLetters, observer: Observer | None = None,
                 sla: SlaPolicy | None = None,
                 pipeline: ProjectionStore | None = None, pipeline_from: int = 1) -> None:
        self.store = store
        self.sla = sla
        """With a policy, each batch's commit also keeps the SLA state of its incidents."""
        self.topic = topic
        self.sessions = [store] if pipeline is None else [store, pipeline]
        """Pipelined with two: a batch is prepared on one while the other commits."""
        self.pipeline_from = pipeline_from
        """Smaller batches are committed before ``handle`` returns: a flow that small
        has no backlog to catch up, and a commit in flight would only delay the next."""
        self._projectors = [Projector(s, consumer) for s in self.sessions]
        self.projector = self._projectors[0]
        self.dead_letters = dead_letters
        self.observer = observer
        self.owned: dict[int, int] = {}
        """partition -> next offset committed in the store (what we resume from)."""
        self._seeking: dict[int, int] = {}
        """partition -> offset we asked the client to seek to and have not seen yet."""
        self._ahead: dict[int, int] = {}
        """partition -> next offset after the batch in flight (its commit not landed)."""
        self._flight: _InFlight | None = None
        self.overlaid = 0
        """Pipelined batches prepared on the in-flight batch's states (the others
        found its write block closed, waited for it and read the store)."""

    def _next(self, partition: int) -> int:
        return self._ahead.get(partition, self.owned[partition])

    async def assign(self, partitions: Iterable[int]) -> dict[int, int]:
        """Take ``partitions`` over; returns where the client must seek each."""
        if self._flight is not None:
            raise RuntimeError("drain() the commit in flight before assigning")
        stored = await self.store.positions(self.projector.consumer)
        seeks = {}
        for partition in partitions:
            self.owned[partition] = seeks[partition] = stored.get((self.topic, partition), 0)
            self._seeking[partition] = seeks[partition]
        return seeks

    def revoke(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.owned.pop(partition, None)
            self._seeking.pop(partition, None)
            self._ahead.pop(partition, None)

    def _admit(self, messages: Sequence[Message], outcome: Outcome) -> list[int]:
        """The indexes of the messages that continue each owned partition without a gap.

        Offsets below a partition's cursor were applied already. A partition that
        is being repositioned is skipped until the sought offset shows up; an
        offset above the cursor means the client is reading from somewhere else,
        so it is asked (again, once per batch) to seek back to the cursor. Our
        topics are never written transactionally, so offsets have no holes.
        """
        cursor: dict[int, int] = {}
        fresh: list[int] = []
        for index, message in enumerate(messages):
            partition, offset = message.partition, message.offset
            if partition not in self.owned:
                outcome.skipped += 1
                continue
            expected = cursor.get(partition)
            if expected is None:
                expected = self._next(partition)
            sought = self._seeking.get(partition)
            if sought is not None and offset == sought == expected:
                del self._seeking[partition]
            if offset == expected and partition not in self._seeking:
                fresh.append(index)
                cursor[partition] = offset + 1
                continue
            outcome.skipped += 1
            if offset > expected:
                self._seeking[partition] = outcome.seek[partition] = expected
        return fresh

    async def handle(self, messages: Sequence[Message],
                     parsed: Sequence[Fact | str] | None = None) -> Outcome:
        """Project one fetched batch (see module contract). ``parsed``: ``facts_of``
        of the messages' values, if the runner parsed them ahead."""
        outcome = Outcome()
        admitted = self._admit(messages, outcome)
        if not admitted:
            return outcome
        if len(admitted) == len(messages):  # the usual case: nothing skipped
            fresh, facts = messages, parsed
        else:
            fresh = [messages[i] for i in admitted]
            facts = None if parsed is None else [parsed[i] for i in admitted]
        started = time.perf_counter()
        records = [Record(self.topic, m.partition, m.offset + 1, m.value) for m in fresh]
        partitions = {m.partition for m in fresh}
        expected = {(self.topic, p): self._next(p) for p in partitions}
        if len(self.sessions) > 1 and len(records) >= self.pipeline_from:
            await self._pipelined(records, facts, partitions, expected, started, outcome)
            return outcome
        if self._flight is not None:
            try:
                await self._land(self._flight, partitions, outcome)
            except _Abandoned:
                return outcome
        try:
            # Partitioned: other workers own other incidents, so they need not wait for us;
            # an embedded ingest into the same database does.
            async with self.store.writing(partitioned=True):
                prepared = await self.projector.prepare(records, expected, facts)
                if prepared.rejected:
                    await self.dead_letters.send(prepared.rejected)
                self._plan_sla(prepared)
                await self.store.commit(prepared.commit)
        except StalePosition as refused:
            outcome.stale = str(refused)
            await self._back_to_stored(self.store, partitions, outcome)
            return outcome
        self._committed(prepared, len(fresh), started)
        outcome.committed = len(fresh)
        return outcome

    async def _pipelined(self, records: list[Record], facts: Sequence[Fact | str] | None,
                         partitions: set[int], expected: dict[PositionKey, int],
                         started: float, outcome: Outcome) -> None:
        previous = self._flight
        turn = 0 if previous is None else 1 - previous.session
        session = self.sessions[turn]
        block = AsyncExitStack()
        try:
            await block.enter_async_context(session.writing(partitioned=True))
            ahead = None
            if previous is not None:
                if (not previous.task.done()
                        and await session.still_writing(self.sessions[previous.session])):
                    ahead = previous.prepared
                    self.overlaid += 1
                else:
                    await self._land(previous, partitions, outcome)
                    previous = None
            prepared = await self._projectors[turn].prepare(records, expected, facts, ahead)
            if prepared.rejected:
                await self.dead_letters.send(prepared.rejected)
            self._plan_sla(prepared)
            if previous is not None:
                await self._land(previous, partitions, outcome)
        except _Abandoned:
            await block.aclose()
            return
        except BaseException:
            await block.aclose()
            raise
        for (_, partition), position in prepared.commit.positions.items():
            self._ahead[partition] = position
        task = asyncio.ensure_future(self._commit(session, block, prepared, len(records),
                                                 started))
        self._flight = _InFlight(turn, prepared, partitions, len(records), task)

    def _plan_sla(self, prepared: PreparedBatch) -> None:
        if self.sla is not None:
            prepared.commit.sla = self.sla.for_batch(
                prepared.commit.incidents,
                max((e.at for e in prepared.commit.events), default=None),
                time.time_ns() // 1000)

    async def _commit(self, session: ProjectionStore, block: AsyncExitStack,
                      prepared: PreparedBatch, size: int, started: float) -> None:
        """The in-flight task: commit, then record the new positions at once (so lag
        and Kafka's committed offsets follow without waiting for the next batch)."""
        try:
            await session.commit(prepared.commit)
        finally:
            await block.aclose()
        self._committed(prepared, size, started)

    def _committed(self, prepared: PreparedBatch, size: int, started: float) -> None:
        """The batch's commit returned: its positions are stored, the observer hears."""
        for (_, partition), position in prepared.commit.positions.items():
            if partition in self.owned:  # revoked while the batch was in flight: not ours
                self.owned[partition] = position
            if self._ahead.get(partition) == position:
                del self._ahead[partition]
        if self.observer is not None:
            self.observer.batch_committed(
                size, prepared.accepted, len(prepared.rejected), prepared.commit.duplicates,
                time.perf_counter() - started,
                new_stage_durations(prepared.previous, prepared.commit.incidents))

    async def _land(self, flight: _InFlight, also: set[int], outcome: Outcome) -> None:
        """Wait for ``flight``'s commit. Refused: every partition of it and of ``also``
        (the batch prepared on it) goes back to its stored offset, and ``_Abandoned``
        is raised; any other failure is raised as it is."""
        try:
            # Shielded: a cancelled caller (shutdown) leaves the commit to drain().
            await asyncio.shield(flight.task)
        except StalePosition as refused:
            self._flight = None
            outcome.stale = str(refused)
            await self._back_to_stored(self.sessions[flight.session],
                                       flight.partitions | also, outcome)
            raise _Abandoned from refused
        except BaseException:
            if flight.task.done():
                self._flight = None
                for partition in flight.partitions | also:
                    self._ahead.pop(partition, None)
            raise
        self._flight = None
        outcome.committed += flight.size

    async def _back_to_stored(self, session: ProjectionStore, partitions: set[int],
                              outcome: Outcome) -> None:
        """After a refused commit: ``partitions`` (those still owned) seek back to what
        the store holds now."""
        stored = await session.positions(self.projector.consumer)
        for partition in partitions & self.owned.keys():  # not those revoked meanwhile
            self.owned[partition] = stored.get((self.topic, partition), 0)
            self._ahead.pop(partition, None)
            self._seeking[partition] = outcome.seek[partition] = self.owned[partition]

    async def drain(self) -> Outcome:
        """Wait for the commit in flight, if any (see module contract)."""
        outcome = Outcome()
        flight = self._flight
        if flight is not None:
            with suppress(_Abandoned):
                await self._land(flight, set(), outcome)
        return outcome

    def resync(self, partition: int) -> int | None:
        """The offset to seek ``partition`` back to when the client stopped delivering
        it although the topic holds more (its fetch position was moved past the
        stored one, e.g. to Kafka's committed offset after a rebalance, and no later
        message came to reveal the gap). None if not owned or already seeking.
        Call it only between batches."""
        if partition not in self.owned or partition in self._seeking:
            return None
        self._seeking[partition] = self._next(partition)
        return self._seeking[partition]

    async def rewind(self) -> dict[int, int]:
        """After a failed batch: every owned partition back to its stored offset."""
        if self._flight is not None:  # its failure is the reason we are here, or it lands
            with suppress(StoreUnavailable):
                await self.drain()
        self._ahead.clear()
        return await self.assign(list(self.owned))


def new_stage_durations(before: dict[str, Incident],
                        after: Sequence[Incident]) -> list[tuple[str, float]]:
    """Stage durations (minutes) that a batch defined for the first time."""
    found = []
    for incident in after:
        if not incident.is_outage:
            continue
        old = before.get(incident.incident_id)
        for k, stage in enumerate(STAGES, start=1):
            start, end = incident.times[k - 1], incident.times[k]
            if start is None or end is None or end < start:
                continue
            if old is not None and old.times[k - 1] is not None and old.times[k] is not None:
                continue
            found.append((stage, (end - start) / 60_000_000))
    return found
