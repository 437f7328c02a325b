"""Fuzz: over 10,000 hostile lines (hypothesis-drawn mutations of real events) mixed
into a simulated history, through ``dispatch ingest`` and through ``dispatch
produce`` + the worker. Nothing crashes, every bad line is rejected with a
reason (conflicting copies as conflicts), and the report over the good lines is
exactly the oracle's."""

from __future__ import annotations

import functools
import json
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.oracle import compare_reports, oracle_report
from tests.reliability.cli import ok, report_from_store, run, simulated
from tests.reliability.hostile import Mix, Recipe, mix, recipes

RECIPES = 100
PER_RECIPE = 105
"""100 drawn recipes x 105 lines each: 10,500 hostile lines per example."""

# Control characters other than NUL are valid (docs/validation.md refuses U+0000).
VALID_BUT_HOSTILE = ["'; DROP TABLE incidents;--", "Robert\"); DELETE FROM calls;--",
                     "ÅÄÖ 配电 \u202e\u0001\u001f", "%s%s%n", "{{7*7}}", "../../etc/passwd"]


@functools.cache
def good_lines() -> tuple[bytes, ...]:
    """A simulated history, with hostile but valid strings in extra fields."""
    with tempfile.TemporaryDirectory() as folder:
        lines = simulated(Path(folder) / "good.jsonl", days=3, seed=41, duplicates=0.02)
    out = []
    for line in lines:
        obj = json.loads(line)
        # Chosen by event id, so that both copies of a duplicate get the same note.
        pick = zlib.crc32(obj["event_id"].encode())
        if pick % 25 == 0:
            obj["data"]["note"] = VALID_BUT_HOSTILE[pick % len(VALID_BUT_HOSTILE)]
            line = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
        out.append(line.rstrip(b"\n"))
    return tuple(out)


def write_mix(folder: Path, drawn: list[Recipe], seed: int) -> tuple[Path, Mix]:
    made = mix(list(good_lines()), drawn, PER_RECIPE, seed)
    assert len(made.bad) >= 10_000
    path = folder / "hostile.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in made.lines))
    return path, made


def expected_report(made: Mix, rejected: int) -> dict[str, Any]:
    """The oracle's report of the good lines, with the bad lines' counts: invalid
    lines as rejected, conflicting copies as conflicts."""
    expected = oracle_report([line.decode("utf-8") for line in made.good])
    expected["rejected_events"] = rejected
    expected["conflicting_events"] = made.conflicts
    return expected


def check_rejects(rejects: Path, made: Mix) -> None:
    rows = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    where = {int(row["where"].rsplit(":", 1)[1]): row["reason"] for row in rows}
    assert len(rows) == len(where), "a line was rejected twice"
    assert where.keys() == made.bad.keys()
    for line_no, kind in made.bad.items():
        reason = where[line_no]
        assert reason.strip() and "\n" not in reason, (line_no, kind, reason)
        assert ("conflict" in reason) == (kind == "conflict"), (line_no, kind, reason)


# No shrinking: a failing example of 10,000 lines is reported as drawn (shrinking it
# through CLI runs would take many minutes).
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


@settings(max_examples=2, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=st.lists(recipes, min_size=RECIPES, max_size=RECIPES),
       seed=st.integers(0, 2**32 - 1))
def test_hostile_lines_through_ingest(drawn: list[Recipe], seed: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path, made = write_mix(folder, drawn, seed)
        rejects = folder / "rejects.jsonl"
        store = f"sqlite:///{folder / 's.db'}"
        ok(run("ingest", str(path), "--store", store, "--rejects", str(rejects),
               "--batch-size", "3000"))
        check_rejects(rejects, made)
        engine = report_from_store(store)
        assert compare_reports(engine, expected_report(made, made.invalid)) == []
        assert engine["conflicting_events"] == made.conflicts
        from_input = json.loads(ok(run("report", "--input", str(path))).stdout)
        assert from_input == engine


@pytest.mark.servers
@pytest.mark.slow
def test_hostile_lines_through_produce_and_worker(kafka_bootstrap: str, pg_dsn: str) -> None:
    from tests.integration.harness import Stack

    stack = Stack(kafka_bootstrap, pg_dsn)
    stack.create_topics()
    try:
        _through_kafka(stack)
    finally:
        stack.stop_all()
    reasons = _dead_letter_reasons(kafka_bootstrap, f"{stack.topic}.dlq", stack.group)
    made = _last_mix[0]
    assert len(reasons) == len(made.bad)
    assert all(reasons)
    assert sum("conflict" in r for r in reasons) == made.conflicts


def _dead_letter_reasons(bootstrap: str, topic: str, group: str) -> list[str]:
    """The ``reason`` header of every message on ``topic`` (lz4: confluent-kafka reads it)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-dlq-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    reasons: list[str] = []
    idle = 0
    try:
        while idle < 10:
            message = consumer.poll(1.0)
            if message is None or message.error():
                idle += 1
                continue
            idle = 0
            headers = dict(message.headers() or [])
            reasons.append(bytes(headers.get("reason") or b"").decode())
    finally:
        consumer.close()
    return reasons


_last_mix: list[Mix] = []


@settings(max_examples=1, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=st.lists(recipes, min_size=RECIPES, max_size=RECIPES),
       seed=st.integers(0, 2**32 - 1))
def _draw(drawn: list[Recipe], seed: int) -> None:
    _last_mix.append(mix(list(good_lines()), drawn, PER_RECIPE, seed))


def _through_kafka(stack: Any) -> None:
    _last_mix.clear()
    _draw()
    made = _last_mix[-1]
    del _last_mix[:-1]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = folder / "hostile.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in made.lines))
        rejects = folder / "rejects.jsonl"
        stack.run("produce", str(path), "--rejects", str(rejects))
        rows = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
        invalid = {n for n, kind in made.bad.items() if kind != "conflict"}
        assert {int(r["where"].rsplit(":", 1)[1]) for r in rows} == invalid
        stack.start_worker("--batch-size", "2000", log=folder / "worker.log")
        stack.wait_caught_up(timeout=300)
        engine = json.loads(stack.report_from_store())
    assert compare_reports(engine, expected_report(made, 0)) == []
    assert engine["conflicting_events"] == made.conflicts
