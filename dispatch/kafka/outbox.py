"""The events topic as the command outbox relay's ``EventLog`` (confluent-kafka).

Each outbox row is one message: the key and value ``dispatch produce`` would
send (incident id or ``crew:<id>``; the event's JSON), plus the headers
``event_id`` and ``outbox_seq``, by which a relay that restarts recognises what
an earlier one published and did not get to mark
(``dispatch.api.relay``). The producer is idempotent with ``acks=all``, so its
own retries never duplicate a message. The methods block: the relay runs them
in a thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from projections.ports import OutboxEntry, PositionKey

EVENT_ID_HEADER = "event_id"
SEQ_HEADER = "outbox_seq"


class KafkaEventLog:
    def __init__(self, bootstrap: str, topic: str, producer_factory: Callable[[], Any]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer_factory = producer_factory
        self._producer: Any = None

    def _partitions(self) -> list[int]:
        if self._producer is None:
            self._producer = self._producer_factory()
        metadata = self._producer.list_topics(self.topic, timeout=10)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise KafkaException(f"topic {self.topic} not found"
                                 + (f": {topic.error}" if topic and topic.error else ""))
        return sorted(topic.partitions)

    def publish(self, rows: Sequence[tuple[int, OutboxEntry]]) -> dict[PositionKey, int]:
        """Publish every row; per partition, the offset after the last one written.
        Raises if any was not acknowledged."""
        if self._producer is None:
            self._producer = self._producer_factory()
        failures: list[str] = []
        reached: dict[PositionKey, int] = {}

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(str(error))
                return
            key = (self.topic, message.partition())
            reached[key] = max(reached.get(key, 0), message.offset() + 1)

        for seq, entry in rows:
            self._producer.produce(
                self.topic, value=entry.raw, key=entry.key.encode(), on_delivery=delivered,
                headers=[(EVENT_ID_HEADER, entry.event_id.encode()),
                         (SEQ_HEADER, str(seq).encode())])
        remaining = self._producer.flush(30)
        if remaining or failures:
            raise KafkaException(f"{remaining} outbox events not acknowledged; first error: "
                                 f"{failures[0] if failures else 'timeout'}")
        return reached

    def ends(self) -> dict[PositionKey, int]:
        """The end offset of every partition (where the next message will go)."""
        consumer = self._consumer()
        try:
            return {(self.topic, p): consumer.get_watermark_offsets(
                        TopicPartition(self.topic, p), timeout=10)[1]
                    for p in self._partitions()}
        finally:
            consumer.close()

    def published_since(self, positions: Mapping[PositionKey, int]
                        ) -> tuple[set[str], dict[PositionKey, int]]:
        """The event ids of outbox messages at or after ``positions`` (partitions not
        named: from their beginning), and the end offsets read up to."""
        consumer = self._consumer()
        try:
            found: set[str] = set()
            reached: dict[PositionKey, int] = {}
            pending: dict[int, int] = {}
            assignment = []
            for p in self._partitions():
                tp = TopicPartition(self.topic, p)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                start = max(low, positions.get((self.topic, p), low))
                reached[(self.topic, p)] = max(start, high)
                if start < high:
                    pending[p] = high
                    assignment.append(TopicPartition(self.topic, p, start))
            if not assignment:
                return found, reached
            consumer.assign(assignment)
            idle = 0
            while pending:
                message = consumer.poll(1.0)
                if message is None:
                    # Offsets may have gaps (e.g. transaction markers of another producer):
                    # a partition is done once the consumer's position reached its end.
                    for tp in consumer.position([TopicPartition(self.topic, p)
                                                 for p in list(pending)]):
                        if tp.offset >= pending[tp.partition]:
                            del pending[tp.partition]
                    idle += 1
                    if idle > 30:
                        raise KafkaException(f"reading {self.topic} back: no message in 30 s, "
                                             f"{len(pending)} partitions unread")
                    continue
                idle = 0
                if message.error() is not None:
                    raise KafkaException(message.error())
                partition, offset = message.partition(), message.offset()
                raw_headers = message.headers() or ()
                pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
                for name, value in pairs:
                    if name == EVENT_ID_HEADER and isinstance(value, bytes):
                        found.add(value.decode())
                if (partition in pending and offset is not None
                        and offset + 1 >= pending[partition]):
                    del pending[partition]
            return found, reached
        finally:
            consumer.close()

    def _consumer(self) -> Consumer:
        # Assigned partitions only, nothing committed: the group is never joined.
        return Consumer({"bootstrap.servers": self.bootstrap,
                         "group.id": f"dispatch-outbox-recovery-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": False})
