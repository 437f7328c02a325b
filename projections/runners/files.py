"""JSON Lines files as a positioned source: each record knows where to resume.

Contract:
- ``file_source(path)`` names a file by its resolved path and the hash of its
  first line, so a file that is appended to keeps its position, while a
  different file written to the same path starts again from the top;
- ``read_records`` yields batches (``Batch``, a list of records) of the
  non-blank lines from byte ``offset`` on, with 1-based line numbers in their
  labels. Each batch carries the fingerprint of the file's bytes before its
  end, which is stored with the position so that a later run can tell whether
  those bytes are still the ones ingested (``prefix_fingerprint``);
- a last line without a newline is read only if it is complete JSON: a line a
  producer is still writing stays unread (``held_back``) until it is finished.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from projections.ports import Record

HEAD_BYTES = 4096
CHUNK = 1 << 20


def file_source(path: Path) -> str:
    with path.open("rb") as stream:
        first_line = stream.readline(HEAD_BYTES)
    return f"file:{path.resolve()}#{hashlib.sha1(first_line).hexdigest()[:12]}"


def new_fingerprint() -> Any:
    """The running hash behind fingerprints (``hashlib`` object)."""
    return hashlib.sha1(usedforsecurity=False)


def prefix_fingerprint(path: Path, end: int) -> tuple[Any, str] | None:
    """The running hash of the first ``end`` bytes of ``path`` and its hex digest,
    or None if the file is shorter than that."""
    hasher = new_fingerprint()
    left = end
    with path.open("rb") as stream:
        while left:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                return None
            hasher.update(chunk)
            left -= len(chunk)
    return hasher, hasher.hexdigest()


class Batch(list[Record]):
    """Records read in one go, and ``fingerprint``: the hex digest of the file's
    bytes before the end of the last record."""

    fingerprint: str = ""


@dataclass(slots=True)
class HeldBack:
    """An unfinished last line left unread: its line number and size."""

    line: int = 0
    size: int = 0


def read_records(path: Path, source: str, offset: int = 0, batch_size: int = 10_000,
                 hasher: Any = None, held_back: HeldBack | None = None) -> Iterator[Batch]:
    """Batches of records from ``offset`` (a line start) to the end of the file.

    ``hasher`` is the running hash of the bytes before ``offset`` (a fresh one
    if None and ``offset`` is 0); it is advanced over every byte read. An
    unfinished last line is noted in ``held_back``."""
    if hasher is None:
        hasher = new_fingerprint() if offset == 0 else prefix_fingerprint(path, offset)
        if isinstance(hasher, tuple):
            hasher = hasher[0]
    with path.open("rb") as stream:
        line_no = stream.read(offset).count(b"\n") if offset else 0
        position = offset
        batch = Batch()
        read: list[bytes] = []
        """Bytes read since the hash was last advanced (up to the last record)."""
        for line in stream:
            line_no += 1
            text = line.strip()
            if not line.endswith(b"\n") and text and not _complete(text):
                if held_back is not None:
                    held_back.line, held_back.size = line_no, len(line)
                break
            read.append(line)
            position += len(line)
            if not text:
                continue
            batch.append(Record(source, 0, position, text, line_no))
            if len(batch) >= batch_size:
                hasher.update(b"".join(read))
                read.clear()
                batch.fingerprint = hasher.hexdigest()
                yield batch
                batch = Batch()
        if batch:
            # Blank lines after the last record stay out of the hash: they are after
            # the position stored with this batch, and will be read again next time.
            last = len(read)
            while last and not read[last - 1].strip():
                last -= 1
            hasher.update(b"".join(read[:last]))
            batch.fingerprint = hasher.hexdigest()
            yield batch


def _complete(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True
