"""Where each line with content of a JSON Lines file ends, from one walk of the file
that can run on a thread beside DuckDB's scan of it (DuckDB releases the interpreter
lock while it works, so on two cores the walk costs no extra time).

Contract: rows are the lines with content (not only ASCII whitespace; lines end at
``\\n``), numbered from ``row_base + 1`` in file order, as DuckDB's NDJSON reader
numbers its rows; ``record(row)`` is the row's ``Record`` as the exact engine reads
it (stripped text, 1-based line number, the offset just past its line end);
``nul_rows`` are the rows that hold the escape ``\\u0000`` (they may hold the NUL
character, which the contract refuses).

``RecordRows`` keeps the same contract for records that are not lines of a file
(the messages of a log), written out as one.
"""

from __future__ import annotations

import mmap
import threading
from array import array
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path
from typing import Protocol, overload

from projections.ports import Record
from projections.runners.files import file_source
from schemas.parsing import NUL_ESCAPE

_NUL = NUL_ESCAPE[bytes]


class RowIndex(Protocol):
    """The rows of one input, as the module contract numbers them."""

    row_base: int
    nul_rows: list[int]

    @property
    def rows(self) -> int: ...

    def start(self) -> None: ...

    def join(self) -> None: ...

    def record(self, row: int) -> Record: ...

    def close(self) -> None: ...


class LineIndex:
    """The rows of one file (module contract); ``close`` when done."""

    def __init__(self, path: Path, row_base: int = 0) -> None:
        self.path = path
        self.row_base = row_base
        self.source = file_source(path)
        self.nul_rows: list[int] = []
        self._ends = array("q")
        """Offset just past each row's line."""
        self._numbers = array("q")
        """Line number of each row."""
        self._data: mmap.mmap | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def rows(self) -> int:
        return len(self._ends)

    def build(self) -> None:
        """Walk the file once (module contract)."""
        end, number, nul = self._ends.append, self._numbers.append, self.nul_rows.append
        row, position = self.row_base, 0
        with self.path.open("rb") as stream:
            for line_no, line in enumerate(stream, start=1):
                position += len(line)
                if not line.isspace():  # the bytes strip() removes: a blank line is no row
                    row += 1
                    end(position)
                    number(line_no)
                    if _NUL in line:
                        nul(row)

    def start(self) -> None:
        """``build`` on a thread; ``join`` waits for it."""
        def run() -> None:
            try:
                self.build()
            except BaseException as exc:  # handed to the caller by join
                self._failure = exc
        self._thread = threading.Thread(target=run, name="line-index", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._failure is not None:
            raise self._failure

    def record(self, row: int) -> Record:
        at = row - self.row_base - 1
        if not 0 <= at < len(self._ends):
            raise IndexError(f"{self.path} has no row {row}")
        if self._data is None:
            with self.path.open("rb") as stream:
                self._data = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        end = self._ends[at]
        # From the previous row's end: blank lines in between are stripped away.
        start = self._ends[at - 1] if at else 0
        return Record(self.source, 0, end, self._data[start:end].strip(), self._numbers[at])

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
            self._data = None


class RecordRows:
    """The rows of records that are not lines of a file (messages of a log), written
    one per line to a JSON Lines file for DuckDB: ``LineIndex``'s contract, row
    ``row_base + n`` being the ``n``-th message, whose ``record`` is
    ``Record(source, partitions[n - 1], next_positions[n - 1], values[n - 1])``.
    Kept as columns: a million ``Record`` tuples cost hundreds of MB.

    A value that cannot stand as one line of its own (empty, only whitespace, or
    holding a line break, a carriage return or a NUL byte, which DuckDB could split
    or cut) is written as ``{}``, a line that no check accepts, so the contract
    decides it from the message's own bytes."""

    def __init__(self, source: str, values: Sequence[bytes], partitions: Sequence[int],
                 next_positions: Sequence[int], row_base: int = 0) -> None:
        if not len(values) == len(partitions) == len(next_positions):
            raise ValueError("values, partitions and positions differ in length")
        self.row_base = row_base
        self.source = source
        self.values = values
        self.partitions = partitions
        self.next_positions = next_positions
        self.nul_rows = [n for n, raw in enumerate(values, start=row_base + 1) if _NUL in raw]

    @property
    def rows(self) -> int:
        return len(self.values)

    def write(self, path: Path) -> None:
        with path.open("wb") as out:
            for start in range(0, len(self.values), _WRITE_CHUNK):
                chunk = self.values[start:start + _WRITE_CHUNK]
                lines = b"\n".join(chunk)
                # Scans in C; a chunk with a value that cannot be a line is written value
                # by value (placeholders).
                if (lines.count(b"\n") == len(chunk) - 1 and b"\r" not in lines
                        and b"\0" not in lines and all(chunk)
                        and not any(map(bytes.isspace, chunk))):
                    out.write(lines + b"\n")
                else:
                    out.write(b"".join(map(_line, chunk)))

    def start(self) -> None:
        """Nothing to walk: the rows are known."""

    def join(self) -> None:
        """Nothing to wait for."""

    def record(self, row: int) -> Record:
        at = row - self.row_base - 1
        if not 0 <= at < len(self.values):
            raise IndexError(f"no row {row} among rows {self.row_base + 1}.."
                             f"{self.row_base + len(self.values)}")
        return Record(self.source, self.partitions[at], self.next_positions[at],
                      self.values[at])

    def spill(self, path: Path) -> None:
        """Move the values out of memory into the new file ``path`` (one after another,
        as they are), to be read back from there by ``record``; ``close`` lets the
        file go. What the rows are does not change."""
        self.values = _SpilledValues(self.values, path)

    def close(self) -> None:
        """Let go of the file the values were spilled to, if any."""
        if isinstance(self.values, _SpilledValues):
            self.values.close()


class _SpilledValues(Sequence[bytes]):
    """Values kept in a file, one after another, and read back by position."""

    def __init__(self, values: Sequence[bytes], path: Path) -> None:
        self._ends = array("q", accumulate(map(len, values)))
        with path.open("xb") as out:
            out.writelines(values)  # no joined copy of the chunk in memory
        self._map: mmap.mmap | None = None
        if self._ends and self._ends[-1]:
            with path.open("rb") as stored:
                self._map = mmap.mmap(stored.fileno(), 0, access=mmap.ACCESS_READ)

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, at: int) -> bytes: ...

    @overload
    def __getitem__(self, at: slice) -> list[bytes]: ...

    def __getitem__(self, at: int | slice) -> bytes | list[bytes]:
        if isinstance(at, slice):
            return [self[n] for n in range(*at.indices(len(self)))]
        if at < 0:
            at += len(self)
        if not 0 <= at < len(self):
            raise IndexError(at)
        end = self._ends[at]
        start = self._ends[at - 1] if at else 0
        return b"" if self._map is None else self._map[start:end]

    def close(self) -> None:
        if self._map is not None:
            self._map.close()  # reading on raises ValueError


_WRITE_CHUNK = 50_000
_PLACEHOLDER = b"{}\n"


def _line(raw: bytes) -> bytes:
    if b"\n" in raw or b"\r" in raw or b"\0" in raw or raw.isspace() or not raw:
        return _PLACEHOLDER
    return raw + b"\n"
