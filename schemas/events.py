"""The event contract (docs/events.md) as pydantic v2 models.

Contract:
- every event is an envelope with a ``type`` discriminator and a typed ``data``;
- ``occurred_at`` / ``recorded_at`` are RFC 3339 strings that carry a UTC offset:
  a naive timestamp (or a bare number) is invalid;
- unknown extra fields, in the envelope and in ``data``, are kept, not rejected;
- models are frozen: an event is an immutable fact;
- valid ranges (docs/validation.md): instants from ``EARLIEST`` (1970-01-01Z)
  to before ``END_OF_RANGE`` (2200-01-01Z); counts are JSON integers from 0 to
  below 2^53 (what every JSON reader and both stores hold exactly); numbers are
  finite; integer, number and boolean fields take no strings and no other type
  (no ``"5"``, ``true`` or ``5.0`` for a count; no ``1`` for a boolean).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    Strict,
    TypeAdapter,
    model_validator,
)
from pydantic_core import core_schema

CURRENT_SCHEMA_VERSION = 1
"""The envelope version this engine validates; older versions are upcast first."""

RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The first valid instant (inclusive)."""
END_OF_RANGE = datetime(2200, 1, 1, tzinfo=UTC)
"""The first instant past the valid range (exclusive)."""
MAX_COUNT = 2**53 - 1
"""The largest valid count: integers up to it are exact in every JSON reader."""
_RFC3339_IN_RANGE = RFC3339.replace("^\\d{4}", "^(19[6-9]\\d|2[01]\\d\\d|2200)")
"""For the JSON Schema files: the same shape, years near the valid range only."""


class _Rfc3339:
    """Core schema: a string matching RFC 3339 (seconds and offset required), then
    parsed as an aware datetime. Both steps run inside pydantic-core (no Python
    call per event); pydantic alone would also take "1782865800" as Unix time."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.chain_schema([
            core_schema.str_schema(pattern=RFC3339),
            core_schema.datetime_schema(tz_constraint="aware", ge=EARLIEST, lt=END_OF_RANGE),
        ], metadata={"pydantic_js_functions": [_json_schema]})


def _json_schema(schema: Any, handler: Any) -> dict[str, Any]:
    return {"type": "string", "format": "date-time", "pattern": _RFC3339_IN_RANGE,
            "formatMinimum": "1970-01-01T00:00:00Z",
            "formatExclusiveMaximum": "2200-01-01T00:00:00Z",
            "description": "RFC 3339 with seconds and offset; from 1970-01-01T00:00:00Z "
                           "to before 2200-01-01T00:00:00Z"}


Timestamp = Annotated[datetime, _Rfc3339]
"""An instant written as an RFC 3339 string with seconds and a UTC offset."""

NonEmpty = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
"""A JSON integer from 0 to 2^53 - 1 (no strings, booleans or fractions)."""
Minutes = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
"""A finite, non-negative JSON number (no strings or booleans)."""
Flag = Annotated[bool, Strict()]
"""``true`` or ``false`` only."""
Area = Literal["urban", "rural", "remote"]
Priority = Literal["normal", "vulnerable", "important"]


class EventData(BaseModel):
    """Type-specific payload; extra fields are preserved."""

    model_config = ConfigDict(extra="allow", frozen=True)


class CallReceivedData(EventData):
    grid: NonEmpty
    area: Area
    priority: Priority = "normal"
    customers_affected: Count | None = None
    agent: str | None = None
    description: str | None = None


class CallVerifiedData(EventData):
    verified_by: str | None = None


class CallRejectedData(EventData):
    reason: NonEmpty


class CallMergedData(EventData):
    into_incident_id: NonEmpty


class CrewDispatchedData(EventData):
    crew: NonEmpty
    dispatcher: str | None = None
    eta_minutes: Minutes | None = None


class CrewData(EventData):
    crew: NonEmpty


class FaultDiagnosedData(EventData):
    cause: str | None = None
    equipment: str | None = None


class PowerRestoredData(EventData):
    customers_restored: Count | None = None


class IncidentClosedData(EventData):
    satisfied: Flag | None = None


class CustomerCallbackData(EventData):
    """A call back to the customer after restoration (回访). ``satisfied`` is only
    known when the customer was reached."""

    reached: Flag
    satisfied: Flag | None = None
    agent: str | None = None

    @model_validator(mode="after")
    def _satisfied_needs_reached(self) -> CustomerCallbackData:
        if self.satisfied is not None and not self.reached:
            raise ValueError("satisfied is given but reached is not true: only a customer "
                             "who was reached can be satisfied or not")
        return self


class ShiftStartedData(EventData):
    """A repair team takes over the 24-hour duty (or part of it)."""

    team: NonEmpty
    leader: NonEmpty
    members: list[NonEmpty] | None = None


class CrewRosteredData(EventData):
    crew: NonEmpty
    grid: NonEmpty
    skills: list[NonEmpty] = Field(default_factory=list)


class Envelope(BaseModel):
    """Fields common to every event type."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: NonEmpty
    incident_id: NonEmpty
    occurred_at: Timestamp
    recorded_at: Timestamp | None = None
    schema_version: Annotated[int, Strict(), Field(ge=1, le=1)] = 1
    """Only 1 after upcasting; an integer (``true`` and ``1.0`` are not versions)."""
    source: str | None = None
    actor: str | None = None


class CallReceived(Envelope):
    type: Literal["call.received"]
    data: CallReceivedData


class CallVerified(Envelope):
    type: Literal["call.verified"]
    data: CallVerifiedData


class CallRejected(Envelope):
    type: Literal["call.rejected"]
    data: CallRejectedData


class CallMerged(Envelope):
    type: Literal["call.merged"]
    data: CallMergedData


class CrewDispatched(Envelope):
    type: Literal["crew.dispatched"]
    data: CrewDispatchedData


class CrewDeparted(Envelope):
    type: Literal["crew.departed"]
    data: CrewData


class CrewArrived(Envelope):
    type: Literal["crew.arrived"]
    data: CrewData


class FaultDiagnosed(Envelope):
    type: Literal["fault.diagnosed"]
    data: FaultDiagnosedData


class RepairCompleted(Envelope):
    type: Literal["repair.completed"]
    data: EventData


class PowerRestored(Envelope):
    type: Literal["power.restored"]
    data: PowerRestoredData


class IncidentClosed(Envelope):
    type: Literal["incident.closed"]
    data: IncidentClosedData


class CustomerCallback(Envelope):
    type: Literal["customer.callback"]
    data: CustomerCallbackData


class DutyShiftStarted(Envelope):
    """A duty event: it concerns the service, not an incident, so ``incident_id`` may be
    absent or null (its Kafka key is ``duty``)."""

    incident_id: NonEmpty | None = None  # type: ignore[assignment]
    type: Literal["duty.shift_started"]
    data: ShiftStartedData


class CrewRostered(Envelope):
    """A crew's roster entry; it belongs to no incident (Kafka key ``crew:<id>``)."""

    type: Literal["crew.rostered"]
    incident_id: NonEmpty | None = None  # type: ignore[assignment]
    data: CrewRosteredData


Event = Annotated[
    CallReceived
    | CallVerified
    | CallRejected
    | CallMerged
    | CrewDispatched
    | CrewDeparted
    | CrewArrived
    | FaultDiagnosed
    | RepairCompleted
    | PowerRestored
    | IncidentClosed
    | CustomerCallback
    | DutyShiftStarted
    | CrewRostered,
    Field(discriminator="type"),
]

EVENT_MODELS: tuple[type[Envelope], ...] = (
    CallReceived,
    CallVerified,
    CallRejected,
    CallMerged,
    CrewDispatched,
    CrewDeparted,
    CrewArrived,
    FaultDiagnosed,
    RepairCompleted,
    PowerRestored,
    IncidentClosed,
    CustomerCallback,
    DutyShiftStarted,
    CrewRostered,
)
NO_INCIDENT_TYPES: frozenset[str] = frozenset({"crew.rostered"})
"""Types that belong to no incident: the incident fold skips them."""
EVENT_TYPES: frozenset[str] = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in EVENT_MODELS
)
DUTY_KEY = "duty"
"""The Kafka key (and partition rule) of ``duty.*`` events, which have no incident."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def kafka_key(event: Envelope) -> str:
    """The Kafka message key: the incident id, ``duty`` for ``duty.*`` events, or
    ``crew:<id>`` for a roster entry."""
    if isinstance(event, CrewRostered):
        return f"crew:{event.data.crew}"
    if isinstance(event, DutyShiftStarted):
        return DUTY_KEY
    return event.incident_id or ""
