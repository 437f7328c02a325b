"""The embedded engine: JSON Lines files into a store, one transaction per batch.

A file's position (byte offset after the last committed line) is stored in the
same transaction as the read-model rows, so re-running an interrupted ingest
resumes exactly where the last commit ended: nothing lost, nothing counted twice.

Each batch is folded and committed inside ``store.writing()``, so any number of
ingests may write one store at once: each batch reads the incidents, the known
event ids and the file's position as the other processes committed them. A
batch whose lines another process has meanwhile committed (the same file
ingested twice at once) is left out, so that file still counts once.

Validation (pydantic) is the costliest step, so on large inputs it runs in
worker processes, a few batches ahead of the fold and the commit, which stay in
this process, in file order. The workers ignore Ctrl-C (this process decides
when to stop, and shuts them down) and exit by themselves when this process
dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import forkserver, get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from projections.incident import Fact
from projections.ports import ProjectionStore, Record, Rejected
from projections.projector import Projector, facts_of
from projections.runners.files import (
    Batch,
    HeldBack,
    file_source,
    prefix_fingerprint,
    read_records,
)
from projections.sla_live import SlaPolicy

INGEST_CONSUMER = "ingest"
PARALLEL_FROM_BYTES = 8 << 20
"""Smaller inputs are parsed inline: starting worker processes would cost more."""
PARSE_CHUNK = 500
"""Lines per task sent to a parse worker. Small, so that an interrupted ingest
waits only for a few small tasks to finish (killing a worker could cut a result
in half and hang the pool)."""


@dataclass(slots=True)
class IngestSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    skipped_bytes: int = 0
    skipped_lines: int = 0
    """Lines that another process running at the same time committed first."""
    rewritten: list[str] = field(default_factory=list)
    """Files whose ingested bytes changed (read again from the top), for people."""
    held_back: list[str] = field(default_factory=list)
    """Unfinished last lines left unread, for people."""
    seconds: float = 0.0
    stopped_at: Rejected | None = None
    """In strict mode: the first rejected line; nothing after it was committed."""


Progress = Callable[[str, int, int, IngestSummary], None]
"""``progress(file_name, bytes_done, bytes_total, summary)`` after each batch."""

Parsed = list[Fact | str]


def default_parse_workers(total_bytes: int) -> int:
    if total_bytes < PARALLEL_FROM_BYTES:
        return 0
    return max(1, min(2, (os.cpu_count() or 1)))


async def ingest_files(
    store: ProjectionStore,
    paths: Sequence[Path],
    *,
    batch_size: int = 10_000,
    strict: bool = False,
    on_rejected: Callable[[Rejected], None] | None = None,
    progress: Progress | None = None,
    from_start: bool = False,
    parse_workers: int | None = None,
    sla: SlaPolicy | None = None,
    recorded_as_occurred: bool = False,
) -> IngestSummary:
    """Ingest ``paths`` in order; see the module doc for the resume contract.

    ``on_rejected`` is called for every rejected line before the batch that
    contains it is committed. With ``strict`` the ingest stops at the first
    rejected line, committing the lines before it. ``parse_workers`` processes
    validate ahead (0: inline; None: decided by input size). With ``sla``, each
    batch's transaction also keeps the SLA state and alert outbox of the
    incidents it touched (``projections.sla_live``), and a last transaction
    re-evaluates every rule due by the end.
    """
    summary = IngestSummary()
    started = time.perf_counter()
    # A file folded in memory is read as it stands: an event without recorded_at counts
    # as recorded when it occurred, not when this process happened to read it.
    projector = (Projector(store, INGEST_CONSUMER, clock=None) if recorded_as_occurred
                 else Projector(store, INGEST_CONSUMER))
    if parse_workers is None:
        parse_workers = default_parse_workers(sum(p.stat().st_size for p in paths))
    pool = _start_pool(parse_workers) if parse_workers else None
    try:
        # What a batch leaves behind (folded state, the store's rows) lives on: keep the
        # cyclic garbage collector from walking it again and again (it found no garbage
        # there, and took 40 % of the time of a 300k-event ``report --input``).
        gc.freeze()
        for path in paths:
            await _ingest_file(store, projector, path, summary, pool,
                               ahead=2 * max(parse_workers, 1), batch_size=batch_size,
                               strict=strict, on_rejected=on_rejected, progress=progress,
                               from_start=from_start, sla=sla)
            if summary.stopped_at is not None:
                break
        if sla is not None:
            # Rules touched by earlier batches may have passed a threshold since.
            await store.sla_tick(sla.for_tick(time.time_ns() // 1000))
    except BaseException:
        if pool is not None:
            _abandon(pool)
        raise
    finally:
        gc.unfreeze()
    if pool is not None:
        pool.shutdown(cancel_futures=True)
    summary.seconds = time.perf_counter() - started
    return summary


async def _resume_point(store: ProjectionStore, path: Path, source: str,
                        summary: IngestSummary) -> tuple[int, Any, tuple[int, str] | None]:
    """Where to start reading ``path``: the offset, the running hash of the bytes
    before it, and the stored (position, fingerprint) found invalid, if any."""
    key = (source, 0)
    offset = (await store.positions(INGEST_CONSUMER)).get(key, 0)
    fingerprint = (await store.fingerprints(INGEST_CONSUMER)).get(key)
    if offset == 0:
        return 0, None, None
    prefix = prefix_fingerprint(path, offset)
    if fingerprint is None or (prefix is not None and prefix[1] == fingerprint):
        summary.skipped_bytes += offset
        return offset, None if prefix is None else prefix[0], None
    summary.rewritten.append(
        f"{path.name}: the first {offset:,} bytes are not the ones ingested before "
        f"(the file is {'shorter' if prefix is None else 'different'}: rewritten in place?); "
        "reading it again from the top, events already stored count as duplicates")
    return 0, None, (offset, fingerprint)


async def _ingest_file(store: ProjectionStore, projector: Projector, path: Path,
                       summary: IngestSummary, pool: ProcessPoolExecutor | None, *,
                       ahead: int, batch_size: int, strict: bool,
                       on_rejected: Callable[[Rejected], None] | None,
                       progress: Progress | None, from_start: bool,
                       sla: SlaPolicy | None = None) -> None:
    source = file_source(path)
    key = (source, 0)
    stale: tuple[int, str] | None = None
    if from_start:
        offset, hasher = 0, None
    else:
        offset, hasher, stale = await _resume_point(store, path, source, summary)
    size = _size(path)
    committed = offset
    """Where this file's committed lines end, as far as this process knows."""
    held_back = HeldBack()
    batches = read_records(path, source, offset, batch_size, hasher, held_back)
    for batch, parsed in _parsed(batches, pool, ahead):
        records: list[Record] = batch
        fingerprint = batch.fingerprint
        if strict:
            records, parsed = _until_first_reject(records, parsed, summary)
            if not records:
                break
            if len(records) < len(batch):
                fingerprint = _fingerprint_at(path, records[-1].next_position)
        end = records[-1].next_position
        async with store.writing():
            if not from_start:
                # Lines up to the stored position are committed (another process may be
                # ingesting this file too): leave them out. A position found invalid at
                # the start (the file was rewritten) does not count.
                now = (await store.positions(INGEST_CONSUMER)).get(key, 0)
                if stale is not None and now == stale[0] and (
                        await store.fingerprints(INGEST_CONSUMER)).get(key) == stale[1]:
                    now = 0
                now = max(committed, now)
                if records[0].next_position <= now:
                    before = len(records)
                    records, parsed = _after(now, records, parsed)
                    summary.skipped_lines += before - len(records)
                committed = now
            if records:
                prepared = await projector.prepare(records, parsed=parsed)
                prepared.commit.fingerprints[key] = fingerprint
                for rejected in prepared.rejected:
                    if on_rejected is not None:
                        on_rejected(rejected)
                if sla is not None:
                    prepared.commit.sla = sla.for_batch(
                        prepared.commit.incidents,
                        max((e.at for e in prepared.commit.events), default=None),
                        time.time_ns() // 1000)
                await store.commit(prepared.commit)
                committed = end
        if records:
            summary.lines += len(records)
            summary.accepted += prepared.accepted
            summary.duplicates += prepared.commit.duplicates
            summary.rejected += prepared.commit.rejected
            summary.conflicts += prepared.commit.conflicts
        gc.freeze()
        if progress is not None:
            progress(path.name, end, size, summary)
        if summary.stopped_at is not None:
            return
    if held_back.size:
        summary.held_back.append(
            f"{path.name}:{held_back.line}: the last line has no newline and is not complete "
            f"JSON ({held_back.size:,} bytes): left unread until it is finished")


def _size(path: Path) -> int:
    return path.stat().st_size


def _fingerprint_at(path: Path, end: int) -> str:
    found = prefix_fingerprint(path, end)
    return "" if found is None else found[1]


def _parse_context() -> BaseContext:
    """The forkserver context, its server started with Ctrl-C ignored: the server and
    the workers it forks then ignore it from their first instruction on (a terminal
    sends Ctrl-C to the whole process group, also while they are starting)."""
    context = get_context("forkserver")
    if threading.current_thread() is not threading.main_thread():
        return context
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)
    return context


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` parse processes, all started now. Ctrl-C waits the few
    milliseconds it takes to fork them (then acts), so that every worker is known
    to the pool, and can be stopped, whenever the ingest is interrupted."""
    pool: ProcessPoolExecutor | None = None
    try:
        with _interrupt_deferred():
            pool = ProcessPoolExecutor(workers, mp_context=_parse_context(),
                                       initializer=_parse_worker_started)
            # The pool forks a worker per task while none is idle: one task each starts all.
            for _ in range(workers):
                pool.submit(int)
    except BaseException:
        if pool is not None:
            _abandon(pool)
        raise
    return pool


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Stop the parse workers at once (the ingest was interrupted or failed): a worker
    still starting would take a second or two to import before it could be told,
    and, if this process ended first, fail on the pool's vanished resources. The
    workers hold nothing of the store's: killing them loses nothing."""
    processes = list(pool._processes.values())  # the pool's own table (no public one)
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.kill()
    # A worker killed while sending a result leaves half a message in the results pipe,
    # and the pool's thread waits for the rest: closing this process's (unused) end for
    # writing, the last one open, turns that wait into end-of-file, which the pool
    # handles as a broken pool. Without it the interpreter could not exit.
    with contextlib.suppress(OSError, AttributeError):
        pool._result_queue._writer.close()  # type: ignore[attr-defined]
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(1.0)


@contextlib.contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (in the main thread) until the block is done, then act on it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt


def _parse_worker_started() -> None:
    """In each parse worker: leave Ctrl-C to the ingest process (a terminal sends it
    to the whole process group), and end when the ingest process ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns when the ingest process is gone, however it ended
        os._exit(1)


def _parsed(batches: Iterator[Batch], pool: ProcessPoolExecutor | None,
            ahead: int) -> Iterator[tuple[Batch, Parsed]]:
    """Batches with their parse results, in order, keeping ``ahead`` in flight."""
    if pool is None:
        for records in batches:
            yield records, facts_of([r.raw for r in records])
        return
    pending: deque[tuple[Batch, list[Future[Parsed]]]] = deque()
    for records in batches:
        raws = [r.raw for r in records]
        pending.append((records, [pool.submit(facts_of, raws[i:i + PARSE_CHUNK])
                                  for i in range(0, len(raws), PARSE_CHUNK)]))
        if len(pending) > ahead:
            yield _joined(*pending.popleft())
    while pending:
        yield _joined(*pending.popleft())


def _joined(records: Batch, futures: list[Future[Parsed]]) -> tuple[Batch, Parsed]:
    parsed: Parsed = []
    for future in futures:
        parsed += future.result()
    return records, parsed


def _after(position: int, records: list[Record],
           parsed: Parsed) -> tuple[list[Record], Parsed]:
    """The records that end after ``position`` (those before it are committed)."""
    keep = [i for i, record in enumerate(records) if record.next_position > position]
    return [records[i] for i in keep], [parsed[i] for i in keep]


def _until_first_reject(records: list[Record], parsed: Parsed,
                        summary: IngestSummary) -> tuple[list[Record], Parsed]:
    """The records before the first invalid one (which is noted in ``summary``)."""
    for i, item in enumerate(parsed):
        if isinstance(item, str):
            summary.stopped_at = Rejected(records[i], item)
            return records[:i], parsed[:i]
    return records, parsed
