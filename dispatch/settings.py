"""One typed settings object, built once at the entry point.

Sources, strongest first: command-line options (applied by the CLI), environment
variables ``DISPATCH_*``, the TOML file named by ``DISPATCH_CONFIG`` (optional),
then the defaults below. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import math
import os
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from projections.duty import DutyCalendar, load_zone, parse_duty_start
from projections.sla import AREAS, DEFAULT_LIMITS, DEFAULT_PRIORITY_LIMITS, RULES, SlaLimits
from projections.sla_live import SlaPolicy


def _minutes(key: str, value: Any) -> float:
    """A limit in minutes: a finite number above 0 (numeric strings come from env)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{key} must be a number of minutes, got {value!r}")
    try:
        minutes = float(value)
    except ValueError:
        raise ValueError(f"{key} must be a number of minutes, got {value!r}") from None
    if not math.isfinite(minutes) or minutes <= 0:
        raise ValueError(f"{key} must be a number of minutes above 0, got {value!r}")
    return minutes


def _limits_by_area(rule: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"sla.{rule} must be a table of area = minutes, got {value!r}")
    unknown = sorted(set(value) - set(AREAS))
    if unknown:
        raise ValueError(f"sla.{rule}.{unknown[0]}: unknown area (use {', '.join(AREAS)})")
    merged = dict(DEFAULT_LIMITS[rule])
    merged.update({area: _minutes(f"sla.{rule}.{area}", v) for area, v in value.items()})
    return merged


class SlaSettings(BaseModel):
    """``[sla]`` in the TOML file, ``DISPATCH_SLA__ARRIVAL__URBAN=40`` and the like in env.

    ``arrival`` / ``restoration``: minutes per area (areas not given keep their
    default); ``priority``: the cap per rule for vulnerable and important
    incidents (a rule not given keeps its default: arrival 30, restoration none).
    """

    model_config = ConfigDict(extra="forbid")

    arrival: dict[str, float] = dict(DEFAULT_LIMITS["arrival"])
    restoration: dict[str, float] = dict(DEFAULT_LIMITS["restoration"])
    priority: dict[str, float | None] = dict(DEFAULT_PRIORITY_LIMITS)

    @field_validator("arrival", "restoration", mode="before")
    @classmethod
    def _by_area(cls, value: Any, info: Any) -> dict[str, float]:
        return _limits_by_area(info.field_name, value)

    @field_validator("priority", mode="before")
    @classmethod
    def _caps(cls, value: Any) -> dict[str, float | None]:
        if not isinstance(value, dict):
            raise ValueError(f"sla.priority must be a table of rule = minutes, got {value!r}")
        unknown = sorted(set(value) - set(RULES))
        if unknown:
            raise ValueError(f"sla.priority.{unknown[0]}: unknown rule (use {', '.join(RULES)})")
        merged = dict(DEFAULT_PRIORITY_LIMITS)
        merged.update({rule: _minutes(f"sla.priority.{rule}", v) for rule, v in value.items()})
        return merged

    def limits(self) -> SlaLimits:
        return SlaLimits({"arrival": dict(self.arrival), "restoration": dict(self.restoration)},
                         dict(self.priority))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCH_", extra="ignore",
                                      env_nested_delimiter="__")

    store: str = "sqlite:///dispatch.db"
    """Where read models live: sqlite:///PATH (default: dispatch.db here) or postgresql://."""
    duty_timezone: str = "Asia/Shanghai"
    duty_start: str = "08:30"
    batch_size: int = 10_000

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_events: str = "outage.events"
    topic_dlq: str = "outage.events.dlq"
    topic_alerts: str = "outage.sla-alerts"
    partitions: int = 6
    consumer_group: str = "dispatch-projector"
    pg_dsn: SecretStr = SecretStr("postgresql://dispatch:dispatch@127.0.0.1:5432/dispatch")
    metrics_port: int = 9108
    worker_instance_id: str | None = None
    """Kafka static group membership (``group.instance.id``): a stable name per worker
    process slot (e.g. ``dispatch-worker-1``). A worker restarted under the same name
    gets its partitions back at once, without waiting for its old session to expire
    and without a rebalance. Unset: dynamic membership. Two running workers must
    never share a name (the broker fences the older one)."""
    worker_session_timeout: float = 8.0
    """Seconds without a heartbeat after which the broker drops a worker from the
    group and hands its partitions to the others (broker bounds: 6 s to 30 min)."""
    worker_heartbeat_interval: float = 2.0
    """Seconds between heartbeats; at most a third of the session timeout."""
    worker_idle_transaction_timeout: float = 30.0
    """Seconds PostgreSQL lets a worker's open transaction wait for the worker (one
    frozen mid-batch) before ending its session and releasing its locks."""

    sla: SlaSettings = SlaSettings()
    sla_clock: Literal["wall", "event"] | None = None
    """What "now" is for SLA deadlines: the wall clock, or the largest occurred_at seen.
    Unset: the wall clock for the worker, the event clock for ``ingest`` (files)."""
    sla_alert_horizon_hours: float = 24.0
    """On the wall clock, a transition found more than this many hours after it took
    effect (old events loaded late) is recorded but not published. 0: no horizon."""
    sla_outbox_retention_days: float = 7.0
    """How long the alert outbox keeps entries after they were published."""
    sla_live: bool = True
    """Keep the live SLA state and alert outbox in the store (ingest and worker)."""
    sla_tick_seconds: float = 0.5
    """How often the worker evaluates deadlines when no event arrives."""
    sla_relay_seconds: float = 0.2
    """How often the worker publishes new outbox entries to the alert topic."""

    change_retention_days: float = 7.0
    """How long the change log keeps changes for live subscribers (``dispatch serve``)."""
    sse_heartbeat_seconds: float = 15.0
    """A comment line on idle streams this often, so proxies and clients see a live link."""
    sse_queue_size: int = 2000
    """Changes a stream subscriber may lag behind before it is dropped (it reconnects)."""
    api_tokens: SecretStr = SecretStr("")
    """Comma-separated bearer tokens of the HTTP API; an entry may later carry a role
    (``TOKEN:ROLE``). Never printed."""

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value != "memory://" and not value.startswith(
                ("sqlite:///", "postgresql://", "postgres://")):
            scheme = value.split("://", 1)[0] if "://" in value else value
            raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:///PATH or "
                             "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        return value

    @field_validator("duty_timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("duty_start")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        parse_duty_start(value)
        return value

    @field_validator("change_retention_days", "sse_heartbeat_seconds")
    @classmethod
    def _positive_days(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be more than 0")
        return value

    @field_validator("sla_alert_horizon_hours", "sla_outbox_retention_days")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a number of at least 0")
        return value

    @field_validator("sla_tick_seconds", "sla_relay_seconds")
    @classmethod
    def _interval(cls, value: float) -> float:
        if not math.isfinite(value) or not 0.01 <= value <= 60:
            raise ValueError("must be between 0.01 and 60 seconds")
        return value

    @field_validator("batch_size", "partitions", "sse_queue_size")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("worker_instance_id")
    @classmethod
    def _instance_name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        if not 1.0 <= self.worker_session_timeout <= 1800.0:
            raise ValueError("worker_session_timeout must be between 1 and 1800 seconds")
        if self.worker_idle_transaction_timeout <= 0:
            raise ValueError("worker_idle_transaction_timeout must be above 0 seconds")
        if not 0 < self.worker_heartbeat_interval <= self.worker_session_timeout / 3:
            raise ValueError("worker_heartbeat_interval must be above 0 and at most a third "
                             "of worker_session_timeout")
        return self

    @property
    def sla_limits(self) -> SlaLimits:
        return self.sla.limits()

    @property
    def sla_policy(self) -> SlaPolicy | None:
        """What the worker evaluates live (the wall clock unless set otherwise);
        None when ``sla_live`` is off."""
        return self._sla_policy("wall")

    @property
    def ingest_sla_policy(self) -> SlaPolicy | None:
        """What ``ingest`` evaluates: a file is read as of its own time (the event
        clock) unless ``sla_clock`` says otherwise."""
        return self._sla_policy("event")

    def _sla_policy(self, default_clock: str) -> SlaPolicy | None:
        if not self.sla_live:
            return None
        horizon = self.sla_alert_horizon_hours
        return SlaPolicy(self.sla_limits, self.sla_clock or default_clock,
                         round(horizon * 3_600_000_000) if horizon > 0 else None)

    @property
    def calendar(self) -> DutyCalendar:
        return DutyCalendar(self.duty_timezone, self.duty_start_time)

    @property
    def duty_start_time(self) -> time:
        return parse_duty_start(self.duty_start)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("DISPATCH_CONFIG")
        if config:
            if not Path(config).is_file():
                raise ValueError(f"DISPATCH_CONFIG names {config!r}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)
