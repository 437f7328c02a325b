"""Turning raw bytes (a Kafka value or a JSON Lines line) into a validated event.

Contract: ``parse_event(raw)`` returns a validated, upcast event, or raises
``InvalidEvent`` whose ``reason`` names the field at fault in one line. It never
raises anything else for bad input.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import CURRENT_SCHEMA_VERSION, EVENT_ADAPTER, Event
from schemas.upcasting import upcast

_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


class InvalidEvent(ValueError):
    """An input that is not a valid event; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_event(raw: bytes | str) -> Event:
    """Validate one event (see module contract)."""
    try:
        # Fast path: current-version events validate straight from JSON in Rust.
        return EVENT_ADAPTER.validate_json(raw)
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
    if kind in ("datetime_type", "datetime_parsing", "datetime_from_date_parsing"):
        return f"{where}: expected an RFC 3339 timestamp with offset ({first['msg']})"
    more = error.error_count() - 1
    extra = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}{extra}"
