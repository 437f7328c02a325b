"""The outbox relay: events written by commands, published to Kafka after the commit.

Contract: every outbox row is published to the events topic with its key (the
incident id, or ``crew:<id>``), exactly the bytes ``dispatch produce`` would
send, and marked published only after Kafka acknowledged it. A crash between
the commit and the publish loses nothing (the row stays unpublished and is sent
on the next start); a crash between the acknowledgement and the mark sends
that batch again, and consumers drop the copies by ``event_id`` (the worker
counts them as duplicates). The command side already folded every event it
wrote, so a worker folding the topic into the same store sees them all as
duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

from projections.ports import OutboxEntry, ProjectionStore

BATCH = 500


class OutboxRelay:
    def __init__(self, store_factory: Callable[[], ProjectionStore],
                 producer_factory: Callable[[], Any], topic: str,
                 interval: float = 0.2) -> None:
        self._store_factory = store_factory
        self._producer_factory = producer_factory
        self._producer: Any = None
        self.topic = topic
        self.interval = interval
        self.published = 0

    async def run(self) -> None:
        """Drain the outbox until cancelled; errors are reported and retried."""
        store = self._store_factory()
        try:
            while True:
                try:
                    await store.open()  # idempotent
                    sent = await self.drain(store)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Kafka or the store is away: retry later
                    print(f"dispatch serve: outbox relay: {type(exc).__name__}: {exc}",
                          file=sys.stderr, flush=True)
                    sent = 0
                    with contextlib.suppress(Exception):
                        await store.close()
                    store = self._store_factory()  # a fresh connection next time
                    await asyncio.sleep(2.0)
                if not sent:
                    await asyncio.sleep(self.interval)
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    async def drain(self, store: ProjectionStore) -> int:
        """Publish one batch of unpublished rows, then mark them; returns how many."""
        rows = await store.unpublished(BATCH)
        if not rows:
            return 0
        await asyncio.to_thread(self._publish, [entry for _, entry in rows])
        await store.mark_published([seq for seq, _ in rows])
        self.published += len(rows)
        return len(rows)

    def _publish(self, entries: list[OutboxEntry]) -> None:
        from confluent_kafka import KafkaException

        if self._producer is None:
            self._producer = self._producer_factory()
        failures: list[str] = []

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                failures.append(str(error))

        for entry in entries:
            self._producer.produce(self.topic, value=entry.raw, key=entry.key.encode(),
                                   on_delivery=delivered)
        remaining = self._producer.flush(30)
        if remaining or failures:
            raise KafkaException(f"{remaining} outbox events not acknowledged; first error: "
                                 f"{failures[0] if failures else 'timeout'}")

