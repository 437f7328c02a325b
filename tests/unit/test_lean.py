"""The fast checks in front of pydantic decide exactly as pydantic.

For every input: the typed decode (``schemas.plain.parse_plain``) and the lean check
(``schemas.lean.parse_event_lean``) each either decline (None) or accept an event that
``parse_event`` accepts too, with the same fact for the fold (and, for the lean
check, the same Kafka key); ``facts_of``, which chains them before pydantic, gives
pydantic's fact or pydantic's reason. What is accepted and what is rejected (with
which reason) is then exactly what pydantic alone decides.
"""

from __future__ import annotations

import io
import json
import random
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from projections.incident import fact_of, fact_of_lean, fact_of_plain
from projections.projector import facts_of
from schemas.events import EVENT_MODELS, EVENT_TYPES, MAX_COUNT, kafka_key
from schemas.lean import instant, lean_key, parse_event_lean
from schemas.parsing import InvalidEvent, parse_event
from schemas.plain import PLAIN_TYPES, parse_plain
from tests.reliability.hostile import mutate, recipes
from tests.unit.test_schemas import OPTIONAL_DATA, REQUIRED_DATA, envelopes, json_values


def pydantic_decision(raw: bytes | str) -> tuple[str, str, str]:
    """("ok", repr(fact), key) or ("bad", reason, "") by the contract alone."""
    try:
        event = parse_event(raw)
    except InvalidEvent as exc:
        return ("bad", exc.reason, "")
    return ("ok", repr(fact_of(event)), kafka_key(event))


def lean_decision(raw: bytes | str) -> tuple[str, str, str]:
    """The same, lean check first (what ingest, produce and the worker run)."""
    event = parse_event_lean(raw)
    if event is None:
        return pydantic_decision(raw)
    # repr: True and 1 are equal in Python but not the same fact.
    return ("ok", repr(fact_of_lean(event)), lean_key(event))


def typed_decision(raw: bytes | str) -> tuple[str, str]:
    """("ok", repr(fact)) or ("bad", reason): the typed decode first."""
    found = parse_plain(raw)
    if found is None:
        return pydantic_decision(raw)[:2]
    return ("ok", repr(fact_of_plain(*found)))


def chain_decision(raw: bytes | str) -> tuple[str, str]:
    """What ``facts_of`` (worker, ingest, replay) decides."""
    [fact] = facts_of([raw])  # type: ignore[list-item]
    return ("bad", fact) if isinstance(fact, str) else ("ok", repr(fact))


def assert_same(raw: bytes | str) -> None:
    expected = pydantic_decision(raw)
    assert lean_decision(raw) == expected, raw
    assert typed_decision(raw) == expected[:2], raw
    assert chain_decision(raw) == expected[:2], raw
    if parse_event_lean(raw) is not None or parse_plain(raw) is not None:
        assert expected[0] == "ok"


# -- drawn events -----------------------------------------------------------------------

PLAIN_OFFSETS = ["Z", "+00:00", "+08:00", "-05:30", "+05:45", "+14:00", "-12:00", "-00:00"]
ODD_OFFSETS = ["z", "+13:45", "+14:15", "+23:59", "+24:00", "-03:61", "+0800", "+8:00", ""]
PLAIN_FRACTIONS = ["", ".1", ".12", ".123", ".123456"]
ODD_FRACTIONS = [".1234567", ".123456789", ".", ".1234567890"]


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """RFC 3339 texts, mostly in the plain shape, around and beyond the valid range;
    now and then in odd shapes, with impossible fields, or not strings at all."""
    # Hypothesis favours the ends of a range: the odd cases sit in its middle.
    odd = draw(st.integers(0, 30)) - 10
    if odd == 0:
        return draw(st.sampled_from([None, 0, 1782865800, 1.5, True, [], "", "2026-07-01",
                                     "2026-07-01T08:30:00", "1782865800"]))
    when = draw(st.datetimes(min_value=datetime(1965, 1, 1), max_value=datetime(2205, 1, 1)))
    edge = draw(st.sampled_from([None] * 20 + ["1970-01-01T00:00:00", "1969-12-31T23:59:59",
                                              "2199-12-31T23:59:59", "2200-01-01T00:00:00"]))
    text = when.strftime("%Y-%m-%dT%H:%M:%S") if edge is None else edge
    fraction = draw(st.sampled_from(PLAIN_FRACTIONS))
    offset = draw(st.sampled_from(PLAIN_OFFSETS))
    if odd == 1:
        text = text.replace("T", draw(st.sampled_from(["t", " "])))
    elif odd == 2:
        text = text[:8] + "30" + text[10:] if text[5:7] == "02" else text[:17] + "60"
    elif odd == 3:
        text = text[:11] + draw(st.sampled_from(["24", "99", "2a"])) + text[13:]
    elif odd == 4:
        text = text[:5] + draw(st.sampled_from(["13", "00"])) + text[7:]
    elif odd == 5:
        text = "0" + text[1:]  # year 0xxx
    elif odd == 6:
        fraction = draw(st.sampled_from(ODD_FRACTIONS))
    elif odd == 7:
        offset = draw(st.sampled_from(ODD_OFFSETS))
    return text + fraction + offset


COUNTS = [0, 1, 40, MAX_COUNT, MAX_COUNT + 1, 2**63, -1, "5", True, False, 5.0, 5.5, None,
          [], {}]
odd_values = st.one_of(json_values, st.sampled_from(COUNTS), st.sampled_from(
    ["", "urban", "rural", "remote", "urgent", "normal", "vulnerable", "important",
     ["M-1"], ["M-1", ""], [], [1], "true", 1, 0]))
FIELD_VALUES: dict[str, list[Any]] = {
    "customers_affected": COUNTS, "customers_restored": COUNTS,
    "eta_minutes": [0, 0.0, 25, 2.5, -1, -0.5, MAX_COUNT, MAX_COUNT + 1, 1e300, "5", True, None],
    "satisfied": [True, False, None, 1, 0, "true"],
    "reached": [True, False, None, 1, "yes"],
    "priority": ["normal", "vulnerable", "important", "urgent", "", None, 1, ["normal"]],
    "area": ["urban", "rural", "remote", "city", "", None, ["urban"], {"a": 1}],
    "members": [["M-1"], [], ["M-1", ""], [1], "M-1", None, [None]],
    "skills": [["cable"], [], [""], "cable", None, [3]],
    "agent": ["AG-1", "", None, 5, ["AG"]],
    **{name: ["X-1", "", None, 5, ["X"]] for name in (
        "grid", "crew", "team", "leader", "reason", "into_incident_id", "verified_by",
        "dispatcher", "cause", "equipment", "description")},
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """Events of every type, mostly valid, with fields now and then spoiled or
    coerced, extra fields, missing or null incident ids, legacy versions."""
    kind = draw(st.sampled_from(sorted(REQUIRED_DATA)))
    data = dict(REQUIRED_DATA[kind])
    for name, value in OPTIONAL_DATA[kind].items():
        if draw(st.booleans()):
            data[name] = value
    for name, values in FIELD_VALUES.items():
        if (name in data or name in OPTIONAL_DATA[kind]) and draw(st.integers(0, 4)) == 2:
            data[name] = draw(st.sampled_from(values))
    if draw(st.integers(0, 12)) == 6:
        data[draw(st.sampled_from(sorted(data) or ["x"]))] = draw(odd_values)
    if draw(st.integers(0, 4)) == 2:
        data[draw(st.sampled_from(["x", "note", "crew_id", "nested"]))] = draw(json_values)
    obj: dict[str, Any] = {"event_id": draw(st.sampled_from(["ev-1", "e", "事件-7"])),
                           "type": kind, "incident_id": "INC-1",
                           "occurred_at": draw(timestamps()), "data": data}
    if draw(st.booleans()):
        obj["recorded_at"] = draw(timestamps())
    if draw(st.booleans()):
        obj["schema_version"] = draw(st.sampled_from(
            [1] * 3 + [0, 2, True, 1.0, "1", None] + [1] * 3))
    if obj.get("schema_version") == 0 and draw(st.booleans()):
        obj["time"] = obj.pop("occurred_at")  # legacy v0
        if "crew" in data:
            data["crew_id"] = data.pop("crew")
    for name in ("source", "actor"):
        if draw(st.integers(0, 6)) == 3:
            obj[name] = draw(st.sampled_from(["hotline", None, 5, "", ["x"]]))
    choice = draw(st.integers(0, 20)) - 10
    if choice == 0:
        del obj["incident_id"]
    elif choice == 1:
        obj["incident_id"] = draw(st.sampled_from([None, "", 7, "INC-2"]))
    elif choice == 2:
        obj[draw(st.sampled_from(["extra", "x_hostile", "meta"]))] = draw(json_values)
    elif choice == 3:
        obj[draw(st.sampled_from(["event_id", "type", "data"]))] = draw(odd_values)
    return obj


def encode(obj: Any, literal: str | None = None) -> bytes:
    text = json.dumps(obj, ensure_ascii=False)
    if literal is not None:
        text = text.replace('"@@LITERAL@@"', literal)
    return text.encode("utf-8")


SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(events())
def test_drawn_events_are_decided_as_pydantic_decides(obj: dict[str, Any]) -> None:
    assert_same(encode(obj))


@SETTINGS
@given(events(), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999",
                                  "1e308", "-0.0", "123456789012345678901234567890", "1E2"]),
       st.sampled_from(["envelope", "data", "customers_affected", "eta_minutes",
                        "occurred_at", "satisfied"]))
def test_non_finite_and_huge_literals_are_decided_as_pydantic_decides(
        obj: dict[str, Any], literal: str, where: str) -> None:
    if where == "envelope":
        obj["x_number"] = "@@LITERAL@@"
    elif where == "occurred_at":
        obj["occurred_at"] = "@@LITERAL@@"
    else:
        if not isinstance(obj.get("data"), dict):
            obj["data"] = {}
        obj["data"]["x" if where == "data" else where] = "@@LITERAL@@"
    assert_same(encode(obj, literal))


@SETTINGS
@given(events(), recipes, st.integers(0, 2**32))
def test_hostile_mutations_are_decided_as_pydantic_decides(obj: dict[str, Any], recipe: Any,
                                                          seed: int) -> None:
    line = encode(obj)
    try:
        json.loads(line)
        bad = mutate(recipe, line, random.Random(seed))
    except (KeyError, TypeError, AttributeError, ValueError):
        assume(False)  # a recipe that needs a field this drawn event does not have
        return
    assert_same(bad)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode),
                 envelopes.map(json.dumps).map(str.encode),
                 json_values.map(json.dumps).map(str.encode)))
def test_any_bytes_are_decided_as_pydantic_decides(raw: bytes) -> None:
    assert_same(raw)


@settings(max_examples=400, deadline=None)
@given(st.integers(-3 * 10**15, 8 * 10**15), st.sampled_from([0, 1, 3, 6]),
       st.sampled_from([0, 60, -60, 330, 480, -720, 840, 345]))
def test_plain_timestamps_give_the_instant_pydantic_gives(micros: int, digits: int,
                                                         offset_minutes: int) -> None:
    zone = timedelta(minutes=offset_minutes)
    when = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)).astimezone(
        __import__("datetime").timezone(zone))
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{when.microsecond:06d}"[:digits]
    sign = "-" if offset_minutes < 0 else "+"
    text += "Z" if not offset_minutes and micros % 2 else \
        f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    obj = {"event_id": "e", "type": "call.verified", "incident_id": "I", "occurred_at": text,
           "data": {}}
    assert_same(encode(obj))
    lean = instant(text)
    if lean is not None:
        assert lean == fact_of(parse_event(encode(obj))).at


def test_the_simulator_output_takes_the_lean_path_and_the_same_facts() -> None:
    """The fast path is really taken on ordinary input (every type the simulator
    writes), and gives the facts pydantic gives."""
    plan = SimulationPlan(seed=3, target_events=3_000, storm_days=(1,), duplicate_rate=0.01,
                          shuffle=True, late_rate=0.01)
    stream = io.BytesIO()
    write_jsonl(simulate_lines(plan), stream)
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert {json.loads(line)["type"] for line in lines} >= EVENT_TYPES - {"crew.rostered"}
    declined = [line for line in lines if parse_event_lean(line) is None]
    assert declined == []
    assert [line for line in lines if parse_plain(line) is None] == []
    assert facts_of(lines) == [fact_of(parse_event(line)) for line in lines]
    for line in lines:
        assert_same(line)


def test_the_lean_check_declines_what_only_pydantic_can_word() -> None:
    """A few hand-picked inputs: each is declined (pydantic then gives the reason)."""
    base = {"event_id": "e", "type": "call.received", "incident_id": "I",
            "occurred_at": "2026-07-01T08:30:00+08:00", "data": {"grid": "G", "area": "urban"}}
    assert parse_event_lean(encode(base)) is not None
    for change in ({"schema_version": True}, {"schema_version": 0}, {"incident_id": None},
                   {"occurred_at": "2026-07-01T08:30:00"}, {"occurred_at": "2200-01-01T00:00:00Z"},
                   {"data": {"grid": "G", "area": "urban", "customers_affected": "5"}},
                   {"data": {"grid": "G", "area": "urban", "customers_affected": 2**53}},
                   {"data": {"grid": "G", "area": ["urban"]}}):
        assert parse_event_lean(encode({**base, **change})) is None, change
    assert parse_event_lean(encode(base).replace(b"}}", b', "x": NaN}}')) is None


ENVELOPE_VALUES: dict[str, list[Any]] = {
    "event_id": ["ev-1", "", None, 5, ["e"]],
    "incident_id": ["INC-1", "", None, 7, ["I"]],
    "type": ["call.recieved", "", None, 3],
    "schema_version": [1, 0, 2, -1, True, 1.0, "1", None],
    "occurred_at": ["2026-07-01T08:30:00.5+08:00", "2026-07-01T08:30:00", None, "",
                    "2026-07-01t08:30:00Z", "2026-07-01 08:30:00Z", "2026-02-30T08:30:00Z",
                    "2026-07-01T08:30:60Z", "2026-07-01T08:30:00.1234567Z",
                    "2026-07-01T08:30:00+24:00", "9999-12-31T23:59:59Z"],
    "recorded_at": ["2026-07-01T08:30:00Z", None, 0, "2026-07-01T08:30"],
    "source": ["hotline", None, 5, ""],
    "actor": ["AG-1", None, False],
    "data": [{}, None, [], "data"],
    "x_extra": [1.5, None, {"a": [1, 2.5]}, "text"],
}


def test_every_field_value_alone_is_decided_as_pydantic_decides() -> None:
    """Each listed value in each field of each type, on an otherwise valid event
    (all optional fields given), and each field left out; and every pair of
    callback flags."""
    checked = 0
    for kind in sorted(REQUIRED_DATA):
        base: dict[str, Any] = {"event_id": "ev-1", "type": kind, "incident_id": "INC-1",
                                "occurred_at": "2026-07-01T08:30:00+08:00",
                                "data": {**REQUIRED_DATA[kind], **OPTIONAL_DATA[kind]}}
        assert parse_event_lean(encode(base)) is not None, kind
        for name, values in ENVELOPE_VALUES.items():
            for value in values:
                assert_same(encode({**base, name: value}))
                checked += 1
            assert_same(encode({k: v for k, v in base.items() if k != name}))
        for name, values in FIELD_VALUES.items():
            for value in [*values, "@@absent@@"]:
                data = {**base["data"], name: value}
                if value == "@@absent@@":
                    del data[name]
                assert_same(encode({**base, "data": data}))
                checked += 1
    for reached in FIELD_VALUES["reached"]:
        for satisfied in [*FIELD_VALUES["satisfied"], "@@absent@@"]:
            data = {"reached": reached, "satisfied": satisfied}
            if satisfied == "@@absent@@":
                del data["satisfied"]
            assert_same(encode({"event_id": "e", "type": "customer.callback",
                                "incident_id": "I", "occurred_at": "2026-07-01T08:30:00Z",
                                "data": data}))
    assert checked > 1000


# -- the typed decode's own ways to be wrong ---------------------------------------------
# msgspec reads the bytes itself: repeated keys, escapes, surrogates, number spellings,
# huge integers, whitespace and byte order marks could each be read otherwise than by
# orjson and pydantic.


def test_the_typed_decode_declares_exactly_the_contract_fields() -> None:
    """Each type's struct has the model's fields, required where the model requires
    them (envelope and ``data``): a field the contract gains or makes required cannot
    be let through unchecked."""
    assert set(PLAIN_TYPES) == EVENT_TYPES
    for model in EVENT_MODELS:
        kind = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        struct = PLAIN_TYPES[kind]
        data_model = model.model_fields["data"].annotation
        data_struct = typing.get_type_hints(struct)["data"]
        for pydantic_model, msgspec_struct in ((model, struct), (data_model, data_struct)):
            fields = pydantic_model.model_fields  # type: ignore[union-attr]
            expected = {name: info.is_required() for name, info in fields.items()
                        if name != "type"}
            declared = {field.name: field.required
                        for field in msgspec.structs.fields(msgspec_struct)}
            assert declared == expected, (kind, msgspec_struct)


def _spots(obj: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, key or index) of every value in the envelope, in ``data`` and in
    lists held by ``data``."""
    found: list[tuple[Any, Any]] = [(obj, key) for key in obj]
    data = obj.get("data")
    if isinstance(data, dict):
        found += [(data, key) for key in data]
        for value in data.values():
            if isinstance(value, list):
                found += [(value, index) for index in range(len(value))]
    return found


def _escaped(text: str) -> str:
    """``text`` as a JSON string with every character written as a \\u escape."""
    units = text.encode("utf-16-be", "surrogatepass")
    return '"' + "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}"
                         for i in range(0, len(units), 2)) + '"'


GENERAL_SPELLINGS = [
    '"\\ud800"', '"a\\udc00"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\\\u0000"', '"\\u00e9"', "-0",
    "-0.0", "0e5", "1E2", "5.0", "5e0", "05", "1.", ".5", "+1", "1" + "0" * 19, "1" + "0" * 30,
    "9" * 400, "-" + "9" * 400, "1e-400", "2.5", "true", "null", "[]", "{}", '""']


def _spellings(value: Any) -> list[str]:
    """Other JSON texts for ``value`` itself: the same value spelled otherwise (escapes,
    exponents, fractions), near misses (a surrogate or NUL added, the number as a
    string, beyond 64 bits), what a lax decoder would coerce."""
    if isinstance(value, str):
        return [_escaped(value), json.dumps(value, ensure_ascii=True),
                '"' + value + '\\ud800"', '"\\udfff' + value + '"', '"' + value + '\\u0000"',
                '"\\\\u0000' + value + '"', json.dumps(value + "\x7f", ensure_ascii=False)]
    if isinstance(value, bool):
        return ["1", "0", '"true"', '"false"', str(value).lower()]
    if isinstance(value, int):
        return [f"{value}.0", f"{value}e0", f"{value}E+00", f"{value}.000000000000000000001",
                f"-{value}", str(value + 2**64), f'"{value}"', f"{value}0" * 3, "true"]
    if isinstance(value, float):
        return [repr(value), f"{value}e0", f"{value}0", f'"{value}"',
                str(int(value)) if value < 1e18 else "1"]
    return []


@SETTINGS
@given(events(), st.data())
def test_odd_spellings_of_a_value_are_decided_as_pydantic_decides(obj: dict[str, Any],
                                                                  data: st.DataObject) -> None:
    """A value of the envelope or ``data`` written otherwise: escapes, surrogates,
    NUL, number spellings and huge integers. Half the time a number or flag of a
    payload with all its optional fields (where coercion would show)."""
    if isinstance(obj.get("data"), dict) and obj.get("type") in sorted(OPTIONAL_DATA):
        obj["data"] = {**OPTIONAL_DATA[obj["type"]], **obj["data"]}
    spots = _spots(obj)
    typed = [(c, k) for c, k in spots if type(c[k]) in (int, float, bool)]
    container, key = data.draw(st.sampled_from(typed if typed and data.draw(st.booleans())
                                               else spots))
    own = _spellings(container[key])
    literal = data.draw(st.sampled_from(own if own and data.draw(st.booleans())
                                        else GENERAL_SPELLINGS))
    container[key] = "@@LITERAL@@"
    raw = encode(obj, literal)
    assert_same(raw)
    assert_same(raw.decode("utf-8"))  # the worker gets bytes; str is accepted too


@SETTINGS
@given(events(), st.data())
def test_odd_spellings_of_a_key_are_decided_as_pydantic_decides(obj: dict[str, Any],
                                                                data: st.DataObject) -> None:
    """A key written with escapes, with a NUL, or a near miss (another field)."""
    container, key = data.draw(st.sampled_from(
        [(c, k) for c, k in _spots(obj) if isinstance(c, dict)]))
    spelled = data.draw(st.sampled_from([
        _escaped(key), '"' + key + '\\u0000"', '"' + key.upper() + '"', '"' + key + ' "',
        '"' + key.replace("e", "\u0435", 1) + '"', '"\\ud800' + key + '"']))
    items = list(container.items())
    container.clear()
    for name, value in items:
        container["@@KEY@@" if name == key else name] = value
    assert_same(encode(obj).replace(b'"@@KEY@@"', spelled.encode()))


def _object_text(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}:{text}" for key, text in pairs) + "}"


@SETTINGS
@given(events(), st.data())
def test_repeated_keys_are_decided_as_pydantic_decides(obj: dict[str, Any],
                                                       data: st.DataObject) -> None:
    """A key given twice, in the envelope or in ``data``, before or after, with the
    same value or another (JSON readers keep the last: all three must agree)."""
    inner = obj.get("data")
    where = data.draw(st.sampled_from(["envelope", "data"] if isinstance(inner, dict)
                                      else ["envelope"]))
    target: dict[str, Any] = obj if where == "envelope" else inner  # type: ignore[assignment]
    names = [*sorted(target), "type", "event_id", "crew", "satisfied", "customers_affected"]
    key = data.draw(st.sampled_from(names))
    other = data.draw(st.one_of(st.just(target.get(key)), odd_values,
                                st.sampled_from(sorted(EVENT_TYPES)), timestamps()))
    pairs = [(name, json.dumps(value, ensure_ascii=False)) for name, value in target.items()]
    position = data.draw(st.integers(0, len(pairs)))
    pairs.insert(position, (key, json.dumps(other, ensure_ascii=False)))
    text = _object_text(pairs)
    if where == "data":
        envelope = [(name, text if name == "data" else json.dumps(value, ensure_ascii=False))
                    for name, value in obj.items()]
        text = _object_text(envelope)
    assert_same(text.encode("utf-8"))


@SETTINGS
@given(events(), st.sampled_from([
    lambda t: b"\xef\xbb\xbf" + t, lambda t: t + b"\r", lambda t: t + b"\n", lambda t: b" \t" + t,
    lambda t: t + b" x", lambda t: t + b"}", lambda t: t.replace(b",", b" ,\n\t", 3),
    lambda t: t.replace(b":", b" : "), lambda t: t + b"\x00", lambda t: t.replace(b'"', b"'", 2),
    lambda t: t.replace(b"{", b"[", 1), lambda t: t[:-1] + b",}", lambda t: b"[" + t + b"]"]))
def test_whitespace_marks_and_broken_framing_are_decided_as_pydantic_decides(
        obj: dict[str, Any], change: Any) -> None:
    assert_same(change(encode(obj)))


def test_every_character_of_a_timestamp_changed_is_decided_as_pydantic_decides() -> None:
    """Each character of plain timestamps replaced by each of a set (digits, so hours
    24-99, minutes and seconds 60-99, month 13, day 32; separators; non-ASCII digits),
    dropped or doubled, in ``occurred_at`` and in ``recorded_at``."""
    replacements = "0123456789-:Tt Zz+.x\u0663\uff10\u00a0"
    checked = 0
    for base in ("2026-07-01T08:30:00Z", "2199-12-31T23:59:59.999999-05:30",
                 "1970-01-01T00:00:00.5+00:00", "2026-02-28T14:05:09.123+14:00"):
        variants = {base[:i] + change + base[i + 1:]
                    for i in range(len(base)) for change in replacements}
        variants |= {base[:i] + base[i + 1:] for i in range(len(base))}
        variants |= {base[:i] + base[i] + base[i:] for i in range(len(base))}
        for text in sorted(variants):
            for name in ("occurred_at", "recorded_at"):
                obj = {"event_id": "e", "type": "crew.arrived", "incident_id": "I",
                       "occurred_at": "2026-07-01T08:30:00Z", "data": {"crew": "C"},
                       name: text}
                assert_same(encode(obj))
                checked += 1
    assert checked > 4000
