"""Publishing events to ``outage.events``, keyed by incident, validated on the way in.

Duty events (``duty.*``) concern no incident: their key is ``duty``, so they all
land on one partition, in order, like the events of one incident.

confluent-kafka (librdkafka) is used here: of the three Kafka clients compared in
``bench/kafka_pipeline.py`` it was the fastest (figures in the README). Idempotence
is on, so a retried send neither duplicates nor reorders messages of one incident.
Lines are checked by ``schemas.lean`` first and by the pydantic contract when the
lean check cannot tell: the same events pass, with the same keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer

from projections.ports import Record, Rejected, StoreUnavailable
from schemas.events import Envelope
from schemas.events import kafka_key as key_of
from schemas.lean import lean_key, parse_event_lean
from schemas.parsing import InvalidEvent, parse_event


@dataclass(slots=True)
class ProduceSummary:
    lines: int = 0
    published: int = 0
    rejected: int = 0
    seconds: float = 0.0


def make_producer(bootstrap: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
    })


def produce_records(
    batches: Iterable[Sequence[Record]], producer: Producer, topic: str, dlq_topic: str,
    on_rejected: Callable[[Rejected], None] | None = None,
    on_batch: Callable[[Sequence[Record], ProduceSummary], None] | None = None,
) -> ProduceSummary:
    """Validate each record and publish it (key = incident id, ``crew:<id>`` for a
    roster entry). Rejected records go
    to ``dlq_topic`` with ``reason`` and ``source`` headers. Returns after every
    message is acked; raises ``StoreUnavailable`` if any delivery failed."""
    try:
        return _produce(batches, producer, topic, dlq_topic, on_rejected, on_batch)
    except KafkaException as exc:
        raise StoreUnavailable(f"Kafka: {exc}") from exc


def _produce(
    batches: Iterable[Sequence[Record]], producer: Producer, topic: str, dlq_topic: str,
    on_rejected: Callable[[Rejected], None] | None,
    on_batch: Callable[[Sequence[Record], ProduceSummary], None] | None,
) -> ProduceSummary:
    summary = ProduceSummary()
    failures: list[str] = []
    started = time.perf_counter()

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for records in batches:
        for record in records:
            lean = parse_event_lean(record.raw)  # plain events: no pydantic model needed
            if lean is not None:
                _send(producer, topic, lean_key(lean).encode(), record.raw, delivered, None)
                summary.published += 1
                continue
            try:
                event = parse_event(record.raw)
            except InvalidEvent as exc:
                summary.rejected += 1
                if on_rejected is not None:
                    on_rejected(Rejected(record, exc.reason))
                _send(producer, dlq_topic, None, record.raw, delivered,
                      [("reason", exc.reason.encode()),
                       ("source", record.label.encode())])
                continue
            _send(producer, topic, kafka_key(event), record.raw, delivered, None)
            summary.published += 1
        summary.lines += len(records)
        producer.poll(0)
        if on_batch is not None:
            on_batch(records, summary)
    remaining = producer.flush(120)
    if remaining or failures:
        raise KafkaException(f"{remaining} messages not delivered; first error: "
                             f"{failures[0] if failures else 'timeout'}")
    summary.seconds = time.perf_counter() - started
    return summary


def kafka_key(event: Envelope) -> bytes:
    """The message key: the incident id, ``duty`` for ``duty.*`` events, ``crew:<id>``
    for a roster entry."""
    return key_of(event).encode()


def _send(producer: Producer, topic: str, key: bytes | None, value: bytes,
          callback: Callable[[object, object], None],
          headers: list[tuple[str, str | bytes | None]] | None) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
            return
        except BufferError:  # local queue full: let librdkafka drain it, then retry
            producer.poll(0.05)
