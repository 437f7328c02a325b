"""The alert topic (``outage.sla-alerts``) as the relay's ``AlertLog`` (aiokafka).

Each alert transition is one message: key = incident id (so one incident's
transitions stay in order on one partition), value = the JSON payload, header
``alert_id``. The producer is idempotent with ``acks=all``: its own retries
never duplicate a message; what a crash could duplicate, the relay's recovery
(``projections.runners.alerts``) finds by reading the topic back.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from projections.ports import AlertEntry, PositionKey
from projections.stores.driver_errors import described, translate_errors


def _describe(adapter: KafkaAlertLog, exc: BaseException) -> str:
    return f"Kafka at {adapter.bootstrap}: {described(exc)}"


@translate_errors((KafkaError, OSError), _describe)
class KafkaAlertLog:
    """``AlertLog`` port on the alert topic; broker errors leave every method as
    ``StoreUnavailable``."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka binds to the running loop, so the producer is made here, not in __init__.
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          enable_idempotence=True, linger_ms=0)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, entries: Sequence[AlertEntry]) -> dict[PositionKey, int]:
        if self._producer is None:
            raise RuntimeError("alert producer not started")
        futures = [await self._producer.send(
            self.topic, key=e.incident_id.encode(), value=e.payload,
            headers=[("alert_id", e.alert_id.encode())]) for e in entries]
        reached: dict[PositionKey, int] = {}
        for future in futures:
            meta = await future
            key = (self.topic, meta.partition)
            reached[key] = max(reached.get(key, 0), meta.offset + 1)
        return reached

    async def published_since(
            self, positions: dict[PositionKey, int]) -> tuple[set[str], dict[PositionKey, int]]:
        if self._producer is None:
            raise RuntimeError("alert producer not started")
        partitions = await self._producer.partitions_for(self.topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            found: set[str] = set()
            reached: dict[PositionKey, int] = {}
            for tp in tps:
                start = positions.get((self.topic, tp.partition), 0)
                reached[(self.topic, tp.partition)] = max(start, ends[tp])
                if start >= ends[tp]:
                    continue
                consumer.seek(tp, start)
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                    for record in batch.get(tp, []):
                        found.add(alert_id_of(record.headers, record.value))
            return found, reached
        finally:
            await consumer.stop()


def alert_id_of(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> str:
    for name, raw in headers:
        if name == "alert_id":
            return raw.decode()
    return str(orjson.loads(value or b"{}").get("alert_id", ""))
