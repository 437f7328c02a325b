"""The event contract (docs/events.md) as ``schemas.parse_event`` enforces it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import EVENT_TYPES, InvalidEvent, parse_event
from schemas.events import NO_INCIDENT_TYPES, kafka_key

WHEN = "2026-07-01T08:30:00+08:00"

# docs/events.md: every type, and the data fields it cannot do without.
REQUIRED_DATA: dict[str, dict[str, Any]] = {
    "call.received": {"grid": "URB-1", "area": "urban"},
    "call.verified": {},
    "call.rejected": {"reason": "customer-side fault"},
    "call.merged": {"into_incident_id": "INC-1"},
    "crew.dispatched": {"crew": "C1"},
    "crew.departed": {"crew": "C1"},
    "crew.arrived": {"crew": "C1"},
    "fault.diagnosed": {},
    "repair.completed": {},
    "power.restored": {},
    "incident.closed": {},
    "customer.callback": {"reached": True},
    "duty.shift_started": {"team": "Team A", "leader": "L-1"},
    "crew.rostered": {"crew": "C1", "grid": "URB-1"},
}
OPTIONAL_DATA: dict[str, dict[str, Any]] = {
    "call.received": {"priority": "vulnerable", "customers_affected": 40, "agent": "AG-9",
                      "description": "sparks at the pole"},
    "call.verified": {"verified_by": "AG-2"},
    "call.rejected": {},
    "call.merged": {},
    "crew.dispatched": {"dispatcher": "D-1", "eta_minutes": 25},
    "crew.departed": {},
    "crew.arrived": {},
    "fault.diagnosed": {"cause": "tree on line", "equipment": "10kV feeder"},
    "repair.completed": {},
    "power.restored": {"customers_restored": 40},
    "incident.closed": {"satisfied": True},
    "customer.callback": {"satisfied": False, "agent": "AG-3"},
    "duty.shift_started": {"members": ["M-1", "M-2"]},
    "crew.rostered": {"skills": ["overhead", "cable"]},
}
REQUIRED_PAIRS = [(kind, name) for kind, data in REQUIRED_DATA.items() for name in data]


def event(kind: str = "call.received", **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"event_id": "ev-1", "type": kind, "incident_id": "INC-1",
                           "occurred_at": WHEN, "data": dict(REQUIRED_DATA[kind])}
    obj.update(changes)
    return obj


def reason_of(obj: Any) -> str:
    raw = obj if isinstance(obj, str | bytes) else json.dumps(obj)
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    reason = caught.value.reason
    assert reason, "a rejection must say why"
    assert "\n" not in reason, f"reason must be one line: {reason!r}"
    assert str(caught.value) == reason
    return reason


def test_the_contract_types_are_exactly_those_of_design_section_3() -> None:
    assert set(EVENT_TYPES) == set(REQUIRED_DATA)


@pytest.mark.parametrize("kind", sorted(REQUIRED_DATA))
def test_each_type_validates_with_its_required_data(kind: str) -> None:
    parsed = parse_event(json.dumps(event(kind)))
    assert parsed.type == kind
    assert parsed.event_id == "ev-1"
    assert parsed.incident_id == "INC-1"
    assert parsed.occurred_at == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    assert parsed.schema_version == 1
    for name, value in REQUIRED_DATA[kind].items():
        assert getattr(parsed.data, name) == value


@pytest.mark.parametrize("kind", sorted(REQUIRED_DATA))
def test_each_type_validates_with_all_optional_fields(kind: str) -> None:
    data = {**REQUIRED_DATA[kind], **OPTIONAL_DATA[kind]}
    parsed = parse_event(json.dumps(event(
        kind, data=data, recorded_at="2026-07-01T00:31:00Z", schema_version=1,
        source="crew-app", actor="C1")).encode())
    assert parsed.source == "crew-app"
    assert parsed.actor == "C1"
    assert parsed.recorded_at == datetime(2026, 7, 1, 0, 31, tzinfo=UTC)
    for name, value in data.items():
        assert getattr(parsed.data, name) == value


@pytest.mark.parametrize(("kind", "field"), REQUIRED_PAIRS)
def test_missing_required_data_field_is_rejected_naming_it(kind: str, field: str) -> None:
    obj = event(kind)
    del obj["data"][field]
    reason = reason_of(obj)
    assert reason.startswith(f"data.{field}:"), reason
    assert "required" in reason.lower()


@pytest.mark.parametrize("kind", sorted(k for k, d in REQUIRED_DATA.items() if d))
def test_missing_data_object_is_rejected_when_the_type_needs_fields(kind: str) -> None:
    obj = event(kind)
    del obj["data"]
    assert reason_of(obj).startswith("data")


@pytest.mark.parametrize("field", ["event_id", "incident_id", "occurred_at"])
@pytest.mark.parametrize("kind", sorted(REQUIRED_DATA))
def test_missing_envelope_field_is_rejected_naming_it(kind: str, field: str) -> None:
    if field == "incident_id" and kind.startswith("duty."):
        pytest.skip("duty events have no incident")
    obj = event(kind)
    del obj[field]
    if kind in NO_INCIDENT_TYPES and field == "incident_id":
        assert parse_event(json.dumps(obj)).incident_id is None  # a roster entry has none
        return
    reason = reason_of(obj)
    assert reason.startswith(f"{field}:"), reason
    assert "required" in reason.lower()


@pytest.mark.parametrize("absent", ["missing", "null"])
def test_duty_events_need_no_incident_id(absent: str) -> None:
    obj = event("duty.shift_started")
    if absent == "missing":
        del obj["incident_id"]
    else:
        obj["incident_id"] = None
    parsed = parse_event(json.dumps(obj))
    assert parsed.incident_id is None
    assert (parsed.data.team, parsed.data.leader) == ("Team A", "L-1")


@pytest.mark.parametrize("kind", sorted(k for k in REQUIRED_DATA
                                         if not k.startswith("duty.") and k != "crew.rostered"))
def test_incident_events_with_a_null_incident_id_are_rejected(kind: str) -> None:
    assert reason_of(event(kind, incident_id=None)).startswith("incident_id:")


@pytest.mark.parametrize("reached", [False, None])
@pytest.mark.parametrize("satisfied", [True, False])
def test_callback_satisfied_without_reached_is_rejected(reached: bool | None,
                                                        satisfied: bool) -> None:
    data: dict[str, Any] = {"satisfied": satisfied}
    if reached is not None:
        data["reached"] = reached
    reason = reason_of(event("customer.callback", data=data))
    assert reason.startswith("data"), reason
    if reached is False:
        assert "satisfied" in reason and "reached" in reason, reason


def test_callback_unreached_without_satisfied_is_kept() -> None:
    parsed = parse_event(json.dumps(event("customer.callback",
                                          data={"reached": False, "satisfied": None})))
    assert (parsed.data.reached, parsed.data.satisfied) == (False, None)


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_callback_flags_must_be_json_booleans(value: Any) -> None:
    assert reason_of(event("customer.callback", data={"reached": value})) \
        .startswith("data.reached:")


@pytest.mark.parametrize("field", ["team", "leader"])
@pytest.mark.parametrize("value", ["", None])
def test_shift_start_needs_a_team_and_a_leader(field: str, value: Any) -> None:
    obj = event("duty.shift_started")
    obj["data"][field] = value
    assert reason_of(obj).startswith(f"data.{field}:")


def test_missing_type_is_rejected() -> None:
    obj = event()
    del obj["type"]
    assert reason_of(obj).startswith("type:")


def test_call_received_priority_defaults_to_normal() -> None:
    assert parse_event(json.dumps(event())).data.priority == "normal"


@pytest.mark.parametrize("value", ["x", "call.recieved", "Call.Received", ""])
def test_unknown_type_is_rejected(value: str) -> None:
    assert reason_of(event(type=value)) == f"type: unknown event type {value!r}"


@pytest.mark.parametrize("area", ["city", "", "URBAN"])
def test_area_outside_the_contract_values_is_rejected(area: str) -> None:
    assert reason_of(event(data={"grid": "G", "area": area})).startswith("data.area:")


def test_priority_outside_the_contract_values_is_rejected() -> None:
    obj = event(data={"grid": "G", "area": "rural", "priority": "urgent"})
    assert reason_of(obj).startswith("data.priority:")


@pytest.mark.parametrize("text", [
    "2026-07-01T08:30:00",
    "2026-07-01T08:30:00.123456",
])
@pytest.mark.parametrize("field", ["occurred_at", "recorded_at"])
def test_timestamp_without_offset_is_rejected(field: str, text: str) -> None:
    assert reason_of(event(**{field: text})) == f"{field}: timestamp has no UTC offset"


@pytest.mark.parametrize("value", [1782865800, 1782865800.5, 0, None, True,
                                   ["2026-07-01T08:30:00Z"], {"at": WHEN}])
def test_occurred_at_that_is_not_a_string_is_rejected(value: Any) -> None:
    assert reason_of(event(occurred_at=value)).startswith("occurred_at:")


@pytest.mark.parametrize("value", ["yesterday", "2026-07-01", "08:30:00+08:00", ""])
def test_occurred_at_that_is_not_a_timestamp_is_rejected(value: str) -> None:
    assert reason_of(event(occurred_at=value)).startswith("occurred_at:")


@pytest.mark.parametrize("value", ["1782865800", "1782865800.5"])
@pytest.mark.parametrize("field", ["occurred_at", "recorded_at"])
def test_unix_time_written_as_a_string_is_rejected(field: str, value: str) -> None:
    """docs/events.md: a timestamp must be RFC 3339 *with offset*. "1782865800" is
    neither; it must not be silently read as Unix seconds in UTC."""
    assert reason_of(event(**{field: value})).startswith(f"{field}:")


@pytest.mark.parametrize(("text", "utc"), [
    ("2026-07-01T08:30:00+08:00", datetime(2026, 7, 1, 0, 30, tzinfo=UTC)),
    ("2026-07-01T00:30:00Z", datetime(2026, 7, 1, 0, 30, tzinfo=UTC)),
    ("2026-06-30T19:30:00-05:00", datetime(2026, 7, 1, 0, 30, tzinfo=UTC)),
    ("2026-07-01T06:15:00.250+05:45", datetime(2026, 7, 1, 0, 30, 0, 250_000, tzinfo=UTC)),
    ("2026-07-01T00:30:00.000001+00:00", datetime(2026, 7, 1, 0, 30, 0, 1, tzinfo=UTC)),
])
def test_timestamps_with_any_offset_are_the_same_instant(text: str, utc: datetime) -> None:
    assert parse_event(json.dumps(event(occurred_at=text))).occurred_at == utc


@pytest.mark.parametrize("raw", ['{"event_id": "ev-1",', "not json", "", "{}}", b"\xff\xfe"])
def test_invalid_json_is_rejected(raw: str | bytes) -> None:
    reason_of(raw)


@pytest.mark.parametrize("raw", ["[]", "42", '"event"', "null"])
def test_json_that_is_not_an_object_is_rejected(raw: str) -> None:
    reason_of(raw)


def test_unknown_extra_fields_are_kept_in_envelope_and_data() -> None:
    obj = event("crew.arrived", x_gps={"lat": 31.2, "lon": 121.5}, trace_id="t-9")
    obj["data"]["vehicle"] = "V-12"
    parsed = parse_event(json.dumps(obj))
    assert parsed.model_extra == {"x_gps": {"lat": 31.2, "lon": 121.5}, "trace_id": "t-9"}
    assert parsed.data.model_extra == {"vehicle": "V-12"}
    dumped = parsed.model_dump(mode="json")
    assert dumped["x_gps"] == {"lat": 31.2, "lon": 121.5}
    assert dumped["data"]["vehicle"] == "V-12"


def test_events_are_immutable() -> None:
    parsed = parse_event(json.dumps(event()))
    with pytest.raises(ValueError, match="frozen"):
        parsed.incident_id = "other"  # type: ignore[misc]


# -- schema versions -----------------------------------------------------------------

def legacy(kind: str, **changes: Any) -> dict[str, Any]:
    obj = event(kind, schema_version=0)
    obj["time"] = obj.pop("occurred_at")
    if "crew" in obj["data"]:
        obj["data"]["crew_id"] = obj["data"].pop("crew")
    obj.update(changes)
    return obj


@pytest.mark.parametrize("kind", sorted(REQUIRED_DATA))
def test_schema_version_0_is_upcast(kind: str) -> None:
    parsed = parse_event(json.dumps(legacy(kind)))
    assert parsed.type == kind
    assert parsed.schema_version == 1
    assert parsed.occurred_at == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    for name, value in REQUIRED_DATA[kind].items():
        assert getattr(parsed.data, name) == value


def test_upcasting_keeps_unknown_fields() -> None:
    obj = legacy("crew.departed", bridge="legacy-hotline")
    obj["data"]["truck"] = "T-4"
    parsed = parse_event(json.dumps(obj))
    assert parsed.data.crew == "C1"
    assert parsed.model_extra is not None and parsed.model_extra["bridge"] == "legacy-hotline"
    assert parsed.data.model_extra == {"truck": "T-4"}


def test_schema_version_0_still_needs_an_offset() -> None:
    assert reason_of(legacy("call.verified", time="2026-07-01T08:30:00")) \
        == "occurred_at: timestamp has no UTC offset"


def test_schema_version_0_without_time_is_rejected() -> None:
    obj = legacy("call.verified")
    del obj["time"]
    assert reason_of(obj).startswith("occurred_at:")


def test_schema_version_0_crew_event_without_crew_is_rejected() -> None:
    obj = legacy("crew.arrived")
    del obj["data"]["crew_id"]
    assert reason_of(obj).startswith("data.crew:")


@pytest.mark.parametrize("version", [2, 99])
def test_newer_schema_version_is_rejected_with_a_reason(version: int) -> None:
    reason = reason_of(event(schema_version=version))
    assert reason.startswith("schema_version:"), reason
    assert str(version) in reason


@pytest.mark.parametrize("version", [-1, "1", 1.5, None])
def test_nonsense_schema_version_is_rejected(version: Any) -> None:
    assert reason_of(event(schema_version=version)).startswith("schema_version")


# -- robustness ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from([WHEN, "2026-07-01T08:30:00", *EVENT_TYPES]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["grid", "area", "crew", "crew_id", "reason", "x"]),
                      inner, max_size=3),
    max_leaves=10,
)
envelopes = st.fixed_dictionaries({}, optional={
    "event_id": json_values, "type": st.sampled_from(sorted(EVENT_TYPES)) | json_values,
    "incident_id": json_values, "occurred_at": json_values, "time": json_values,
    "recorded_at": json_values, "schema_version": st.sampled_from([0, 1, 2]) | json_values,
    "data": json_values,
})


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.text(max_size=40),
                 envelopes.map(json.dumps), json_values.map(json.dumps)))
def test_parse_event_raises_only_invalid_event(raw: bytes | str) -> None:
    try:
        parsed = parse_event(raw)
    except InvalidEvent as exc:
        assert exc.reason and "\n" not in exc.reason
    else:
        assert parsed.occurred_at.tzinfo is not None
        assert parsed.type in EVENT_TYPES


def test_a_roster_entry_is_keyed_by_its_crew_and_other_events_by_incident() -> None:
    assert kafka_key(parse_event(json.dumps(event("crew.rostered")))) == "crew:C1"
    assert kafka_key(parse_event(json.dumps(event("crew.arrived")))) == "INC-1"
    with_skills = event("crew.rostered")
    with_skills["data"]["skills"] = ["overhead", ""]
    assert reason_of(with_skills).startswith("data.skills.1")
