"""Replay into a fresh store through the columnar engine (``projections.columnar``):
the log read and validated in DuckDB chunk after chunk, on a thread, while the
store copies the event-log rows of the chunk before; the incidents and totals
folded at the end (while the store copies the last chunk and builds the event log's
indexes, set aside meanwhile: ``ProjectionStore.bulk_loading``); the incidents and
totals written as new rows (``Commit.new_rows``); everything in one transaction of the
store.

Contract (``projections.runners.replay``'s, for a fresh store, with these differences):
- one transaction for everything, holding the stop offset of every partition: a
  replay interrupted before it leaves the store empty, to be replayed again (there is
  nothing to resume);
- the store's rows are those the exact replay writes (``tests`` compare them table by
  table), except that a totals bucket whose sum is zero in every column is not
  written (the exact path keeps such a row when a later event moves an incident out
  of a bucket; no reader tells the two apart);
- the copies of an event id are measured against its first copy in any earlier
  chunk, as the exact replay does; a later copy recorded earlier moves the stored
  row's recorded time (``Commit.recorded_updates``);
- ``NotColumnar`` (the reader's rows could not be matched to the messages) is
  raised out of the store's write block, so a store with transactions is left
  empty and the caller can replay by the exact path instead (rejected messages are
  reported only after the last chunk, so none is reported twice);
- a chunk's messages are held in memory until it is validated (and written to a
  temporary file for DuckDB); then their bytes move to a file of a temporary folder,
  where a later copy of an event is compared with its first copy. What stays in
  memory grows with the accepted events (DuckDB's table of them), not their bytes.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from array import array
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from projections.columnar import ColumnarEvents, add_records, columnar_records, fold_columnar
from projections.history import Window
from projections.incident import Fact
from projections.line_index import RecordRows
from projections.ports import Commit, LoggedEvent, ProjectionStore, Rejected
from projections.projector import _now_micros
from projections.runners.replay import (
    LogMessage,
    PartitionedLog,
    Progress,
    ReplaySummary,
    _reject,
)
from projections.runners.stream import DeadLetters

READ_CHUNK = 100_000
"""Messages read and validated at a time by default; progress is reported after each
chunk."""


async def replay_columnar(store: ProjectionStore, log: PartitionedLog, consumer: str,
                          summary: ReplaySummary, *,
                          on_rejected: Callable[[Rejected], None] | None = None,
                          dead_letters: DeadLetters | None = None,
                          progress: Progress | None = None,
                          clock: Callable[[], int] = _now_micros,
                          chunk: int = READ_CHUNK) -> ReplaySummary:
    """Replay ``summary.start`` up to ``summary.stop`` of ``log`` into the fresh ``store``
    (module contract), reading ``chunk`` messages at a time; ``summary`` comes with its
    offsets and total set."""
    # Nothing built here holds a cycle, and a million messages held at once made the
    # cyclic collector walk them again and again (the read took 13 s instead of 6).
    collecting = gc.isenabled()
    gc.disable()
    loaded: list[RecordRows] = []
    try:
        with _spilling(loaded) as folder:
            return await _replay(store, log, consumer, summary, loaded, folder, on_rejected,
                                 dead_letters, progress, clock, chunk)
    finally:
        if collecting:
            gc.enable()


def validate_log(log: PartitionedLog, summary: ReplaySummary,
                 progress: Progress | None = None, clock: Callable[[], int] = _now_micros,
                 chunk: int = READ_CHUNK) -> tuple[ColumnarEvents, list[Rejected]]:
    """Every message from ``summary.start`` up to ``summary.stop``, read and validated
    as the replay does (no store): the accepted events, and the rejected messages in
    log order. Counts ``summary.messages`` as it reads, and what was accepted,
    duplicated, rejected and conflicting at the end."""
    events = columnar_records()
    loaded: list[RecordRows] = []
    refused: list[Rejected] = []
    now = clock()
    try:
        with _spilling(loaded) as folder:
            for messages in log.read(summary.start, summary.stop, chunk):
                rejected, _ = _add_chunk(messages, events, loaded, log.topic, now, folder)
                refused += rejected
                summary.messages += len(messages)
                if progress is not None:
                    progress(summary)
    except BaseException:
        events.db.close()
        raise
    summary.accepted = events.db.execute("SELECT count(*) FROM facts").fetchall()[0][0]
    _count(summary, events)
    return events, refused


async def _replay(store: ProjectionStore, log: PartitionedLog, consumer: str,
                  summary: ReplaySummary, loaded: list[RecordRows], folder: Path,
                  on_rejected: Callable[[Rejected], None] | None,
                  dead_letters: DeadLetters | None, progress: Progress | None,
                  clock: Callable[[], int], chunk: int) -> ReplaySummary:
    phases = summary.phases = dict.fromkeys(("read", "validate", "fold", "store"), 0.0)
    loop = asyncio.get_running_loop()
    events = columnar_records()
    chunks = iter(log.read(summary.start, summary.stop, chunk))
    now = clock()  # for messages whose log keeps no timestamp: when they were read
    # Nobody follows a store being rebuilt: no change log (as the exact replay).
    keep_changes, store.change_log = store.change_log, False
    staging: asyncio.Future[None] | None = None
    folding: asyncio.Future[Commit] | None = None
    refused: list[Rejected] = []
    try:
        async with store.writing():
            try:
                async with store.bulk_loading():
                    staging = await _stage_chunks(store, chunks, events, loaded, log.topic,
                                                  now, folder, consumer, summary, refused,
                                                  progress)
                    _step(summary, "folding", progress)
                    # The fold (DuckDB) runs while the store copies the last chunk and
                    # builds the event log's indexes.
                    folding = loop.run_in_executor(None, _folded, events, store, consumer,
                                                   log.topic, summary, phases)
                    if staging is not None:
                        await staging
                    leaving = time.perf_counter()
                phases["store"] += time.perf_counter() - leaving
                read_model = await folding
                _step(summary, "committing", progress)
                # Reported once the engine can no longer give up (and be replaced by the
                # exact one, which reports them again), before the commit that skips them.
                await _reject(refused, on_rejected, dead_letters)
                await _timed(store.stage(read_model), phases)
                await _timed(store.finish(), phases)
            except BaseException:
                await _settle(staging, cancel=True)  # not left running on a rolled-back block
                await _settle(folding)  # the thread is done before the db closes
                raise
    finally:
        store.change_log = keep_changes
        events.db.close()
        close = getattr(chunks, "close", None)  # a generator: its reader lets go now
        if close is not None:
            close()
    _count(summary, events)
    _step(summary, "done", progress)
    return summary


def _count(summary: ReplaySummary, events: ColumnarEvents) -> None:
    """The duplicates, conflicts and rejected messages ``events`` met, into ``summary``."""
    summary.duplicates, summary.conflicts = events.duplicates, events.conflicts
    summary.rejected = events.rejected


async def _stage_chunks(store: ProjectionStore, chunks: Iterator[list[LogMessage]],
                        events: ColumnarEvents, loaded: list[RecordRows], topic: str, now: int,
                        folder: Path, consumer: str, summary: ReplaySummary,
                        refused: list[Rejected], progress: Progress | None
                        ) -> asyncio.Future[None] | None:
    """Every chunk read and validated, and its event-log rows staged in ``store``: the
    staging of the last chunk is returned still running (None without chunks)."""
    loop = asyncio.get_running_loop()
    phases = summary.phases
    staging: asyncio.Future[None] | None = None
    try:
        while True:
            # The next chunk is read and validated on a thread (DuckDB releases the
            # interpreter lock) while the store copies the previous one.
            item = await loop.run_in_executor(None, _next_chunk, chunks, events, loaded,
                                              topic, now, folder, phases)
            if item is None:
                return staging
            logged, updates, rejected, read = item
            summary.messages += read
            summary.accepted += len(logged)
            refused += rejected
            if staging is not None:
                await staging
            staging = asyncio.ensure_future(_timed(store.stage(Commit(
                consumer, positions={}, events=logged, recorded_updates=updates)), phases))
            if progress is not None:
                progress(summary)
    except BaseException:
        await _settle(staging, cancel=True)
        raise


async def _settle(work: asyncio.Future[Any] | None, *, cancel: bool = False) -> None:
    """``work`` (if any) ended, cancelled first with ``cancel``; its outcome dropped."""
    if work is None or work.done():
        return
    if cancel:
        work.cancel()
    with suppress(BaseException):
        await work


def _next_chunk(chunks: Iterator[list[LogMessage]], events: ColumnarEvents,
                loaded: list[RecordRows], topic: str, now: int, folder: Path,
                phases: dict[str, float]
                ) -> tuple[list[LoggedEvent], dict[str, int], list[Rejected], int] | None:
    """The next chunk of the log read and validated into ``events``: its new event-log
    rows, the known times of earlier rows it moved, its rejected messages, its size."""
    started = time.perf_counter()
    messages = next(chunks, None)
    read_at = time.perf_counter()
    phases["read"] += read_at - started
    if messages is None:
        return None
    base = events.lines
    rejected, updates = _add_chunk(messages, events, loaded, topic, now, folder)
    logged = [LoggedEvent(eid, iid, typ, ts, messages[n - base - 1].value, known)
              for n, eid, iid, typ, ts, known in events.db.execute(
                  f"SELECT n, eid, iid, typ, ts, known FROM facts WHERE n > {base} "
                  "ORDER BY n").fetchall()]
    phases["validate"] += time.perf_counter() - read_at
    return logged, updates, rejected, len(messages)


def _add_chunk(messages: list[LogMessage], events: ColumnarEvents, loaded: list[RecordRows],
               topic: str, now: int, folder: Path) -> tuple[list[Rejected], dict[str, int]]:
    """``add_records`` of the messages (appended to ``loaded``, their bytes then spilled
    to ``folder``); an event without ``recorded_at`` is known at its message's log
    timestamp, or at ``now`` when the log keeps none."""
    rows = RecordRows(topic, [m.value for m in messages],
                      array("q", [m.partition for m in messages]),
                      array("q", [m.offset + 1 for m in messages]), row_base=events.lines)
    recorded = array("q", [now if m.timestamp_us is None else m.timestamp_us
                           for m in messages])
    found = add_records(events, rows, recorded, loaded)
    loaded.append(rows)
    rows.spill(folder / f"{rows.row_base}.values")
    return found


@contextmanager
def _spilling(loaded: list[RecordRows]) -> Iterator[Path]:
    """A temporary folder for the bytes of the chunks in ``loaded``, removed (and the
    chunks' files let go) at the end."""
    with tempfile.TemporaryDirectory(prefix="dispatch-replay-") as folder:
        try:
            yield Path(folder)
        finally:
            for rows in loaded:
                rows.close()


async def _timed(work: Awaitable[None], phases: dict[str, float]) -> None:
    started = time.perf_counter()
    await work
    phases["store"] += time.perf_counter() - started


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
    phases["fold"] = time.perf_counter() - started
    return Commit(consumer, positions=keys, expected=dict.fromkeys(keys, 0),
                  incidents=incidents, calls=calls,
                  deltas={b: v for b, v in totals.items() if any(v)}, shifts=shifts,
                  rejected=events.rejected, duplicates=events.duplicates,
                  conflicts=events.conflicts, new_rows=True)


def _step(summary: ReplaySummary, step: str, progress: Progress | None) -> None:
    summary.step = step
    if progress is not None:
        progress(summary)
