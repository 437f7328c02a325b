"""JSON Lines files as a positioned source: each record knows where to resume.

Contract: ``file_source(path)`` names a file by its resolved path and the hash of
its first line, so a file that is appended to keeps its position, while a
different file written to the same path starts again from the top.
``read_records`` yields batches of non-blank lines from byte ``offset`` on, with
1-based line numbers in their labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from projections.ports import Record

HEAD_BYTES = 4096


def file_source(path: Path) -> str:
    with path.open("rb") as stream:
        first_line = stream.readline(HEAD_BYTES)
    return f"file:{path.resolve()}#{hashlib.sha1(first_line).hexdigest()[:12]}"


def read_records(path: Path, source: str, offset: int = 0,
                 batch_size: int = 10_000) -> Iterator[list[Record]]:
    """Batches of records from ``offset`` (a line start) to the end of the file."""
    with path.open("rb") as stream:
        line_no = stream.read(offset).count(b"\n") if offset else 0
        position = offset
        batch: list[Record] = []
        for line in stream:
            position += len(line)
            line_no += 1
            text = line.strip()
            if not text:
                continue
            batch.append(Record(source, 0, position, text, line_no))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
