"""Live SLA alerts on the real broker and database: Kafka -> Faust worker ->
PostgreSQL -> outbox -> ``outage.sla-alerts``.

- Event clock, with a SIGKILL landing after transitions were committed and
  before they were published: after catching up, the alerts published and not
  ended equal ``dispatch alerts --as-of`` the largest occurred_at, every outbox
  entry reached the topic, and no alert_id is on the topic twice.
- A relay that dies after publishing and before marking: the next relay reads
  the topic back and publishes nothing twice.
- Wall clock: an incident with no arrival raises ``warning`` and ``breach``
  within 2 s of each threshold, with no further event.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from dispatch.kafka.alerts import KafkaAlertLog
from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from projections.duty import to_micros
from projections.runners.alerts import SlaLoop
from projections.sla import SlaLimits, utc_text
from projections.sla_live import SlaPolicy
from projections.stores.postgres import PostgresStore
from tests.integration.harness import Stack
from tests.sla_oracle import raised_not_ended

pytestmark = [pytest.mark.servers, pytest.mark.slow]


@pytest.fixture
def stack(kafka_bootstrap: str, pg_dsn: str) -> Iterator[Stack]:
    stack = Stack(kafka_bootstrap, pg_dsn)
    stack.create_topics()
    yield stack
    stack.stop_all()


def alerts_topic(stack: Stack) -> str:
    return f"{stack.topic}.alerts"


def read_alerts(stack: Stack) -> list[tuple[datetime, dict[str, Any]]]:
    """Every message on the alert topic, with the time the broker appended it."""
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(alerts_topic(stack), p)
               for p in sorted(consumer.partitions_for_topic(alerts_topic(stack)) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    assert r.key is not None
                    body = orjson.loads(r.value)
                    assert r.key.decode() == body["incident_id"]
                    found.append((datetime.fromtimestamp(r.timestamp / 1000, UTC), body))
        return found
    finally:
        consumer.close()


def sql(stack: Stack, query: str) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(stack.pg_dsn)
        try:
            return await conn.fetchval(query)
        except asyncpg.UndefinedTableError:
            return None
        finally:
            await conn.close()
    return asyncio.run(run())


def wait_for(what: str, check: Any, timeout: float = 120, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_event_clock_alerts_survive_a_kill_between_commit_and_publish(
        stack: Stack, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    plan = SimulationPlan(seed=5, start=date(2026, 7, 1), days=2, storm_days=(0,),
                          duplicate_rate=0.02, shuffle=True, late_rate=0.02)
    write_jsonl(simulate_lines(plan), events)
    stack.run("produce", str(events))
    # A slow relay: transitions wait in the outbox for 3 s after their commit.
    stack_env = dict(stack.env)
    slow = {**stack_env, "DISPATCH_SLA_RELAY_SECONDS": "3", "DISPATCH_SLA_TICK_SECONDS": "3"}
    worker = start(stack, tmp_path / "worker1.log", slow, "--sla-clock", "event",
                   "--batch-size", "200")
    # Kill it while committed transitions are waiting to be published.
    wait_for("committed, unpublished alert transitions",
             lambda: (sql(stack, "SELECT count(*) FROM sla_outbox WHERE sent_us IS NULL") or 0)
             > 0, timeout=180, every=0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    unsent = sql(stack, "SELECT count(*) FROM sla_outbox WHERE sent_us IS NULL")
    assert unsent > 0, "the kill must land between commit and publish"
    published_before = len(read_alerts(stack))

    start(stack, tmp_path / "worker2.log", stack_env, "--sla-clock", "event")
    stack.wait_caught_up(timeout=240)
    wait_for("every outbox entry published", lambda: sql(
        stack, "SELECT count(*) FROM sla_outbox WHERE sent_us IS NULL") == 0, timeout=60)
    time.sleep(2)  # a few more ticks: nothing may be left due
    assert sql(stack, "SELECT count(*) FROM sla_outbox WHERE sent_us IS NULL") == 0

    published = [body for _, body in read_alerts(stack)]
    ids = [b["alert_id"] for b in published]
    assert len(ids) == len(set(ids)), "an alert_id was published twice"
    assert len(ids) == sql(stack, "SELECT count(*) FROM sla_outbox") > published_before
    levels = {b["level"] for b in published}
    assert {"warning", "breach", "resolved"} <= levels, levels

    latest = max(to_micros(datetime.fromisoformat(json.loads(line)["occurred_at"]))
                 for line in events.read_text(encoding="utf-8").splitlines() if line.strip())
    assert sql(stack, "SELECT event_us FROM sla_clock") == latest
    document = json.loads(stack.run("alerts", "--store", stack.pg_dsn, "--as-of",
                                    utc_text(latest)).stdout)
    assert raised_not_ended(published) == {
        (a["incident_id"], a["rule"]): a["level"] for a in document["active"]}
    assert document["active"], "a storm day leaves alerts active at its end"


def start(stack: Stack, log: Path, env: dict[str, str], *args: str) -> Any:
    """A worker with its own environment, stopped with the stack."""
    import subprocess

    from tests.integration.harness import REPO, Worker, dispatch_cmd

    with open(log, "ab") as out:
        process = subprocess.Popen(dispatch_cmd("worker", "--log-level", "info", *args),
                                   env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    worker = Worker(process, log, "")
    stack.workers.append(worker)
    return process


def test_relay_that_died_after_publishing_repeats_nothing(stack: Stack) -> None:
    """Publish, 'crash' before marking sent, then a new relay recovers from the topic."""

    class DiesBeforeMarking(PostgresStore):
        async def mark_alerts_sent(self, alert_ids: Any, *args: Any) -> None:
            if alert_ids:  # recovery before the first relay marks nothing: let it pass
                raise ConnectionResetError("killed between publish and mark")
            await super().mark_alerts_sent(alert_ids, *args)

    async def scenario() -> None:
        limits = SlaLimits()
        policy = SlaPolicy(limits, "wall")
        t0 = to_micros(datetime(2026, 7, 1, tzinfo=UTC))
        from projections.incident import Incident
        from projections.ports import Commit

        incidents = []
        for n in range(5):
            incident = Incident(f"INC-{n}", grid="G", area="urban", priority="normal")
            incident.times[0] = t0 + n
            incidents.append(incident)
        log = KafkaAlertLog(stack.bootstrap, alerts_topic(stack))
        await log.start()
        try:
            async with DiesBeforeMarking(stack.pg_dsn) as dying:
                await dying.commit(Commit("w", {}, incidents=incidents, sla=policy.for_batch(
                    incidents, None, t0 + 50 * 60_000_000)))
                first = SlaLoop(dying, log, policy)
                with pytest.raises(ConnectionResetError):
                    await first.relay()
            async with PostgresStore(stack.pg_dsn) as store:
                assert len(await store.unsent_alerts()) == 5
                second = SlaLoop(store, log, policy)
                assert await second.relay() == 0
                assert await store.unsent_alerts() == []
        finally:
            await log.stop()

    asyncio.run(scenario())
    ids = [body["alert_id"] for _, body in read_alerts(stack)]
    assert sorted(ids) == [f"INC-{n}/arrival/breach" for n in range(5)]


def test_wall_clock_warning_and_breach_within_two_seconds(stack: Stack, tmp_path: Path) -> None:
    # Arrival limit 0.25 min in urban areas: warning 11.25 s, breach 15 s after the call.
    env = {**stack.env, "DISPATCH_SLA__ARRIVAL__URBAN": "0.25"}
    start(stack, tmp_path / "worker.log", env)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")

    def send(event_id: str, kind: str, incident: str, at: datetime,
             data: dict[str, Any]) -> None:
        body = {"event_id": event_id, "type": kind, "incident_id": incident,
                "occurred_at": at.isoformat(), "data": data}
        producer.send(stack.topic, key=incident.encode(), value=json.dumps(body).encode())
        producer.flush(30)

    # Warm up: the worker owns its partitions once this rural call is stored.
    send("warm-1", "call.received", "INC-WARM", datetime.now(UTC),
         {"grid": "G", "area": "rural"})
    stack.wait_caught_up(timeout=180)
    t0 = datetime.now(UTC).replace(microsecond=0)
    send("probe-1", "call.received", "INC-PROBE", t0, {"grid": "G", "area": "urban"})
    warning_due = t0 + timedelta(seconds=11.25)
    breach_due = t0 + timedelta(seconds=15)

    def probe_alerts() -> dict[str, datetime]:
        return {body["level"]: at for at, body in read_alerts(stack)
                if body["incident_id"] == "INC-PROBE"}

    seen = wait_for("the breach of INC-PROBE", lambda: (lambda a: a if "breach" in a else None)(
        probe_alerts()), timeout=60, every=0.2)
    producer.close()
    assert set(seen) == {"warning", "breach"}
    assert timedelta(0) <= seen["warning"] - warning_due <= timedelta(seconds=2), seen
    assert timedelta(0) <= seen["breach"] - breach_due <= timedelta(seconds=2), seen


def test_the_sla_process_ends_with_its_worker_even_on_sigkill(stack: Stack,
                                                              tmp_path: Path) -> None:
    """The timer and relay run in a child of the worker; a SIGKILLed worker leaves
    no child behind to hold the relay's lock (the next worker's relay takes over)."""
    import subprocess

    worker = start(stack, tmp_path / "worker.log", dict(stack.env))

    def sla_child() -> int | None:
        children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True,
                                  text=True).stdout.split()
        for child in children:  # multiprocessing's resource tracker is a child too
            if sql(stack, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          f"'dispatch-sla[{child}]'"):
                return int(child)
        return None
    sla_pid = wait_for("the SLA process and its PostgreSQL session", sla_child, timeout=120)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)

    def gone() -> bool:
        try:
            os.kill(sla_pid, 0)
        except ProcessLookupError:
            return True
        return False
    wait_for("the SLA process to end", gone, timeout=15)
