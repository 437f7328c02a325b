"""The composition root: stores and adapters are built here, and only here, from ``Settings``.

The entry points (the CLI commands and the Faust worker) ask this module for the
store, the dead-letter adapter or the event producer they need, so every one of
them gets the same URL rules, duty calendar and change-log retention. Tests and
benchmarks may still build adapters directly, to inject fakes or compare variants.

Kafka client libraries are imported inside the functions that need them: the
embedded commands never load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dispatch.settings import Settings
from projections.ports import ProjectionStore
from projections.stores import open_store
from projections.stores.memory import MemoryStore

if TYPE_CHECKING:
    from confluent_kafka import Producer

    from dispatch.kafka.dead_letters import KafkaDeadLetters


def read_model_store(settings: Settings, url: str | None = None) -> ProjectionStore:
    """The read-model store at ``url`` (default ``settings.store``).

    A new store is created with the settings' duty calendar and SLA limits; an
    existing one keeps its own. The SQL stores keep their change log for ``change_retention_days``.
    """
    return open_store(url or settings.store, settings.calendar, settings.sla_limits,
                      change_retention_days=settings.change_retention_days)


def scratch_store(settings: Settings) -> MemoryStore:
    """An empty in-memory store with the settings' duty calendar and SLA limits
    (``report --input``)."""
    return MemoryStore(settings.calendar, sla_limits=settings.sla_limits)


def worker_store(settings: Settings, session_name: str = "dispatch") -> ProjectionStore:
    """The worker's read models: PostgreSQL at ``settings.pg_dsn``. A transaction the
    worker leaves open longer than ``worker_idle_transaction_timeout`` (the process
    frozen mid-batch) is ended by PostgreSQL, so the worker that took its partitions
    over is not held up by its locks for longer. ``session_name[PID]`` names the
    session in ``pg_stat_activity``."""
    from projections.stores.postgres import PostgresStore

    return PostgresStore(settings.pg_dsn.get_secret_value(), settings.calendar,
                         change_retention_days=settings.change_retention_days,
                         idle_transaction_timeout=settings.worker_idle_transaction_timeout,
                         session_name=session_name)


def dead_letters(settings: Settings) -> KafkaDeadLetters:
    """The worker's dead-letter adapter, on ``settings.topic_dlq``."""
    from dispatch.kafka.dead_letters import KafkaDeadLetters

    return KafkaDeadLetters(settings.kafka_bootstrap, settings.topic_dlq)


def event_producer(settings: Settings) -> Producer:
    """The producer ``dispatch produce`` publishes events and dead letters with."""
    from dispatch.kafka.producer import make_producer

    return make_producer(settings.kafka_bootstrap)
