"""Prometheus metrics of the projection worker (prometheus-client)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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
        for stage, minutes in new_stages:
            self.stage_minutes.labels(stage).observe(minutes)

    def set_lag(self, partition: int, lag: int) -> None:
        self.lag.labels(str(partition)).set(lag)
