"""The live SLA loop of a worker: evaluate deadlines on a timer, relay the alert
outbox to the alert log, once per transition.

Contract:
- ``tick()`` commits one SLA evaluation of every stored rule due by now (the
  wall clock or the stored event clock), so warnings and breaches are raised
  also when no event arrives;
- ``relay()`` publishes the outbox entries not yet marked sent, in outbox
  order, and marks them sent (with the log positions reached) only after the
  log acknowledged every one of them. A crash after the batch's commit and
  before publishing leaves the entries unsent: they are published after the
  restart (not lost). A crash after publishing and before marking them leaves
  them published but unsent: ``recover()``, run before the first relay, reads
  the alert log from the positions stored with the last marking and marks what
  it finds there sent (not repeated);
- only one relay runs per store: ``claim_alert_relay`` decides, and a relay
  that is not the one keeps asking, so another worker takes over when the
  relaying one dies;
- ``prune()`` deletes the entries sent (or withheld) more than
  ``retention_days`` ago; unsent entries are never pruned. An ``alert_id``
  cannot come back after its entry is pruned: the stored SLA state keeps the
  raised level until the rule ends, and an ended rule raises nothing again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from projections.ports import ALERT_RELAY, AlertEntry, PositionKey, ProjectionStore
from projections.sla_live import SlaPolicy, SlaUpdate


class AlertLog(Protocol):
    """Where alerts are published (the Kafka alert topic)."""

    async def publish(self, entries: Sequence[AlertEntry]) -> dict[PositionKey, int]:
        """Publish every entry (key: incident id, value: payload) and return, per log
        partition, the position after the last one written; raise if any failed."""

    async def published_since(
            self, positions: dict[PositionKey, int]) -> tuple[set[str], dict[PositionKey, int]]:
        """The alert ids written at or after ``positions`` (partitions not named: from
        their beginning), and the positions after the last record read."""


class SlaObserver(Protocol):
    def alerts_published(self, entries: Sequence[AlertEntry], now_us: int) -> None: ...

    def sla_evaluated(self, update: SlaUpdate) -> None: ...


@dataclass(slots=True)
class SlaLoop:
    store: ProjectionStore
    log: AlertLog
    policy: SlaPolicy
    observer: SlaObserver | None = None
    clock: Callable[[], int] = field(default=lambda: time.time_ns() // 1000)
    batch: int = 1000
    claimed: bool = False
    """Whether this loop is the store's relay (``recover`` done)."""
    retention_days: float = 7.0
    """How long sent entries stay in the outbox."""

    async def tick(self) -> SlaUpdate:
        update = await self.store.sla_tick(self.policy.for_tick(self.clock()))
        if self.observer is not None:
            self.observer.sla_evaluated(update)
        return update

    async def recover(self) -> int:
        """Mark sent what an earlier relay published but did not mark; returns how many."""
        unsent = {e.alert_id for e in await self.store.unsent_alerts(limit=1_000_000)}
        positions = await self.store.positions(ALERT_RELAY)
        if not unsent:
            return 0
        found, reached = await self.log.published_since(positions)
        done: Collection[str] = unsent & found
        await self.store.mark_alerts_sent(done, self.clock(), reached)
        return len(done)

    async def relay(self) -> int:
        """Publish pending outbox entries if this loop is the relay; returns how many."""
        if not self.claimed:
            if not await self.store.claim_alert_relay():
                return 0
            await self.recover()
            self.claimed = True
        sent = 0
        while True:
            entries = await self.store.unsent_alerts(self.batch)
            if not entries:
                return sent
            positions = await self.log.publish(entries)
            now = self.clock()
            await self.store.mark_alerts_sent([e.alert_id for e in entries], now, positions)
            if self.observer is not None:
                self.observer.alerts_published(entries, now)
            sent += len(entries)
            if len(entries) < self.batch:
                return sent

    async def prune(self) -> int:
        """Delete entries sent more than ``retention_days`` ago; returns how many."""
        return await self.store.prune_alert_outbox(
            self.clock() - round(self.retention_days * 86_400_000_000))
