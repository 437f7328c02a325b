"""The line index against a naive walk of the same bytes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.line_index import LineIndex, RecordRows
from projections.ports import Record

PIECES = st.sampled_from([b"", b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"{}", b'{"a":1}', b"x",
                          b"\\u0000", b"\\\\u0000", b"\xff", b"\x00", b" {} ", b"\xc3\xa9"])


def naive(data: bytes, row_base: int) -> tuple[list[tuple[int, int, int, bytes]], list[int]]:
    """``(row, line number, offset past the line, stripped text)`` of each line with
    content, and the rows holding the NUL escape, as the exact engine reads them."""
    rows, nul, row, position = [], [], row_base, 0
    for line_no, line in enumerate(_lines(data), start=1):
        position += len(line)
        text = line.strip()
        if text:
            row += 1
            rows.append((row, line_no, position, text))
            if b"\\u0000" in text:
                nul.append(row)
    return rows, nul


def _lines(data: bytes) -> list[bytes]:
    """Lines as ``for line in open(path, "rb")`` gives them (split after each \\n)."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(PIECES, max_size=4).map(b"".join), max_size=30),
       st.sampled_from([b"\n", b"\r\n"]), st.booleans(), st.integers(0, 5))
def test_every_row_is_found_as_the_walk_finds_it(lines: list[bytes], end: bytes,
                                                 last_end: bool, row_base: int) -> None:
    data = end.join(lines) + (end if last_end and lines else b"")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.jsonl"
        path.write_bytes(data)
        index = LineIndex(path, row_base)
        index.start()
        index.join()
        want, nul = naive(data, row_base)
        assert index.rows == len(want)
        assert index.nul_rows == nul
        for row, line_no, position, text in want:
            record = index.record(row)
            assert (record.line, record.next_position, record.raw) == (line_no, position, text)
        with pytest.raises(IndexError):
            index.record(row_base + len(want) + 1)
        index.close()


def test_a_failed_walk_is_raised_by_join(tmp_path: Path) -> None:
    path = tmp_path / "gone.jsonl"
    path.write_bytes(b"{}\n")
    index = LineIndex(path)
    path.unlink()
    index.start()
    with pytest.raises(FileNotFoundError):
        index.join()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(PIECES | st.just(b"\n"), max_size=5).map(b"".join), max_size=12),
       st.integers(1, 3))
def test_record_rows_write_one_line_per_message_and_give_it_back(
        values: list[bytes], chunk: int) -> None:
    """Each message is one line: itself when it can be one, else ``{}``; the fast
    path (whole chunks joined) and the slow path (value by value) write the same bytes."""
    import projections.line_index as line_index

    partitions = [n % 3 for n in range(len(values))]
    positions = [10 + n for n in range(len(values))]
    rows = RecordRows("topic", values, partitions, positions)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        original, line_index._WRITE_CHUNK = line_index._WRITE_CHUNK, chunk
        try:
            rows.write(path)
        finally:
            line_index._WRITE_CHUNK = original
        written = path.read_bytes().split(b"\n")
    assert written[-1] == b"" and len(written) - 1 == len(values) == rows.rows
    for n, (line, value) in enumerate(zip(written, values, strict=False), start=1):
        whole = (value.strip() != b"" and not any(c in value for c in (b"\n", b"\r", b"\x00"))
                 and not value.isspace())
        assert line == (value if whole else b"{}")
        assert rows.record(n) == Record("topic", partitions[n - 1], positions[n - 1], value)
    assert rows.nul_rows == [n for n, v in enumerate(values, start=1) if b"\\u0000" in v]
    with pytest.raises(IndexError):
        rows.record(len(values) + 1)


@given(st.lists(st.lists(PIECES | st.just(b"\n"), max_size=5).map(b"".join), max_size=12),
       st.integers(0, 50))
def test_spilled_record_rows_give_back_every_message(values: list[bytes], base: int) -> None:
    """Spilled to a file, the rows are what they were: each record, its bytes, the count,
    the NUL rows; once closed, they are not read any more."""
    partitions = [n % 3 for n in range(len(values))]
    positions = [10 + n for n in range(len(values))]
    rows = RecordRows("topic", list(values), partitions, positions, row_base=base)
    before = [rows.record(n) for n in range(base + 1, base + len(values) + 1)]
    nul_rows = rows.nul_rows
    with tempfile.TemporaryDirectory() as tmp:
        rows.spill(Path(tmp) / "rows.values")
        assert [rows.record(n) for n in range(base + 1, base + len(values) + 1)] == before
        assert [r.raw for r in before] == values
        assert rows.rows == len(values) and rows.nul_rows == nul_rows
        assert list(rows.values[1:]) == values[1:] and list(rows.values) == values
        if values:
            assert rows.values[-1] == values[-1]
        with pytest.raises(IndexError):
            rows.record(base + len(values) + 1)
        with pytest.raises(IndexError):
            rows.values[-len(values) - 1]
        rows.close()
        if any(values):
            with pytest.raises(ValueError):
                rows.record(base + 1)
