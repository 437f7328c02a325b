"""Turning raw bytes (a Kafka value or a JSON Lines line) into a validated event.

Contract: ``parse_event(raw)`` returns a validated, upcast event, or raises
``InvalidEvent`` whose ``reason`` names the field at fault in one line. It never
raises anything else for bad input. Besides the models' rules it refuses
``NaN``, ``Infinity`` and numbers too large for a double anywhere in the event
(unknown extra fields included): they are not JSON, and a stored event must
print back as valid JSON. It also refuses the NUL character (``\u0000``) in any
string or key: PostgreSQL text cannot hold it, so such an event would be
accepted by one store and stop another.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import CURRENT_SCHEMA_VERSION, EVENT_ADAPTER, MAX_COUNT, Event
from schemas.upcasting import upcast

_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


class InvalidEvent(ValueError):
    """An input that is not a valid event; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_event(raw: bytes | str) -> Event:
    """Validate one event (see module contract)."""
    if NUL_ESCAPE[type(raw)] in raw:
        _refuse_nul(raw)
    try:
        # Fast path: current-version events validate straight from JSON in Rust.
        return _finite(EVENT_ADAPTER.validate_json(raw))
    except ValidationError as first_error:
        error = first_error
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"not a JSON object but {type(obj).__name__}")
    version = obj.get("schema_version", CURRENT_SCHEMA_VERSION)
    if version != CURRENT_SCHEMA_VERSION:
        try:
            # Re-encode so the strict JSON-mode rules (timestamps as strings) apply.
            return EVENT_ADAPTER.validate_json(orjson.dumps(upcast(obj)))
        except ValueError as exc:  # ValidationError is a ValueError too
            if isinstance(exc, ValidationError):
                raise InvalidEvent(describe(exc, obj)) from None
            raise InvalidEvent(str(exc)) from None
    raise InvalidEvent(describe(error, obj))


# A NUL can only reach a decoded string through this escape: a raw NUL byte is not JSON.
NUL_ESCAPE: dict[type, Any] = {bytes: b"\\u0000", str: "\\u0000"}


def _refuse_nul(raw: bytes | str) -> None:
    """InvalidEvent naming the first string or key holding U+0000, if any (the
    escape may also be a literal backslash followed by ``u0000``, which is fine)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # parse_event reports it
    where = _nul_path(obj, "")
    if where is not None:
        raise InvalidEvent(f"{where}: contains the NUL character (U+0000), which an event "
                           "may not hold")


def _nul_path(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        return (where or "event") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if "\x00" in key:
                return (where + "." if where else "") + repr(key)
            found = _nul_path(item, path)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def _finite(event: Event) -> Event:
    """``event``, unless an unknown extra field holds a non-finite number (the
    declared number fields refuse them already)."""
    envelope_extra = event.__pydantic_extra__
    data_extra = event.data.__pydantic_extra__
    if envelope_extra or data_extra:
        where = _non_finite(envelope_extra, "") or _non_finite(data_extra, "data")
        if where:
            raise InvalidEvent(f"{where}: not a finite number (NaN, Infinity and numbers "
                               "beyond 1.8e308 are not valid JSON numbers)")
    return event


def _non_finite(value: Any, where: str) -> str | None:
    """The path of the first non-finite number in ``value``, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where or "event"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


_RANGE_ERRORS = frozenset({"greater_than_equal", "greater_than", "less_than", "less_than_equal"})
_TYPE_ERRORS = frozenset({"int_type", "float_type", "bool_type", "int_from_float",
                          "finite_number"})


def describe(error: ValidationError, obj: dict[str, Any]) -> str:
    """One line naming the field at fault for the first validation error."""
    first = error.errors(include_url=False)[0]
    kind = first["type"]
    loc = [str(part) for part in first["loc"]]
    if kind == "union_tag_invalid":
        return f"type: unknown event type {obj.get('type')!r}"
    if kind == "union_tag_not_found":
        return "type: field required"
    if loc and loc[0] == obj.get("type"):
        loc = loc[1:]  # drop the discriminator pydantic puts first
    where = ".".join(loc) or "event"
    if kind == "timezone_aware" or (
            kind == "string_pattern_mismatch" and loc and loc[-1].endswith("_at")
            and _NAIVE.match(str(first.get("input", "")))):
        return f"{where}: timestamp has no UTC offset"
    if kind == "string_pattern_mismatch" and loc and loc[-1].endswith("_at"):
        return f"{where}: expected an RFC 3339 timestamp with seconds and offset, " \
               f"got {first.get('input')!r}"
    if kind in _RANGE_ERRORS and loc and loc[-1].endswith("_at"):
        return (f"{where}: out of range: instants must be from 1970-01-01T00:00:00Z to "
                f"before 2200-01-01T00:00:00Z, got {first.get('input')!s}")
    if kind in _RANGE_ERRORS and loc and loc[-1].startswith("customers"):
        return (f"{where}: out of range: counts are integers from 0 to {MAX_COUNT:,} "
                f"(below 2^53), got {first.get('input')!r}")
    if kind in _TYPE_ERRORS:
        return (f"{where}: {first['msg']}, got {first.get('input')!r} "
                "(values are not converted from other types)")
    if kind in ("datetime_type", "datetime_parsing", "datetime_from_date_parsing"):
        return f"{where}: expected an RFC 3339 timestamp with offset ({first['msg']})"
    more = error.error_count() - 1
    extra = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}{extra}"
