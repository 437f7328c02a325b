"""Replay into a fresh store through the columnar engine: the whole log read in bulk,
validated, deduplicated and folded at once in DuckDB (``projections.columnar``),
then written in one transaction.

Contract (``projections.runners.replay``'s, for a fresh store, with these differences):
- one transaction for everything, holding the stop offset of every partition: a
  replay interrupted before it leaves the store empty, to be replayed again (there is
  nothing to resume);
- the store's rows are those the exact replay writes (``tests`` compare them table by
  table), except that a totals bucket whose sum is zero in every column is not
  written (the exact path keeps such a row when a later event moves an incident out
  of a bucket; no reader tells the two apart);
- ``NotColumnar`` (the reader's rows could not be matched to the messages) is raised
  before anything is written, so the caller can replay by the exact path instead;
- the messages are held in memory (and written once to a temporary file for DuckDB).
"""

from __future__ import annotations

import asyncio
import gc
import time
from array import array
from collections.abc import Callable

from projections.columnar import ColumnarEvents, fold_columnar, load_columnar_records
from projections.history import Window
from projections.incident import Fact
from projections.line_index import RecordRows
from projections.ports import Commit, LoggedEvent, ProjectionStore, Rejected
from projections.projector import _now_micros
from projections.runners.replay import PartitionedLog, Progress, ReplaySummary, _reject
from projections.runners.stream import DeadLetters

READ_CHUNK = 100_000
"""Messages per read from the log (progress is reported after each)."""


async def replay_columnar(store: ProjectionStore, log: PartitionedLog, consumer: str,
                          summary: ReplaySummary, *,
                          on_rejected: Callable[[Rejected], None] | None = None,
                          dead_letters: DeadLetters | None = None,
                          progress: Progress | None = None,
                          clock: Callable[[], int] = _now_micros) -> ReplaySummary:
    """Replay ``summary.start`` up to ``summary.stop`` of ``log`` into the fresh ``store``
    (module contract); ``summary`` comes with its offsets and total set."""
    # Nothing built here holds a cycle, and a million messages held at once made the
    # cyclic collector walk them again and again (the read took 13 s instead of 3).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return await _replay(store, log, consumer, summary, on_rejected, dead_letters,
                             progress, clock)
    finally:
        if collecting:
            gc.enable()


def read_log(log: PartitionedLog, summary: ReplaySummary, progress: Progress | None = None,
             clock: Callable[[], int] = _now_micros) -> tuple[RecordRows, array[int]]:
    """Every message from ``summary.start`` up to ``summary.stop``, as rows, and the time
    each is known at when its event has no ``recorded_at``: its log timestamp, or when
    it was read if the log keeps none. Counts ``summary.messages`` as it reads."""
    values: list[bytes] = []
    partitions, positions, recorded = array("q"), array("q"), array("q")
    now = clock()
    summary.step = "reading"
    for messages in log.read(summary.start, summary.stop, READ_CHUNK):
        values += [m.value for m in messages]
        partitions.extend([m.partition for m in messages])
        positions.extend([m.offset + 1 for m in messages])
        recorded.extend([now if m.timestamp_us is None else m.timestamp_us for m in messages])
        summary.messages += len(messages)
        if progress is not None:
            progress(summary)
    return RecordRows(log.topic, values, partitions, positions), recorded


async def _replay(store: ProjectionStore, log: PartitionedLog, consumer: str,
                  summary: ReplaySummary, on_rejected: Callable[[Rejected], None] | None,
                  dead_letters: DeadLetters | None, progress: Progress | None,
                  clock: Callable[[], int]) -> ReplaySummary:
    started = time.perf_counter()
    phases = summary.phases = {"read": 0.0, "validate": 0.0, "fold (beside the commit)": 0.0,
                               "commit": 0.0}
    rows, recorded = read_log(log, summary, progress, clock)
    values = rows.values
    clock_at = time.perf_counter()
    phases["read"] = clock_at - started
    _step(summary, "validating", progress)
    rejected: list[Rejected] = []
    events = load_columnar_records(rows, recorded, on_rejected=rejected.append)
    try:
        logged = [LoggedEvent(eid, iid, typ, ts, values[n - 1], known)
                  for n, eid, iid, typ, ts, known in events.db.execute(
                      "SELECT n, eid, iid, typ, ts, known FROM facts ORDER BY n").fetchall()]
        summary.accepted = len(logged)
        summary.duplicates, summary.conflicts = events.duplicates, events.conflicts
        summary.rejected = events.rejected
        now_at = time.perf_counter()
        phases["validate"] = now_at - clock_at
        clock_at = now_at
        await _reject(rejected, on_rejected, dead_letters)  # before anything is committed
        _step(summary, "committing", progress)
        # Nobody follows a store being rebuilt: no change log (as the exact replay).
        keep_changes, store.change_log = store.change_log, False
        try:
            async with store.writing():
                # The fold runs in DuckDB on a thread (it releases the interpreter lock)
                # while the event log, most of the rows, is copied into the store.
                folding = asyncio.get_running_loop().run_in_executor(
                    None, _folded, events, store, consumer, log.topic, summary, phases)
                try:
                    await store.stage(Commit(consumer, positions={}, events=logged))
                finally:
                    read_model = await folding  # the thread is done before the db closes
                await store.stage(read_model)
                await store.finish()
        finally:
            store.change_log = keep_changes
    finally:
        events.db.close()
    phases["commit"] = time.perf_counter() - clock_at
    _step(summary, "done", progress)
    return summary


def _step(summary: ReplaySummary, step: str, progress: Progress | None) -> None:
    summary.step = step
    if progress is not None:
        progress(summary)


def _folded(events: ColumnarEvents, store: ProjectionStore, consumer: str, topic: str,
            summary: ReplaySummary, phases: dict[str, float]) -> Commit:
    """The read model and the positions, in one ``Commit`` (the event log aside)."""
    started = time.perf_counter()
    totals, incidents, shifts = fold_columnar(events, store.calendar, Window(),
                                              store.sla_limits, all_incidents=True)
    calls = [Fact(eid, "call.received", iid, ts, grid, area, priority, customers, agent=agent,
                  recorded=known)
             for eid, iid, ts, known, grid, area, priority, customers, agent in events.db.execute(
                 "SELECT eid, iid, ts, known, grid, area, priority, customers, agent "
                 "FROM facts WHERE typ = 'call.received' ORDER BY n").fetchall()]
    keys = {(topic, p): stop for p, stop in summary.stop.items()}
    phases["fold (beside the commit)"] = time.perf_counter() - started
    return Commit(consumer, positions=keys, expected=dict.fromkeys(keys, 0),
                  incidents=incidents, calls=calls,
                  deltas={b: v for b, v in totals.items() if any(v)}, shifts=shifts,
                  rejected=events.rejected, duplicates=events.duplicates,
                  conflicts=events.conflicts)
