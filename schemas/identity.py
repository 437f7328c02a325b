"""When two events with one ``event_id`` are the same event: the conflict rule.

Contract: ``difference(a, b)`` compares two raw copies of an event that share an
``event_id`` and returns None when they are the same event (a duplicate), else
a short phrase naming what differs (a conflict). An event's content is what
happened: ``type``, ``incident_id``, the instant ``occurred_at`` and every
``data`` field (unknown extra ones included), compared after validation and
upcasting. So key order, whitespace, the offset an instant is written with,
``5`` against ``5.0`` and a legacy v0 copy of a v1 event make no difference,
and neither do the delivery details of the envelope (``recorded_at``,
``source``, ``actor``, ``schema_version``, unknown envelope fields): a retry
that a bridge records again is the same event. Pure; the byte-equal case costs
one comparison.
"""

from __future__ import annotations

from typing import Any

from schemas.parsing import InvalidEvent, parse_event


def difference(a: bytes, b: bytes) -> str | None:
    """None if ``a`` and ``b`` are copies of one event, else what differs."""
    if a == b:
        return None
    try:
        first = _content(parse_event(a).model_dump())
        second = _content(parse_event(b).model_dump())
    except InvalidEvent as exc:  # a stored copy is always valid; be safe anyway
        return f"the other copy is invalid ({exc.reason})"
    return _first_difference(first, second, "")


CONTENT = ("type", "incident_id", "occurred_at", "data")


def _content(event: dict[str, Any]) -> dict[str, Any]:
    return {key: event.get(key) for key in CONTENT}


def _first_difference(a: Any, b: Any, where: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if found is not None:
                return found
        return None
    if (a == b and type(a) is type(b)) or (_number(a) and _number(b) and a == b):
        return None
    return f"{where or 'event'} differs"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
