"""The cheapest check of an event's bytes: a typed decode of the plain shape (msgspec).

Contract:
- ``parse_plain(raw)`` returns ``(event, at, recorded)`` for an event the contract
  (``schemas.parsing.parse_event``) accepts as it stands, or None when it cannot
  tell. Like ``schemas.lean`` it never rejects: None means "ask the next check"
  (``schemas.lean``, then pydantic, which gives the reason). ``at`` and
  ``recorded`` are ``occurred_at`` and ``recorded_at`` in µs since the epoch (UTC),
  ``recorded`` None when absent;
- it accepts only the plain shape: the declared fields of one of the event types,
  each holding exactly the JSON type the contract allows (no coercion: ``5.0``,
  ``true`` or ``"5"`` are not counts), counts from 0 to 2^53 - 1, finite numbers,
  non-empty names, the timestamps ``schemas.lean.instant`` reads (the plain RFC 3339
  shape in the valid range), ``schema_version`` 1 or absent, and **no other field**:
  an unknown field, in the envelope or in ``data``, sends the event on to
  ``schemas.lean``, which checks that its numbers are finite. A NUL escape anywhere,
  invalid JSON or UTF-8, a lone surrogate, a number beyond a double, a ``type``
  given twice with two values: None. A key given twice otherwise keeps its last
  value, as orjson and pydantic do (tests/unit/test_lean.py);
- the returned ``event`` is one of the ``*Plain`` structs below: its type says the
  event type, its ``data`` is the typed payload with the contract's defaults
  filled in (``priority`` "normal"), its timestamps are the texts as given.

Why a second decoder: the typed decode checks types, ranges and names in C while
it reads the bytes and builds no dictionaries. It costs about half of
``orjson.loads`` alone and leaves only the timestamps to Python; with the fact
built, an event costs about 60 % of the orjson-based check (bench/lean.py).
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from schemas.events import MAX_COUNT
from schemas.lean import instant
from schemas.parsing import NUL_ESCAPE

__all__ = ["PlainEvent", "parse_plain"]

NonEmpty = Annotated[str, Meta(min_length=1)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
"""A JSON integer (msgspec takes no float, string or boolean for an ``int``)."""
Minutes = Annotated[float, Meta(ge=0, le=sys.float_info.max)]
"""A JSON number; the upper bound refuses infinity (msgspec refuses NaN and numbers
beyond a double as it reads them, the bound is belt and braces)."""


class _Data(Struct, forbid_unknown_fields=True, gc=False):
    """A payload with only its declared fields (gc=False: it holds strings, numbers and
    tuples of strings, so no cycle is possible and the collector need not track it)."""


class CallReceivedData(_Data):
    grid: NonEmpty
    area: Literal["urban", "rural", "remote"]
    priority: Literal["normal", "vulnerable", "important"] = "normal"
    customers_affected: Count | None = None
    agent: str | None = None
    description: str | None = None


class CallVerifiedData(_Data):
    verified_by: str | None = None


class CallRejectedData(_Data):
    reason: NonEmpty


class CallMergedData(_Data):
    into_incident_id: NonEmpty


class CrewDispatchedData(_Data):
    crew: NonEmpty
    dispatcher: str | None = None
    eta_minutes: Minutes | None = None


class CrewData(_Data):
    crew: NonEmpty


class FaultDiagnosedData(_Data):
    cause: str | None = None
    equipment: str | None = None


class NoData(_Data):
    pass


class PowerRestoredData(_Data):
    customers_restored: Count | None = None


class IncidentClosedData(_Data):
    satisfied: bool | None = None


class CustomerCallbackData(_Data):
    reached: bool
    satisfied: bool | None = None
    agent: str | None = None

    def __post_init__(self) -> None:
        if self.satisfied is not None and not self.reached:
            raise ValueError("satisfied without reached")  # pydantic words the reason


class ShiftStartedData(_Data):
    team: NonEmpty
    leader: NonEmpty
    members: tuple[NonEmpty, ...] | None = None


class CrewRosteredData(_Data):
    crew: NonEmpty
    grid: NonEmpty
    skills: tuple[NonEmpty, ...] = ()


class _Envelope(Struct, kw_only=True, tag_field="type", forbid_unknown_fields=True, gc=False):
    """The envelope's declared fields; each subclass is one event type (its tag)."""

    event_id: NonEmpty
    incident_id: NonEmpty
    occurred_at: str
    recorded_at: str | None = None
    schema_version: Literal[1] = 1
    source: str | None = None
    actor: str | None = None


class CallReceivedPlain(_Envelope, kw_only=True, tag="call.received"):
    data: CallReceivedData


class CallVerifiedPlain(_Envelope, kw_only=True, tag="call.verified"):
    data: CallVerifiedData


class CallRejectedPlain(_Envelope, kw_only=True, tag="call.rejected"):
    data: CallRejectedData


class CallMergedPlain(_Envelope, kw_only=True, tag="call.merged"):
    data: CallMergedData


class CrewDispatchedPlain(_Envelope, kw_only=True, tag="crew.dispatched"):
    data: CrewDispatchedData


class CrewDepartedPlain(_Envelope, kw_only=True, tag="crew.departed"):
    data: CrewData


class CrewArrivedPlain(_Envelope, kw_only=True, tag="crew.arrived"):
    data: CrewData


class FaultDiagnosedPlain(_Envelope, kw_only=True, tag="fault.diagnosed"):
    data: FaultDiagnosedData


class RepairCompletedPlain(_Envelope, kw_only=True, tag="repair.completed"):
    data: NoData


class PowerRestoredPlain(_Envelope, kw_only=True, tag="power.restored"):
    data: PowerRestoredData


class IncidentClosedPlain(_Envelope, kw_only=True, tag="incident.closed"):
    data: IncidentClosedData


class CustomerCallbackPlain(_Envelope, kw_only=True, tag="customer.callback"):
    data: CustomerCallbackData


class ShiftStartedPlain(_Envelope, kw_only=True, tag="duty.shift_started"):
    incident_id: NonEmpty | None = None  # type: ignore[assignment]
    data: ShiftStartedData


class CrewRosteredPlain(_Envelope, kw_only=True, tag="crew.rostered"):
    incident_id: NonEmpty | None = None  # type: ignore[assignment]
    data: CrewRosteredData


PlainEvent = (CallReceivedPlain | CallVerifiedPlain | CallRejectedPlain | CallMergedPlain
              | CrewDispatchedPlain | CrewDepartedPlain | CrewArrivedPlain
              | FaultDiagnosedPlain | RepairCompletedPlain | PowerRestoredPlain
              | IncidentClosedPlain | CustomerCallbackPlain | ShiftStartedPlain
              | CrewRosteredPlain)

PLAIN_TYPES: dict[str, type[_Envelope]] = {
    cls.__struct_config__.tag: cls for cls in PlainEvent.__args__}
"""Event type -> its struct (every type of ``schemas.events``; tests check it)."""

_decode = msgspec.json.Decoder(PlainEvent).decode
_Refused = (msgspec.DecodeError, ValueError)
"""What the decode raises on input it does not take: ValidationError is a DecodeError;
invalid UTF-8 raises UnicodeDecodeError, a ValueError."""


def parse_plain(raw: bytes | str) -> tuple[PlainEvent, int, int | None] | None:
    """The event and its instants, if the typed decode and the timestamp checks accept
    it; None: ask ``schemas.lean`` (see the module contract)."""
    if NUL_ESCAPE[type(raw)] in raw:
        return None
    try:
        event = _decode(raw)
    except _Refused:
        return None
    at = instant(event.occurred_at)
    if at is None:
        return None
    text = event.recorded_at
    if text is None:
        return event, at, None
    recorded = instant(text)
    return None if recorded is None else (event, at, recorded)
