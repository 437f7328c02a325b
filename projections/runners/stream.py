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
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from projections.incident import STAGES, Fact, Incident
from projections.ports import ProjectionStore, Record, Rejected, StalePosition
from projections.projector import Projector
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
    skipped: int = 0
    seek: dict[int, int] = field(default_factory=dict)
    """Partitions the client must seek to these offsets before fetching more."""
    stale: str | None = None
    """Why the store refused the batch (another worker moved its partitions)."""


class PartitionProjector:
    def __init__(self, store: ProjectionStore, topic: str, consumer: str,
                 dead_letters: DeadLetters, observer: Observer | None = None,
                 sla: SlaPolicy | None = None) -> None:
        self.store = store
        self.sla = sla
        """With a policy, each batch's commit also keeps the SLA state of its incidents."""
        self.topic = topic
        self.projector = Projector(store, consumer)
        self.dead_letters = dead_letters
        self.observer = observer
        self.owned: dict[int, int] = {}
        """partition -> next offset committed in the store (what we resume from)."""
        self._seeking: dict[int, int] = {}
        """partition -> offset we asked the client to seek to and have not seen yet."""

    async def assign(self, partitions: Iterable[int]) -> dict[int, int]:
        """Take ``partitions`` over; returns where the client must seek each."""
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
            expected = cursor.get(partition, self.owned[partition])
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
        expected = {(self.topic, p): self.owned[p] for p in partitions}
        try:
            # Partitioned: other workers own other incidents, so they need not wait for us;
            # an embedded ingest into the same database does.
            async with self.store.writing(partitioned=True):
                prepared = await self.projector.prepare(records, expected, facts)
                if prepared.rejected:
                    await self.dead_letters.send(prepared.rejected)
                if self.sla is not None:
                    prepared.commit.sla = self.sla.for_batch(
                        prepared.commit.incidents,
                        max((e.at for e in prepared.commit.events), default=None),
                        time.time_ns() // 1000)
                await self.store.commit(prepared.commit)
        except StalePosition as refused:
            outcome.stale = str(refused)
            stored = await self.store.positions(self.projector.consumer)
            for partition in partitions & self.owned.keys():  # not those revoked meanwhile
                self.owned[partition] = stored.get((self.topic, partition), 0)
                self._seeking[partition] = outcome.seek[partition] = self.owned[partition]
            return outcome
        for (_, partition), position in prepared.commit.positions.items():
            if partition in self.owned:  # revoked while the batch was in flight: not ours
                self.owned[partition] = position
        outcome.committed = len(fresh)
        if self.observer is not None:
            self.observer.batch_committed(
                len(fresh), prepared.accepted, len(prepared.rejected),
                prepared.commit.duplicates, time.perf_counter() - started,
                new_stage_durations(prepared.previous, prepared.commit.incidents))
        return outcome

    def resync(self, partition: int) -> int | None:
        """The offset to seek ``partition`` back to when the client stopped delivering
        it although the topic holds more (its fetch position was moved past the
        stored one, e.g. to Kafka's committed offset after a rebalance, and no later
        message came to reveal the gap). None if not owned or already seeking.
        Call it only between batches."""
        if partition not in self.owned or partition in self._seeking:
            return None
        self._seeking[partition] = self.owned[partition]
        return self.owned[partition]

    async def rewind(self) -> dict[int, int]:
        """After a failed batch: every owned partition back to its stored offset."""
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
