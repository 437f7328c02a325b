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
this process, in file order.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from projections.incident import Fact
from projections.ports import ProjectionStore, Record, Rejected
from projections.projector import Projector, facts_of
from projections.runners.files import file_source, read_records
from projections.sla_live import SlaPolicy

INGEST_CONSUMER = "ingest"
PARALLEL_FROM_BYTES = 8 << 20
"""Smaller inputs are parsed inline: starting worker processes would cost more."""


@dataclass(slots=True)
class IngestSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped_bytes: int = 0
    skipped_lines: int = 0
    """Lines that another process running at the same time committed first."""
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
    projector = Projector(store, INGEST_CONSUMER)
    if parse_workers is None:
        parse_workers = default_parse_workers(sum(p.stat().st_size for p in paths))
    pool = (ProcessPoolExecutor(parse_workers, mp_context=get_context("forkserver"))
            if parse_workers else None)
    try:
        for path in paths:
            source = file_source(path)
            stored = await store.positions(INGEST_CONSUMER)
            offset = 0 if from_start else stored.get((source, 0), 0)
            size = path.stat().st_size
            summary.skipped_bytes += offset
            committed = offset
            """Where this file's committed lines end, as far as this process knows."""
            batches = read_records(path, source, offset, batch_size)
            for records, parsed in _parsed(batches, pool, ahead=2 * max(parse_workers, 1)):
                if strict:
                    records, parsed = _until_first_reject(records, parsed, summary)
                    if not records:
                        break
                end = records[-1].next_position
                async with store.writing():
                    if not from_start:
                        now = (await store.positions(INGEST_CONSUMER)).get((source, 0), 0)
                        # Lines up to the stored position are committed (another process
                        # may be ingesting this file too): leave them out.
                        now = max(committed, (await store.positions(INGEST_CONSUMER)).get(
                            (source, 0), 0))
                        if records[0].next_position <= now:
                            before = len(records)
                            records, parsed = _after(now, records, parsed)
                            summary.skipped_lines += before - len(records)
                        committed = now
                    if records:
                        prepared = await projector.prepare(records, parsed=parsed)
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
                    summary.rejected += len(prepared.rejected)
                if progress is not None:
                    progress(path.name, end, size, summary)
                if summary.stopped_at is not None:
                    break
            if summary.stopped_at is not None:
                break
        if sla is not None:
            # Rules touched by earlier batches may have passed a threshold since.
            await store.sla_tick(sla.for_tick(time.time_ns() // 1000))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _parsed(batches: Iterator[list[Record]], pool: ProcessPoolExecutor | None,
            ahead: int) -> Iterator[tuple[list[Record], Parsed]]:
    """Batches with their parse results, in order, keeping ``ahead`` in flight."""
    if pool is None:
        for records in batches:
            yield records, facts_of([r.raw for r in records])
        return
    pending: deque[tuple[list[Record], Future[Parsed]]] = deque()
    for records in batches:
        pending.append((records, pool.submit(facts_of, [r.raw for r in records])))
        if len(pending) > ahead:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


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
