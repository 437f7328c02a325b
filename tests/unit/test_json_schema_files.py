"""The committed JSON Schema files match the pydantic models, and accept exactly what
``parse_event`` accepts, on generated valid and invalid events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.generate import FOLDER, documents, main
from schemas.upcasting import upcast
from tests.unit.test_report_oracle import MALFORMED_KINDS, Spec, malformed, render


def test_committed_schema_files_are_fresh() -> None:
    assert main(["--check"]) == 0, "run `python -m schemas.generate` and commit schemas/json"


def test_check_reports_a_stale_file(tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import schemas.generate as generate

    monkeypatch.setattr(generate, "FOLDER", tmp_path)
    assert main(["--check"]) == 1
    assert main([]) == 0
    assert main(["--check"]) == 0


EVENT_TYPES = ("call.received", "call.verified", "call.rejected", "call.merged",
               "crew.dispatched", "crew.departed", "crew.arrived", "fault.diagnosed",
               "repair.completed", "power.restored", "incident.closed")


def schema_verdict(validator: jsonschema.Draft202012Validator, line: str) -> bool | None:
    """True/False: the union schema accepts the line's JSON; None: not JSON at all."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return validator.is_valid(obj)


def engine_verdict(line: str) -> bool:
    from schemas.parsing import InvalidEvent, parse_event

    try:
        parse_event(line)
    except InvalidEvent:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(EVENT_TYPES),
       how=st.sampled_from((None, None, None, "legacy", *MALFORMED_KINDS)),
       minutes=st.integers(-10 * 24 * 60, 10 * 24 * 60),
       offset=st.sampled_from((None, timedelta(hours=8), timedelta(hours=-3, minutes=-30))))
def test_union_schema_agrees_with_parse_event(kind: str, how: str | None, minutes: int,
                                             offset: timedelta | None) -> None:
    """Generated valid events, legacy (v0) events and every kind of invalid event the
    oracle tests generate: the committed schema (with ``date-time`` format checks)
    says what ``parse_event`` says. The schema describes version 1, so a v0 event
    is judged by the schema after upcasting, as the engine does."""
    schema = json.loads((FOLDER / "event.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    spec = Spec("e1", kind, "INC-1", datetime(2026, 7, 1, 1, tzinfo=UTC) +
                timedelta(minutes=minutes))
    if how is None:
        line = render(spec, offset)
    elif how == "legacy":
        line = render(spec, offset, legacy=True)
    else:
        line = malformed(spec, how)
    engine = engine_verdict(line)
    if how == "legacy":
        assert engine
        assert validator.is_valid(upcast(json.loads(line))), line
        return
    verdict = schema_verdict(validator, line)
    assert engine is (how is None), line
    assert verdict is None or verdict is engine, (line, list(validator.iter_errors(
        json.loads(line)))[:1])


def test_schema_format_checks_are_on() -> None:
    """Without a date-time checker, "2026-02-30" would pass the schema's pattern."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    assert not checker.conforms("2026-02-30T09:00:00+08:00", "date-time")
    assert checker.conforms("2026-07-01T09:00:00+08:00", "date-time")


def test_every_type_has_a_schema_file() -> None:
    assert set(documents()) == {p.name for p in FOLDER.glob("*.schema.json")}
    assert {f"{kind}.schema.json" for kind in EVENT_TYPES} <= set(documents())
