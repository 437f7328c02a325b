"""The embedded engine: JSON Lines files into a store, one transaction per batch.

A file's position (byte offset after the last committed line) is stored in the
same transaction as the read-model rows, so re-running an interrupted ingest
resumes exactly where the last commit ended: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from projections.ports import ProjectionStore
from projections.projector import Projector, Record, Rejected
from projections.runners.files import file_source, read_records
from schemas.parsing import InvalidEvent, parse_event

INGEST_CONSUMER = "ingest"


@dataclass(slots=True)
class IngestSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped_bytes: int = 0
    seconds: float = 0.0
    stopped_at: Rejected | None = None
    """In strict mode: the first rejected line; nothing after it was committed."""


Progress = Callable[[str, int, int, IngestSummary], None]
"""``progress(file_name, bytes_done, bytes_total, summary)`` after each batch."""


async def ingest_files(
    store: ProjectionStore,
    paths: Sequence[Path],
    *,
    batch_size: int = 10_000,
    strict: bool = False,
    on_rejected: Callable[[Rejected], None] | None = None,
    progress: Progress | None = None,
    from_start: bool = False,
) -> IngestSummary:
    """Ingest ``paths`` in order; see the module doc for the resume contract.

    ``on_rejected`` is called for every rejected line before the batch that
    contains it is committed. With ``strict`` the ingest stops at the first
    rejected line, committing the lines before it.
    """
    summary = IngestSummary()
    started = time.perf_counter()
    projector = Projector(store, INGEST_CONSUMER)
    for path in paths:
        source = file_source(path)
        stored = await store.positions(INGEST_CONSUMER)
        offset = 0 if from_start else stored.get((source, 0), 0)
        size = path.stat().st_size
        summary.skipped_bytes += offset
        for records in read_records(path, source, offset, batch_size):
            if strict:
                records = _until_first_reject(records, summary)
                if not records:
                    break
            prepared = await projector.prepare(records)
            for rejected in prepared.rejected:
                if on_rejected is not None:
                    on_rejected(rejected)
            await store.commit(prepared.commit)
            summary.lines += len(records)
            summary.accepted += prepared.accepted
            summary.duplicates += prepared.commit.duplicates
            summary.rejected += len(prepared.rejected)
            if progress is not None:
                progress(path.name, records[-1].next_position, size, summary)
            if summary.stopped_at is not None:
                break
        if summary.stopped_at is not None:
            break
    summary.seconds = time.perf_counter() - started
    return summary


def _until_first_reject(records: list[Record], summary: IngestSummary) -> list[Record]:
    """The records before the first invalid one (which is noted in ``summary``)."""
    for i, record in enumerate(records):
        try:
            parse_event(record.raw)
        except InvalidEvent as exc:
            summary.stopped_at = Rejected(record, exc.reason)
            return records[:i]
    return records
