"""The committed JSON Schema files match the pydantic models, and accept what they accept."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from schemas.generate import FOLDER, documents, main


def test_committed_schema_files_are_fresh() -> None:
    assert main(["--check"]) == 0, "run `python -m schemas.generate` and commit schemas/json"


def test_check_reports_a_stale_file(tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import schemas.generate as generate

    monkeypatch.setattr(generate, "FOLDER", tmp_path)
    assert main(["--check"]) == 1
    assert main([]) == 0
    assert main(["--check"]) == 0


GOOD = {"event_id": "e1", "type": "crew.arrived", "incident_id": "I1",
        "occurred_at": "2026-07-01T09:00:00+08:00", "data": {"crew": "C1", "extra": 1}}


@pytest.mark.parametrize(("change", "valid"), [
    ({}, True),
    ({"occurred_at": "2026-07-01T09:00:00"}, False),
    ({"occurred_at": "1782865800"}, False),
    ({"data": {}}, False),
    ({"type": "crew.teleported"}, False),
])
def test_union_schema_agrees_with_the_models(change: dict[str, object], valid: bool) -> None:
    schema = json.loads((FOLDER / "event.schema.json").read_text())
    event = {**GOOD, **change}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(event))
    assert (not errors) is valid
    assert set(documents()) == {p.name for p in FOLDER.glob("*.schema.json")}
