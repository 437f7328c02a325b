"""A fast check of an event's bytes, in front of the pydantic contract.

The hot path (``projections.projector.facts_of``) asks ``schemas.plain`` first; this
check takes what that typed decode declines but may still be plain (unknown extra
fields). ``dispatch produce`` uses it directly.

Contract:
- ``parse_event_lean(raw)`` returns a ``LeanEvent`` for an event the contract
  (``schemas.events``, enforced by ``schemas.parsing.parse_event``) accepts as it
  stands, or None when it cannot tell quickly. It never rejects: None means
  "ask ``parse_event``", which accepts or gives the reason. So the pair
  ``parse_event_lean(raw) or parse_event(raw)`` accepts and rejects exactly what
  ``parse_event`` does, with the same reasons (tests/unit/test_lean.py proves
  it on valid, legacy and hostile events);
- it accepts only the plain shape of a current-version event: a JSON object
  (orjson, which refuses NaN, Infinity, numbers beyond a double and invalid
  UTF-8) with the declared fields of its type holding exactly the JSON types the
  contract allows, timestamps written ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)``
  inside the valid range, no ``schema_version`` other than 1, and extra fields
  holding finite numbers only. Anything else (legacy versions to upcast, a space
  or a lowercase ``t`` in a timestamp, nanoseconds, odd offsets) goes to pydantic;
- ``LeanEvent`` holds what the fold and the Kafka key need, with instants as
  integers of microseconds since the Unix epoch (UTC), as ``projections.duty``
  counts them.

``lean_key`` is ``schemas.events.kafka_key`` for a ``LeanEvent``.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import date
from typing import Any, NamedTuple

import orjson

from schemas.events import (
    CURRENT_SCHEMA_VERSION,
    DUTY_KEY,
    EARLIEST,
    END_OF_RANGE,
    MAX_COUNT,
)
from schemas.parsing import NUL_ESCAPE

__all__ = ["LeanEvent", "lean_key", "parse_event_lean"]


class LeanEvent(NamedTuple):
    """An event the contract accepts, as the fold reads it."""

    event_id: str
    type: str
    incident_id: str | None
    """None only for the types that may have none (shift starts, roster entries)."""
    at: int
    """``occurred_at``, µs since the epoch."""
    recorded: int | None
    """``recorded_at``, µs since the epoch, if given."""
    data: dict[str, Any]
    """The decoded ``data`` object, unchanged (defaults are not filled in)."""


def lean_key(event: LeanEvent) -> str:
    """The Kafka key of ``event`` (see ``schemas.events.kafka_key``)."""
    if event.type == "crew.rostered":
        return f"crew:{event.data['crew']}"
    if event.type == "duty.shift_started":
        return DUTY_KEY
    return event.incident_id or ""


_loads = orjson.loads
_intern = sys.intern
_JSONDecodeError = orjson.JSONDecodeError
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_EARLIEST_US = int(EARLIEST.timestamp()) * 1_000_000
_END_US = int(END_OF_RANGE.timestamp()) * 1_000_000
_MISS = object()

_HOUR = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2})\Z", re.ASCII)
_TAIL = re.compile(r"(?:\.(\d{1,6}))?(?:Z|([+-])(0\d|1[0-4]):(00|15|30|45))\Z", re.ASCII)
"""Offsets up to ±14:00 in quarter hours (every real zone); others go to pydantic."""
_CLOCK: dict[str, int] = {f"{m:02d}:{s:02d}": (m * 60 + s) * 1_000_000
                          for m in range(60) for s in range(60)}
"""``MM:SS`` -> µs into the hour, for every valid minute and second (no leap second:
pydantic refuses 60 too)."""
_hours: dict[str, Any] = {}
_tails: dict[str, Any] = {}
_CACHE_LIMIT = 200_000


def _hour(text: str) -> int | None:
    """µs since the epoch of ``YYYY-MM-DDTHH`` (the start of that hour, UTC), or None."""
    match = _HOUR.match(text)
    if match is None:
        return None
    year, month, day, hour = map(int, match.groups())
    try:
        days = date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:
        return None
    return (days * 86_400 + hour * 3600) * 1_000_000 if hour < 24 else None


def _tail(text: str) -> int | None:
    """The fraction minus the offset, in µs, of ``[.ffffff](Z|±HH:MM)``, or None."""
    match = _TAIL.match(text)
    if match is None:
        return None
    fraction, sign, hours, minutes = match.groups()
    micros = int(fraction.ljust(6, "0")) if fraction else 0
    if sign is not None:
        offset = (int(hours) * 3600 + int(minutes) * 60) * 1_000_000
        micros += -offset if sign == "+" else offset
    return micros


def _cached(cache: dict[str, Any], parse: Any, text: str) -> Any:
    """``parse(text)``, remembered (timestamps share their hours and offsets)."""
    found = parse(text)
    if len(cache) < _CACHE_LIMIT:
        cache[text] = found
    return found


def instant(text: Any) -> int | None:
    """µs since the epoch of an RFC 3339 timestamp in the plain shape (see the module
    contract) inside the valid range, or None. Three slices looked up: the hour
    (``YYYY-MM-DDTHH``, cached), ``MM:SS`` (a table) and the tail (cached)."""
    if type(text) is not str:
        return None
    hour = _hours.get(text[:13], _MISS)
    if hour is _MISS:
        hour = _cached(_hours, _hour, text[:13])
    clock = _CLOCK.get(text[14:19])
    tail = _tails.get(text[19:], _MISS)
    if tail is _MISS:
        tail = _cached(_tails, _tail, text[19:])
    # text[13] exists once the clock was found (19 characters at least)
    if hour is None or clock is None or tail is None or text[13] != ":":
        return None
    micros: int = hour + clock + tail
    return micros if _EARLIEST_US <= micros < _END_US else None


def _text(value: Any) -> bool:
    """An optional string: absent (None here) or a JSON string."""
    return value is None or type(value) is str


def _name(value: Any) -> bool:
    """A required non-empty string."""
    return type(value) is str and value != ""


def _count(value: Any) -> bool:
    """An optional count: None or a JSON integer from 0 to 2^53 - 1."""
    return value is None or (type(value) is int and 0 <= value <= MAX_COUNT)


def _flag(value: Any) -> bool:
    return value is None or type(value) is bool


def _names(value: Any) -> bool:
    """A list of non-empty strings."""
    return type(value) is list and all(type(v) is str and v != "" for v in value)


def _finite(value: Any) -> bool:
    """No non-finite number anywhere in ``value`` (orjson yields none, but an extra
    field is checked anyway: the contract refuses them)."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(_finite(v) for v in value.values())
    if kind is list:
        return all(_finite(v) for v in value)
    return True


def _extras_finite(obj: dict[str, Any], known: frozenset[str]) -> bool:
    return all(key in known or _finite(value) for key, value in obj.items())


_AREAS = frozenset({"urban", "rural", "remote"})
_PRIORITIES = frozenset({"normal", "vulnerable", "important"})


def _call_received(d: dict[str, Any]) -> bool:
    get = d.get
    area, priority = get("area"), get("priority", "normal")
    return (_name(get("grid")) and type(area) is str and area in _AREAS
            and type(priority) is str and priority in _PRIORITIES
            and _count(get("customers_affected")) and _text(get("agent"))
            and _text(get("description")))


def _minutes(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return bool(0 <= value <= MAX_COUNT)
    return value is None or (kind is float and math.isfinite(value) and value >= 0)


def _callback(d: dict[str, Any]) -> bool:
    reached, satisfied = d.get("reached"), d.get("satisfied")
    return (type(reached) is bool and _flag(satisfied) and _text(d.get("agent"))
            and (satisfied is None or reached))


def _shift(d: dict[str, Any]) -> bool:
    members = d.get("members")
    return (_name(d.get("team")) and _name(d.get("leader"))
            and (members is None or _names(members)))


def _rostered(d: dict[str, Any]) -> bool:
    return (_name(d.get("crew")) and _name(d.get("grid"))
            and ("skills" not in d or _names(d["skills"])))


_CHECKS: dict[str, tuple[Any, frozenset[str]]] = {
    "call.received": (_call_received, frozenset(
        {"grid", "area", "priority", "customers_affected", "agent", "description"})),
    "call.verified": (lambda d: _text(d.get("verified_by")), frozenset({"verified_by"})),
    "call.rejected": (lambda d: _name(d.get("reason")), frozenset({"reason"})),
    "call.merged": (lambda d: _name(d.get("into_incident_id")),
                    frozenset({"into_incident_id"})),
    "crew.dispatched": (lambda d: _name(d.get("crew")) and _text(d.get("dispatcher"))
                        and _minutes(d.get("eta_minutes")),
                        frozenset({"crew", "dispatcher", "eta_minutes"})),
    "crew.departed": (lambda d: _name(d.get("crew")), frozenset({"crew"})),
    "crew.arrived": (lambda d: _name(d.get("crew")), frozenset({"crew"})),
    "fault.diagnosed": (lambda d: _text(d.get("cause")) and _text(d.get("equipment")),
                        frozenset({"cause", "equipment"})),
    "repair.completed": (lambda d: True, frozenset()),
    "power.restored": (lambda d: _count(d.get("customers_restored")),
                       frozenset({"customers_restored"})),
    "incident.closed": (lambda d: _flag(d.get("satisfied")), frozenset({"satisfied"})),
    "customer.callback": (_callback, frozenset({"reached", "satisfied", "agent"})),
    "duty.shift_started": (_shift, frozenset({"team", "leader", "members"})),
    "crew.rostered": (_rostered, frozenset({"crew", "grid", "skills"})),
}
_DATA = {kind: (check, declared, kind) for kind, (check, declared) in _CHECKS.items()}
_OPTIONAL_INCIDENT = frozenset({"duty.shift_started", "crew.rostered"})
"""Types whose ``incident_id`` may be absent or null (schemas.events)."""
_ENVELOPE = frozenset({"event_id", "type", "incident_id", "occurred_at", "recorded_at",
                       "schema_version", "source", "actor", "data"})


def parse_event_lean(raw: bytes | str) -> LeanEvent | None:
    """The event, if the fast checks accept it; None: ask ``parse_event`` (see the
    module contract)."""
    if NUL_ESCAPE[type(raw)] in raw:
        return None  # parse_event decides: it refuses a NUL in any string
    try:
        obj = _loads(raw)
    except _JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    get = obj.get
    kind = get("type")
    checks = _DATA.get(kind) if type(kind) is str else None
    if checks is None:
        return None
    check, declared, kind = checks  # the type's own string: one object for all its events
    event_id = get("event_id")
    incident_id = get("incident_id")
    data = get("data")
    if type(event_id) is not str or not event_id or type(data) is not dict:
        return None
    if (type(incident_id) is not str or not incident_id) and not (
            incident_id is None and kind in _OPTIONAL_INCIDENT):
        return None
    at = instant(get("occurred_at"))
    if at is None:
        return None
    recorded_at = get("recorded_at")
    recorded = None
    if recorded_at is not None:
        recorded = instant(recorded_at)
        if recorded is None:
            return None
    version = get("schema_version", CURRENT_SCHEMA_VERSION)
    if version != CURRENT_SCHEMA_VERSION or type(version) is not int:
        return None
    if not (_text(get("source")) and _text(get("actor"))):
        return None
    if not check(data):
        return None
    if not obj.keys() <= _ENVELOPE and not _extras_finite(obj, _ENVELOPE):
        return None
    if not data.keys() <= declared and not _extras_finite(data, declared):
        return None
    if incident_id is not None:
        incident_id = _intern(incident_id)  # shared by the incident's events once folded
    return LeanEvent(event_id, kind, incident_id, at, recorded, data)
