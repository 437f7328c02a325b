"""``replay`` on fakes: a list-backed partitioned log and the memory store.

A replay must leave the store as the worker would (same report as the naive
oracle over every message), store the offsets so that ``PartitionProjector``
resumes exactly there, refuse a store that holds events, cut by log timestamp,
and take an event's log timestamp as its recorded time when it has none; by
either engine (the columnar one falls back to the exact one when it cannot map
the messages).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Coroutine, Iterator, Sequence
from datetime import date
from typing import Any, TypeVar

import pytest

import projections.runners.replay_columnar
from dispatch.simulation import SimulationPlan, simulate_lines
from dispatch.simulation.output import dumps
from dispatch.simulation.plan import MalformedLine
from projections.columnar import NotColumnar
from projections.line_index import RecordRows
from projections.ports import Rejected
from projections.queries import duty_report
from projections.runners.batch import load_store
from projections.runners.replay import LogMessage, StoreNotEmpty, replay
from projections.runners.stream import Message, PartitionProjector
from projections.stores.memory import MemoryStore
from tests.oracle import compare_reports, oracle_report

TOPIC = "outage.events"
GROUP = "dispatch-projector"
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class ListLog:
    """``PartitionedLog`` fake: messages per partition, timestamps in µs (whole ms)."""

    def __init__(self, partitions: int = 3) -> None:
        self.topic = TOPIC
        self.messages: dict[int, list[tuple[bytes, int]]] = {p: [] for p in range(partitions)}
        self.clock = 1_780_000_000_000_000

    def publish(self, raw: bytes, tick_us: int = 1000) -> None:
        try:
            key = str(json.loads(raw).get("incident_id"))
        except (ValueError, AttributeError):
            key = ""
        self.clock += tick_us
        partition = zlib.crc32(key.encode()) % len(self.messages)
        self.messages[partition].append((raw, self.clock))

    def bounds(self, from_us: int | None, to_us: int | None) -> dict[int, tuple[int, int]]:
        out = {}
        for p, messages in self.messages.items():
            start = next((i for i, (_, ts) in enumerate(messages)
                          if from_us is None or ts >= from_us), len(messages))
            stop = next((i for i, (_, ts) in enumerate(messages)
                         if to_us is not None and ts > to_us), len(messages))
            out[p] = (start, stop)
        return out

    def read(self, starts: dict[int, int], stops: dict[int, int],
             max_messages: int) -> Iterator[list[LogMessage]]:
        # Interleave partitions like a real fetch does.
        queue = [LogMessage(p, o, self.messages[p][o][0], self.messages[p][o][1])
                 for p in sorted(starts) for o in range(starts[p], stops[p])]
        queue.sort(key=lambda m: (m.offset // 7, m.partition, m.offset))
        for i in range(0, len(queue), max_messages):
            yield queue[i:i + max_messages]

    def ends(self) -> dict[int, int]:
        return {p: len(m) for p, m in self.messages.items()}


def published(lines: Sequence[bytes]) -> ListLog:
    """A ``ListLog`` holding ``lines`` (keyed by incident, as the producer keys them)."""
    log = ListLog()
    for raw in lines:
        log.publish(raw)
    return log


class ListDeadLetters:
    def __init__(self) -> None:
        self.sent: list[Rejected] = []

    async def send(self, rejected: Sequence[Rejected]) -> None:
        self.sent.extend(rejected)


def history_lines(days: int = 2, seed: int = 5) -> list[bytes]:
    plan = SimulationPlan(seed=seed, start=date(2026, 7, 1), days=days, storm_days=(days - 1,),
                          duplicate_rate=0.04, shuffle=True, late_rate=0.02,
                          malformed_rate=0.005)
    return [item.text.encode() if isinstance(item, MalformedLine) else dumps(item)
            for item in simulate_lines(plan)]


def conflicting_copy(raw: bytes) -> bytes:
    obj = json.loads(raw)
    obj["occurred_at"] = "2026-07-01T23:59:59+08:00"
    return json.dumps(obj).encode()


ENGINES = pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "exact"])


@ENGINES
@pytest.mark.parametrize("chunk", [1, 37, 100_000])
def test_replay_then_worker_gives_the_oracle_report(chunk: int, columnar: bool) -> None:
    lines = history_lines()
    valid = [raw for raw in lines if raw.startswith(b"{\"event_id\"")]
    lines.append(conflicting_copy(valid[10]))
    half = len(lines) // 2
    log = ListLog()
    for raw in lines[:half]:
        log.publish(raw)
    store = MemoryStore()
    dead = ListDeadLetters()
    rejected: list[Rejected] = []
    summary = run(replay(store, log, GROUP, chunk=chunk, on_rejected=rejected.append,
                         dead_letters=dead, columnar=columnar))
    assert summary.messages == half
    assert run(store.positions(GROUP)) == {(TOPIC, p): e for p, e in log.ends().items()}
    assert summary.rejected > 0 and [r.reason for r in dead.sent] == [r.reason for r in rejected]

    # A worker of the same group continues on the same store: the rest of the topic.
    for raw in lines[half:]:
        log.publish(raw)
    projector = PartitionProjector(store, TOPIC, GROUP, dead)
    seeks = run(projector.assign(log.messages))
    assert seeks == {p: e for p, e in summary.stop.items()}
    for p, messages in log.messages.items():
        fresh = [Message(p, o, raw) for o, (raw, _) in enumerate(messages) if o >= seeks[p]]
        outcome = run(projector.handle(fresh))
        assert not outcome.seek and outcome.committed == len(fresh)
    engine = run(duty_report(store))
    oracle = oracle_report([raw.decode() for raw in lines])
    assert compare_reports(engine, oracle) == []
    assert engine["conflicting_events"] == 1


@ENGINES
def test_a_store_with_events_is_refused_and_resume_continues(columnar: bool) -> None:
    lines = history_lines(days=1)
    log = published(lines)
    store = MemoryStore()
    run(replay(store, log, GROUP, to_us=log.clock - 500_000, columnar=columnar))
    with pytest.raises(StoreNotEmpty, match="already holds events"):
        run(replay(store, log, GROUP))
    with pytest.raises(StoreNotEmpty, match="no positions of 'other'"):
        run(replay(store, log, "other", resume=True))
    summary = run(replay(store, log, GROUP, resume=True))
    assert 0 < summary.messages < len(lines)
    assert run(store.positions(GROUP)) == {(TOPIC, p): e for p, e in log.ends().items()}
    assert compare_reports(run(duty_report(store)),
                           oracle_report([raw.decode() for raw in lines])) == []


@ENGINES
def test_time_window_keeps_the_messages_logged_in_it(columnar: bool) -> None:
    lines = history_lines(days=1)
    log = published(lines)
    everything = [(p, o, ts) for p, ms in log.messages.items()
                  for o, (_, ts) in enumerate(ms)]
    times = sorted(ts for _, _, ts in everything)
    low, high = times[len(times) // 4], times[3 * len(times) // 4]
    store = MemoryStore()
    summary = run(replay(store, log, GROUP, from_us=low, to_us=high, columnar=columnar))
    kept = [(p, o) for p, o, ts in everything if low <= ts <= high]
    assert summary.messages == len(kept)
    wanted = [log.messages[p][o][0].decode() for p, o in kept]
    assert compare_reports(run(duty_report(store)), oracle_report(wanted)) == []
    # The worker starts after the window, also where the window held nothing.
    assert run(store.positions(GROUP)) == {(TOPIC, p): stop for p, (_, stop)
                                           in log.bounds(low, high).items()}


@ENGINES
def test_an_event_without_recorded_at_is_known_from_its_log_timestamp(columnar: bool) -> None:
    with_time = {"event_id": "e1", "type": "call.received", "incident_id": "I1",
                 "occurred_at": "2026-07-01T10:00:00+08:00",
                 "recorded_at": "2026-07-01T10:00:05+08:00", "schema_version": 1,
                 "data": {"grid": "G1", "area": "urban"}}
    without = {**with_time, "event_id": "e2"}
    del without["recorded_at"]
    log = ListLog(partitions=1)
    for obj in (with_time, without):
        log.publish(json.dumps(obj).encode())
    store = MemoryStore()
    run(replay(store, log, GROUP, columnar=columnar))
    known = run(load_store(store)).known
    assert known["e1"] == 1_782_871_205_000_000  # its own recorded_at
    assert known["e2"] == log.messages[0][1][1]   # the log timestamp


def test_messages_the_columnar_engine_cannot_map_are_replayed_by_the_exact_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = history_lines(days=1)
    log = published(lines)
    refused: list[int] = []

    def cannot_map(events: Any, rows: RecordRows, *args: Any) -> None:
        refused.append(rows.row_base)
        raise NotColumnar("rows do not match")

    monkeypatch.setattr(projections.runners.replay_columnar, "add_records", cannot_map)
    store = MemoryStore()
    summary = run(replay(store, log, GROUP, chunk=100))
    assert refused == [0]  # the first chunk: nothing was written
    assert summary.messages == len(lines) and "read and validate" in summary.phases
    assert run(store.positions(GROUP)) == {(TOPIC, p): e for p, e in log.ends().items()}
    assert compare_reports(run(duty_report(store)),
                           oracle_report([raw.decode() for raw in lines])) == []


def test_a_store_that_kept_part_of_a_stopped_columnar_replay_is_not_replayed_into(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory store writes each stage at once (no transaction to roll back)."""
    lines = history_lines(days=1)
    log = published(lines)
    add_records = projections.runners.replay_columnar.add_records

    def second_chunk_fails(events: Any, rows: RecordRows, *args: Any) -> Any:
        if rows.row_base:
            raise NotColumnar("rows do not match")
        return add_records(events, rows, *args)

    monkeypatch.setattr(projections.runners.replay_columnar, "add_records", second_chunk_fails)
    store = MemoryStore()
    with pytest.raises(StoreNotEmpty, match="kept part of it"):
        run(replay(store, log, GROUP, chunk=100))
