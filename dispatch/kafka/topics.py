"""Create the engine's topics if missing (kafka-python admin client)."""

from __future__ import annotations

import contextlib
import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from dispatch.settings import Settings
from projections.ports import StoreUnavailable
from projections.stores.driver_errors import described

log = logging.getLogger(__name__)

UNLIMITED = {"retention.ms": "-1", "retention.bytes": "-1"}
"""The events topic is the source of truth: never expire it."""


def ensure_topics(settings: Settings) -> list[str]:
    """Create ``outage.events`` (settings.partitions, unlimited retention), the DLQ and
    the SLA alerts topic when they do not exist. Returns the names it created.
    ``StoreUnavailable`` if the broker does not answer or refuses."""
    try:
        return _ensure_topics(settings)
    except (KafkaError, OSError) as exc:
        raise StoreUnavailable(f"Kafka at {settings.kafka_bootstrap}: {described(exc)}") from exc


def _ensure_topics(settings: Settings) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                             client_id="dispatch-admin", request_timeout_ms=30_000)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(settings.topic_events, settings.partitions, 1, topic_configs=UNLIMITED),
            NewTopic(settings.topic_dlq, 1, 1, topic_configs=UNLIMITED),
            NewTopic(settings.topic_alerts, settings.partitions, 1),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            # Another process may create one between list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
            for topic in missing:
                log.info("created topic %s (%d partitions)", topic.name, topic.num_partitions)
        return [t.name for t in missing]
    finally:
        admin.close()
