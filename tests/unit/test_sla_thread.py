"""The worker's SLA timer on its own thread: a due transition is published on time
while the worker's own thread is busy in pure Python (folding a long batch holds
the interpreter), and the relay prunes what it sent long ago."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson

from dispatch.kafka.metrics import WorkerMetrics
from dispatch.worker.sla_thread import SlaThread
from projections.incident import Incident
from projections.ports import AlertEntry, Commit, PositionKey
from projections.sla import SlaLimits
from projections.sla_live import SlaPolicy
from projections.stores.memory import MemoryStore

# Urban arrival in 6 s: warning at 4.5 s, breach at 6 s.
LIMITS = SlaLimits({"arrival": {"urban": 0.1, "rural": 90, "remote": 120},
                    "restoration": {"urban": 180, "rural": 240, "remote": 240}})


class FakeTopic:
    """The alert topic: records each message with the time it was handed over."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, object]]] = []
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def publish(self, entries: Sequence[AlertEntry]) -> dict[PositionKey, int]:
        now = time.time()
        self.received += [(now, orjson.loads(e.payload)) for e in entries]
        return {("alerts", 0): len(self.received)}

    async def published_since(
            self, positions: dict[PositionKey, int]) -> tuple[set[str], dict[PositionKey, int]]:
        return set(), positions


def busy(seconds: float) -> None:
    """Pure-Python work, as folding a batch is: holds the interpreter lock."""
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        total += sum(range(200))


def test_due_alerts_are_published_on_time_while_the_worker_thread_is_busy() -> None:
    store = MemoryStore()
    incident = Incident("A", grid="G", area="urban", priority="normal")
    called = time.time_ns() // 1000
    incident.times[0] = called
    policy = SlaPolicy(LIMITS, "wall")
    asyncio.run(store.commit(Commit("worker", {("events", 0): 1}, incidents=[incident],
                                    sla=policy.for_batch([incident], called, called))))
    topic = FakeTopic()
    thread = SlaThread(lambda: store, lambda: topic, policy, WorkerMetrics(),
                       tick_seconds=0.25, relay_seconds=0.1, outbox_retention_days=7)
    thread.start()
    try:
        assert topic.started
        busy(6 + 1.5 - (time.time() - called / 1e6))  # across both thresholds
        assert [body["alert_id"] for _, body in topic.received] == \
               ["A/arrival/warning", "A/arrival/breach"]
        for (arrived, _body), threshold in zip(topic.received, (4.5, 6.0), strict=True):
            late = arrived - (called / 1e6 + threshold)
            assert 0 <= late < 1.0, f"published {late:.2f}s after its threshold"
    finally:
        thread.stop()
    assert thread.failure is None
    assert not topic.started  # closed on stop


def test_the_relay_prunes_entries_sent_before_the_retention() -> None:
    store = MemoryStore()
    old = Incident("OLD", grid="G", area="urban", priority="normal")
    now = time.time_ns() // 1000
    old.times[0] = now - 60_000_000
    policy = SlaPolicy(LIMITS, "wall")

    async def prepare() -> None:
        await store.commit(Commit("worker", {("events", 0): 1}, incidents=[old],
                                  sla=policy.for_batch([old], None, now)))
        # Sent two days ago, by an earlier relay.
        await store.mark_alerts_sent(["OLD/arrival/breach"], now - 2 * 86_400_000_000, {})

    asyncio.run(prepare())
    topic = FakeTopic()
    thread = SlaThread(lambda: store, lambda: topic, policy, WorkerMetrics(),
                       tick_seconds=0.1, relay_seconds=0.05, outbox_retention_days=1,
                       prune_seconds=0.1)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and asyncio.run(store.alert_outbox()):
            time.sleep(0.05)
    finally:
        thread.stop()
    assert asyncio.run(store.alert_outbox()) == []
    assert topic.received == []  # nothing sent again


def test_the_sla_process_reports_reach_the_worker_metrics() -> None:
    """In the worker the loop runs in a child process: its reports come back over a
    queue and are applied to the worker's metrics."""
    from dispatch.settings import Settings
    from dispatch.worker.sla_process import SlaProcess, _Forwarder
    from projections.sla_live import SlaRow, SlaUpdate

    metrics = WorkerMetrics()
    process = SlaProcess(Settings(), metrics)  # not started: only its queue is used
    forwarder = _Forwarder(process._queue)
    breach = orjson.dumps({"alert_id": "A/arrival/breach", "level": "breach", "rule": "arrival",
                           "area": "urban", "at": "2026-07-01T00:45:00Z"})
    forwarder.alerts_published([AlertEntry(1, "A/arrival/breach", "A", breach)], 1)
    forwarder.sla_evaluated(SlaUpdate())
    forwarder.set_active_alerts([SlaRow("A", "arrival", "breach", "breach", None, 0, 1, 45.0,
                                        "G", "urban", "normal", None)])
    process._queue.put(None)
    process._apply()

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)
    assert value("dispatch_sla_breaches_total", rule="arrival", area="urban") == 1
    assert value("dispatch_sla_alerts_published_total", level="breach") == 1
    assert value("dispatch_sla_active_alerts", rule="arrival", level="breach", area="urban") == 1
    assert (value("dispatch_sla_last_evaluation_timestamp_seconds") or 0) > 0
