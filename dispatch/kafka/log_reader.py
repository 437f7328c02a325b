"""Bulk reads of a whole topic with confluent-kafka (librdkafka), for ``dispatch replay``.

confluent-kafka is the fastest of the clients we measured (``bench/kafka_pipeline.py``,
step 1): it fetches in a C thread and hands over thousands of messages per call.
No consumer group is joined: partitions are assigned by hand at the offsets the
replay asks for, and nothing is committed to Kafka (the store keeps the offsets).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from projections.ports import StoreUnavailable
from projections.runners.replay import LogMessage

TIMEOUT = 30.0


class KafkaLog:
    """``PartitionedLog`` on one topic of a Kafka cluster. Broker errors are raised as
    ``StoreUnavailable`` naming the broker."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._consumer: Any = Consumer({
            "bootstrap.servers": bootstrap,
            # Required by the client even when no group is joined; never committed.
            "group.id": f"dispatch-replay-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "max.partition.fetch.bytes": 16 << 20,
            "fetch.max.bytes": 64 << 20,
            "queued.min.messages": 100_000,
            "queued.max.messages.kbytes": 64 << 10,  # bounds the prefetch memory
            "socket.timeout.ms": 10_000,
        })

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> KafkaLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, what: str, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"Kafka at {self.bootstrap}: {what}: {exc}")

    def partitions(self) -> list[int]:
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=TIMEOUT)
        except KafkaException as exc:
            raise self._fail("cannot list topics", exc) from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise StoreUnavailable(f"Kafka at {self.bootstrap}: no topic {self.topic!r}")
        return sorted(topic.partitions)

    def bounds(self, from_us: int | None,
               to_us: int | None) -> dict[int, tuple[int, int]]:
        try:
            marks = {p: self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=TIMEOUT, cached=False)
                for p in self.partitions()}
            starts = {p: low for p, (low, _) in marks.items()}
            stops = {p: high for p, (_, high) in marks.items()}
            if from_us is not None:
                starts = self._offsets_at(-(-from_us // 1000), stops)
            if to_us is not None:
                # Kafka timestamps are milliseconds: stop at the first one after to_us.
                stops = self._offsets_at(to_us // 1000 + 1, stops)
        except KafkaException as exc:
            raise self._fail("cannot read the partitions' offsets", exc) from exc
        return {p: (max(starts[p], marks[p][0]), max(min(stops[p], marks[p][1]), marks[p][0]))
                for p in marks}

    def _offsets_at(self, at_ms: int, ends: dict[int, int]) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is >= ``at_ms`` (the end if none)."""
        wanted = [TopicPartition(self.topic, p, max(0, at_ms)) for p in ends]
        found = self._consumer.offsets_for_times(wanted, timeout=TIMEOUT)
        return {tp.partition: ends[tp.partition] if tp.offset in (-1, OFFSET_END) else tp.offset
                for tp in found}

    def read(self, starts: dict[int, int], stops: dict[int, int],
             max_messages: int) -> Iterator[list[LogMessage]]:
        remaining = {p for p in starts if stops[p] > starts[p]}
        if not remaining:
            return
        consumer = self._consumer
        consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in sorted(remaining)])
        batch: list[LogMessage] = []
        try:
            while remaining:
                try:
                    got = consumer.consume(num_messages=min(max_messages, 10_000),
                                           timeout=1.0)
                except KafkaException as exc:
                    raise self._fail("read failed", exc) from exc
                for message in got:
                    error = message.error()
                    if error is not None:
                        if error.fatal() or not error.retriable():
                            raise self._fail("read failed", KafkaException(error))
                        continue
                    partition, offset = message.partition(), message.offset()
                    if partition not in remaining or offset >= stops[partition]:
                        continue
                    kind, millis = message.timestamp()
                    batch.append(LogMessage(partition, offset, message.value() or b"",
                                            millis * 1000 if kind else None))
                    if offset + 1 >= stops[partition]:
                        remaining.discard(partition)
                        consumer.pause([TopicPartition(self.topic, partition)])
                    if len(batch) >= max_messages:
                        yield batch
                        batch = []
            if batch:
                yield batch
        finally:
            consumer.unassign()
