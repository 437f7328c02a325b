"""Prometheus metrics of the projection worker (prometheus-client)."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from datetime import datetime

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from projections.duty import to_micros
from projections.ports import AlertEntry
from projections.sla import AREAS, LEVELS, RULES
from projections.sla_live import TRANSITIONS, SlaRow, SlaUpdate

MINUTE_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 720, 1440)


class WorkerMetrics:
    """The ``Observer`` of ``PartitionProjector``, plus consumer lag per partition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("dispatch_events_consumed", "Messages projected", registry=r)
        self.accepted = Counter("dispatch_events_accepted", "Valid new events folded",
                                registry=r)
        self.rejected = Counter("dispatch_events_rejected", "Invalid messages sent to the DLQ",
                                registry=r)
        self.duplicates = Counter("dispatch_events_duplicate",
                                  "Events whose event_id was already seen", registry=r)
        self.batch_size = Histogram("dispatch_batch_size", "Messages per committed batch",
                                    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000),
                                    registry=r)
        self.commit_seconds = Histogram(
            "dispatch_batch_commit_seconds", "Fold and commit time of one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=r)
        self.lag = Gauge("dispatch_consumer_lag", "High watermark minus committed position",
                         ["partition"], registry=r)
        self.stage_minutes = Histogram("dispatch_stage_duration_minutes",
                                       "Six-fast stage durations as they become known",
                                       ["stage"], buckets=MINUTE_BUCKETS, registry=r)
        self._stage_series: dict[str, Histogram] = {}
        """stage -> its labelled series (a label look-up costs more than the observation)."""

        self.sla_active = Gauge(
            "dispatch_sla_active_alerts", "SLA rules in warning or breach now (last evaluation)",
            ["rule", "level", "area"], registry=r)
        self.sla_breaches = Counter("dispatch_sla_breaches",
                                    "SLA breaches published to the alert topic",
                                    ["rule", "area"], registry=r)
        self.sla_published = Counter("dispatch_sla_alerts_published",
                                     "Alert transitions published, by level", ["level"],
                                     registry=r)
        self.sla_delay = Histogram(
            "dispatch_sla_alert_delay_seconds",
            "From a warning threshold or deadline to the alert's publication (wall clock)",
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30), registry=r)
        self.sla_evaluated_at = Gauge(
            "dispatch_sla_last_evaluation_timestamp_seconds",
            "When the SLA timer last evaluated deadlines (Unix time)", registry=r)
        for rule in RULES:
            for area in AREAS:
                self.sla_breaches.labels(rule, area)
                for level in LEVELS:
                    self.sla_active.labels(rule, level, area).set(0)
        for level in TRANSITIONS:
            self.sla_published.labels(level)

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        start_http_server(port, addr=address, registry=self.registry)

    def batch_committed(self, size: int, accepted: int, rejected: int, duplicates: int,
                        seconds: float, new_stages: Sequence[tuple[str, float]]) -> None:
        self.consumed.inc(size)
        self.accepted.inc(accepted)
        self.rejected.inc(rejected)
        self.duplicates.inc(duplicates)
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)
        series = self._stage_series
        for stage, minutes in new_stages:
            found = series.get(stage)
            if found is None:
                found = series[stage] = self.stage_minutes.labels(stage)
            found.observe(minutes)

    def set_lag(self, partition: int, lag: int) -> None:
        self.lag.labels(str(partition)).set(lag)

    def sla_evaluated(self, update: SlaUpdate) -> None:
        self.sla_evaluated_at.set(time.time())

    def set_active_alerts(self, rows: Iterable[SlaRow]) -> None:
        """Gauges from the stored SLA rows (every label set, so cleared ones read 0)."""
        counts = Tally((r.rule, r.state, r.area or "unknown") for r in rows if r.state in LEVELS)
        areas = {*AREAS, *(area for _, _, area in counts)}
        for rule in RULES:
            for level in LEVELS:
                for area in areas:
                    found = counts.get((rule, level, area), 0)
                    self.sla_active.labels(rule, level, area).set(found)

    def alerts_published(self, entries: Sequence[AlertEntry], now_us: int) -> None:
        for entry in entries:
            body = orjson.loads(entry.payload)
            level = str(body.get("level"))
            self.sla_published.labels(level).inc()
            if level == "breach":
                area = str(body.get("area") or "unknown")
                self.sla_breaches.labels(str(body.get("rule")), area).inc()
            if level in LEVELS:
                self.sla_delay.observe(max(0.0, (now_us - _micros(str(body["at"]))) / 1e6))


def _micros(text: str) -> int:
    return to_micros(datetime.fromisoformat(text))
