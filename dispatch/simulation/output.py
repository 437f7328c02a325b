"""Writing simulated items as JSON Lines.

Contract: one compact JSON object per line (a :class:`MalformedLine` verbatim),
``\\n``-terminated, UTF-8; the bytes are identical whether orjson or the
standard ``json`` module does the encoding.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from typing import IO, Final

try:  # orjson is a dependency, but keep the module usable without it.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None  # type: ignore[assignment]
import json as _json

from dispatch.simulation.plan import MalformedLine, SimItem


def dumps(obj: object) -> bytes:
    """Compact JSON bytes for ``obj`` (orjson if importable, else json with identical output
    for the str/int/bool/None/dict values the simulator produces)."""
    if _orjson is not None:
        return _orjson.dumps(obj)
    return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def write_jsonl(
    items: Iterable[SimItem],
    path_or_stream: str | os.PathLike[str] | IO[bytes] | IO[str],
) -> int:
    """Write one JSON object per line (``MalformedLine`` text verbatim); return the line count.

    A path is created/truncated and closed afterwards. A binary stream is
    written to directly; a text stream with a ``buffer`` (like ``sys.stdout``)
    is flushed and its binary buffer used; other text streams get ``str``.
    Streams are flushed, not closed. Output is UTF-8, ``\\n``-terminated lines,
    identical whether orjson or json does the encoding.
    """
    if isinstance(path_or_stream, str | os.PathLike):
        with open(path_or_stream, "wb") as fh:
            return _write_binary(items, fh)
    stream = path_or_stream
    if isinstance(stream, io.TextIOBase):
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            return _write_binary(items, buffer)
        return _write_text(items, stream)
    if isinstance(stream, io.StringIO):  # pragma: no cover - StringIO is a TextIOBase
        return _write_text(items, stream)
    return _write_binary(items, stream)  # type: ignore[arg-type]


_CHUNK: Final = 4096


def _encoder() -> Callable[[object], bytes]:
    if _orjson is not None:
        opt = _orjson.OPT_APPEND_NEWLINE
        raw = _orjson.dumps

        def enc(obj: object) -> bytes:
            return raw(obj, option=opt)

        return enc
    return lambda obj: dumps(obj) + b"\n"


def _write_binary(items: Iterable[SimItem], fh: IO[bytes]) -> int:
    enc = _encoder()
    count = 0
    chunk: list[bytes] = []
    append = chunk.append
    for item in items:
        if isinstance(item, MalformedLine):
            append(item.text.encode("utf-8", "surrogateescape") + b"\n")
        else:
            append(enc(item))
        if len(chunk) >= _CHUNK:
            fh.write(b"".join(chunk))
            count += len(chunk)
            chunk.clear()
    if chunk:
        fh.write(b"".join(chunk))
        count += len(chunk)
    fh.flush()
    return count


def _write_text(items: Iterable[SimItem], fh: IO[str]) -> int:
    count = 0
    for item in items:
        if isinstance(item, MalformedLine):
            fh.write(item.text + "\n")
        else:
            fh.write(dumps(item).decode() + "\n")
        count += 1
    fh.flush()
    return count

