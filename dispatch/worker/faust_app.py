"""The Faust (faust-streaming) app behind ``dispatch worker``.

Faust brings the consumer group (membership, static names, rebalancing and its
callbacks), the consumer thread, the worker lifecycle and the timers. Messages
reach the projection in bulk (``dispatch.worker.bulk``): the fetcher hands each
whole fetch to a ``Batches`` buffer and the projection task takes up to
``batch_max`` messages at a time, without Faust's per-message events and acks.

Exactness comes from ``PartitionProjector``: each batch is committed to
PostgreSQL together with the next offset of every partition it covers, and
partitions are (re)positioned from those stored offsets, never from Kafka's.
It is pipelined on two sessions of the store: the next batch is read and folded
while the previous one commits.
Kafka's committed offsets are only kept up with the stored ones (a timer commits
them every ``broker_commit_interval``), so after a rebalance the client starts
near the stored position; re-deliveries below it are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any, cast

import faust

from dispatch import bootstrap
from dispatch.kafka.dead_letters import KafkaDeadLetters
from dispatch.kafka.metrics import WorkerMetrics
from dispatch.settings import Settings
from dispatch.worker import PIPELINE_FROM, WORKER_BATCH
from dispatch.worker.bulk import Batches, fetch_loop, parsed_batches
from dispatch.worker.sla_process import SlaProcess
from projections.incident import Fact
from projections.ports import ProjectionStore, StoreUnavailable
from projections.projector import facts_of
from projections.runners.stream import Message, PartitionProjector

log = logging.getLogger("dispatch.worker")
WATCHDOG_SECONDS = 3.0
"""A partition that lags without moving for two ticks in a row is sought back."""
SHUTDOWN_GRACE_SECONDS = 10.0
"""How long a shutdown waits for the batch in flight to commit before closing."""


class WorkerRuntime:
    """The worker's resources, opened once, on first need."""

    def __init__(self, app: faust.App, settings: Settings, metrics: WorkerMetrics,
                 store: ProjectionStore, dead_letters: KafkaDeadLetters) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.pipeline = store.sibling()
        """A second session: the next batch is prepared on it while one commits."""
        self.dead_letters = dead_letters
        policy = settings.sla_policy
        self.projector = PartitionProjector(self.store, settings.topic_events,
                                            settings.consumer_group, self.dead_letters,
                                            metrics, sla=policy, pipeline=self.pipeline,
                                            pipeline_from=PIPELINE_FROM)
        self.sla: SlaProcess | None = None
        """The SLA timer and alert relay, in a process with connections of their own."""
        if policy is not None:
            self.sla = SlaProcess(settings, metrics)
        self._opened: asyncio.Task[None] | None = None
        self._busy = False
        self.closing = False
        """Set at shutdown: no batch starts any more."""
        self._store_lock = asyncio.Lock()
        self._lagging: dict[int, int] = {}
        """partition -> stored position seen lagging at the last watchdog tick."""
        self._kafka_committed: dict[int, int] = {}
        """partition -> offset last committed to Kafka by this worker."""

    async def ready(self) -> None:
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._open())
        await self._opened

    @property
    def _stores(self) -> list[ProjectionStore]:
        return [self.store] if self.pipeline is None else [self.store, self.pipeline]

    async def _open(self) -> None:
        for store in self._stores:
            await store.open()
        await self.dead_letters.start()
        if self.sla is not None:
            self.sla.start()
        log.info("read models in PostgreSQL ready; duty calendar %s %s",
                 self.store.calendar.timezone, self.store.calendar.start_text)

    async def close(self) -> None:
        self.closing = True
        if self._opened is not None:
            # The batch in flight commits (or fails) first: its connection is not
            # closed under it.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._store_lock.acquire(), SHUTDOWN_GRACE_SECONDS)
                with suppress(StoreUnavailable):
                    await asyncio.wait_for(self.projector.drain(), SHUTDOWN_GRACE_SECONDS)
            await self.dead_letters.stop()
            for store in self._stores:
                await store.close()
            if self.sla is not None:
                await asyncio.to_thread(self.sla.stop)

    async def assigned(self, partitions: Iterable[int]) -> None:
        await self.ready()
        partitions = list(partitions)
        # A rebalance can come while a batch is talking to PostgreSQL: one connection,
        # one operation at a time. Seeks happen outside the lock (they wait for the
        # consumer thread, which may be waiting for this very callback).
        async with self._store_lock:
            settled = await self._settle()
            try:
                seeks = await self.projector.assign(partitions)
            except StoreUnavailable as exc:
                log.warning("stored positions not readable (%s); reconnecting", exc)
                await self._reconnect()
                seeks = await self.projector.assign(partitions)
        for partition, offset in {**settled, **seeks}.items():
            await self.seek(partition, offset)
        log.info("assigned partitions %s, resuming at %s", sorted(seeks), seeks)

    async def _settle(self) -> dict[int, int]:
        """Under the store lock: wait for the commit in flight. Returns the seeks its
        outcome asks for (to do outside the lock): none when it landed, its partitions
        back to what is stored when refused, every owned partition back to what is
        stored after a failure (once PostgreSQL answers again)."""
        try:
            outcome = await self.projector.drain()
        except StoreUnavailable as exc:
            if self.closing:
                return {}
            log.warning("batch not committed (%s); reconnecting and rewinding", exc)
            await self._reconnect()
            return await self.projector.rewind()
        if outcome.stale is not None:
            log.warning("batch refused: %s (another worker owns the partition now)",
                        outcome.stale)
        return outcome.seek

    def revoked(self, partitions: Iterable[int]) -> None:
        partitions = list(partitions)
        self.projector.revoke(partitions)
        for partition in partitions:
            self._kafka_committed.pop(partition, None)
        log.info("revoked partitions %s", sorted(partitions))

    def _tp(self, partition: int) -> Any:
        # Faust's public ``faust.types.TP`` is not the driver's type: the aiokafka driver
        # keys its assignment and read offsets by aiokafka's ``TopicPartition``.
        # ``_new_topicpartition`` is the factory every Faust driver implements (abstract
        # on ``faust.transport.consumer.Consumer``), so seeks and high-water look-ups get
        # exactly the object the driver itself uses, whichever driver is configured.
        consumer: Any = self.app.consumer
        return consumer._new_topicpartition(self.settings.topic_events, partition)

    async def seek(self, partition: int, offset: int) -> None:
        # seek_wait runs on the consumer's own thread (aiokafka is not thread-safe) and
        # resets Faust's read offset, without which re-fetched messages would be dropped.
        await self.app.consumer.seek_wait({self._tp(partition): offset})

    async def handle(self, messages: list[Message],
                     parsed: Sequence[Fact | str] | None = None) -> None:
        self._busy = True
        try:
            await self._handle(messages, parsed)
        finally:
            self._busy = False

    async def commit_offsets(self) -> None:
        """Timer body: tell Kafka the stored positions that moved since the last call
        (monitoring tools and the next owner's starting point; the store stays the
        truth). Skipped during a rebalance; a refused commit is retried next time."""
        if self.app.rebalancing or self._opened is None or not self._opened.done():
            return
        moved = {p: o for p, o in list(self.projector.owned.items())
                 if self._kafka_committed.get(p) != o}
        if not moved:
            return
        consumer: Any = self.app.consumer
        # ``_commit`` is the driver's offset commit (on its own thread, limited to the
        # current assignment); Faust's public ``commit`` only commits acked events.
        if await consumer._commit({self._tp(p): o for p, o in moved.items()}):
            self._kafka_committed.update(moved)

    async def watchdog(self) -> None:
        """Seek back any owned partition that lagged at the same stored position at
        the last tick and at this one.

        After a rebalance Faust positions a partition at Kafka's committed offset,
        which this worker keeps at or below the stored one, but another client of
        the group may have moved it past; the gap is found when a later message
        arrives, but on a quiet partition none may come, and its tail would wait for
        new traffic."""
        if self.sla is not None and self.sla.failure is not None:
            raise RuntimeError("the SLA timer stopped") from self.sla.failure
        if self._busy or self._opened is None or not self._opened.done():
            return
        # A commit that failed while no batch followed is only seen here.
        async with self._store_lock:
            settled = await self._settle()
        for partition, stored in settled.items():
            await self.seek(partition, stored)
        if settled:
            return
        lagging: dict[int, int] = {}
        for partition, position in list(self.projector.owned.items()):
            try:
                high = self.app.consumer.highwater(self._tp(partition))
            except Exception:  # nothing fetched yet: unknown
                continue
            if high is not None and high > position:
                lagging[partition] = position
        for partition, position in lagging.items():
            if self._lagging.get(partition) == position:
                offset = self.projector.resync(partition)
                if offset is not None:
                    log.warning("partition %d: no progress at offset %d below the end %s; "
                                "seeking back", partition, offset,
                                self.app.consumer.highwater(self._tp(partition)))
                    await self.seek(partition, offset)
        self._lagging = lagging

    async def _handle(self, messages: list[Message],
                      parsed: Sequence[Fact | str] | None) -> None:
        try:
            async with self._store_lock:
                if self.closing:
                    return
                outcome = await self.projector.handle(messages, parsed)
        except StoreUnavailable as exc:
            if self.closing:
                return
            # Nothing of this batch was committed. Faust has already fetched past it,
            # so once PostgreSQL (or the DLQ) answers again, every owned partition
            # goes back to its stored offset and the batch is fetched anew.
            log.warning("batch not committed (%s); reconnecting and rewinding", exc)
            await self._recover()
            return
        if outcome.stale is not None:
            log.warning("batch refused: %s (another worker owns the partition now)",
                        outcome.stale)
        for partition, offset in outcome.seek.items():
            log.warning("partition %d: repositioning to stored offset %d", partition, offset)
            await self.seek(partition, offset)
        self._update_lag()

    async def _recover(self) -> None:
        async with self._store_lock:
            with suppress(StoreUnavailable):
                await self.projector.drain()
            await self._reconnect()
            seeks = await self.projector.rewind()
        for partition, offset in seeks.items():
            await self.seek(partition, offset)

    async def _reconnect(self) -> None:
        delay = 0.5
        while True:
            try:
                for store in self._stores:
                    await store.close()
                    await store.open()
                break
            except StoreUnavailable as exc:
                log.warning("PostgreSQL not answering (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _update_lag(self) -> None:
        for partition, position in self.projector.owned.items():
            try:
                high = self.app.consumer.highwater(self._tp(partition))
            except Exception:  # no fetch yet for this partition: lag unknown
                continue
            if high is not None:
                self.metrics.set_lag(partition, max(0, high - position))


def build_app(settings: Settings, *, batch_max: int = WORKER_BATCH,
              metrics: WorkerMetrics | None = None) -> tuple[faust.App, WorkerRuntime]:
    app = faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        value_serializer="raw",
        key_serializer="raw",
        # One fetch is at most this many records (whole fetches go to the batches).
        broker_max_poll_records=batch_max,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        # Recovery after a crash: a static member (group.instance.id) restarted under
        # its name rejoins with its old assignment and no rebalance; a dynamic one
        # waits for the dead member's session to expire, so that is kept short.
        consumer_group_instance_id=settings.worker_instance_id,
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=settings.worker_heartbeat_interval,
    )
    runtime = WorkerRuntime(app, settings, metrics or WorkerMetrics(),
                            bootstrap.worker_store(settings), bootstrap.dead_letters(settings))
    batches = Batches(limit=2 * batch_max)
    # No agent reads this topic: it is registered with Faust's conductor only so the
    # consumer subscribes to it (and rebalances it); without acks, since no event is
    # acked one by one (offsets live in PostgreSQL).
    topic = app.topic(settings.topic_events, key_type=bytes, value_type=bytes,
                      partitions=settings.partitions, acks=False)
    app.topics.add(topic)
    transport: Any = app.transport
    driver_consumer: Any = transport.Consumer

    class BulkConsumer(driver_consumer):  # type: ignore[misc]
        """Faust's consumer for the configured driver, whose fetcher loop delivers
        whole fetches to ``batches`` instead of one event at a time."""

        async def _drain_messages(self, fetcher: Any) -> None:
            try:
                await fetch_loop(self, settings.topic_events, batches,
                                 lambda: self._stopped.is_set() or fetcher._stopped.is_set())
            except self.consumer_stopped_errors:
                if not self.transport.app.should_stop:
                    raise
                log.info("broker stopped the consumer; shutting down")

    transport.Consumer = BulkConsumer

    def ours(tps: Iterable[Any]) -> list[int]:
        return [tp.partition for tp in tps if tp.topic == settings.topic_events]

    async def on_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
        partitions = ours(revoked)
        runtime.revoked(partitions)
        # Their pending messages belong to the next owner (the projection would skip
        # them anyway: this only saves the work).
        batches.discard(partitions)

    async def on_assigned(app: faust.App, assigned: set[Any], **_: Any) -> None:
        mine = set(ours(assigned))
        gone = [p for p in runtime.projector.owned if p not in mine]
        runtime.revoked(gone)
        batches.discard(gone)
        await runtime.assigned([p for p in mine if p not in runtime.projector.owned])

    async def project() -> None:
        await runtime.ready()
        async for batch, parsed in parsed_batches(batches, batch_max, facts_of):
            if runtime.closing:
                break
            await runtime.handle(batch, parsed)

    task: Any = app.task  # Faust's decorators are untyped
    task(project)

    async def watchdog() -> None:
        await runtime.watchdog()

    timer: Any = app.timer(interval=WATCHDOG_SECONDS)
    timer(watchdog)

    async def commit_offsets() -> None:
        await runtime.commit_offsets()

    every_commit: Any = app.timer(interval=app.conf.broker_commit_interval)
    every_commit(commit_offsets)

    async def on_shutdown(app: faust.App, **_: Any) -> None:
        await runtime.close()

    # Faust's signal typing wants a positional sender and a ``signal`` keyword.
    app.on_partitions_revoked.connect(cast(Any, on_revoked))
    app.on_partitions_assigned.connect(cast(Any, on_assigned))
    app.on_before_shutdown.connect(cast(Any, on_shutdown))
    return app, runtime
