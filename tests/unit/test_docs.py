"""The documentation in ``docs/`` agrees with the engine and stays inside the repository.

- every event example (a ```` ```json event ```` block) is valid against its
  JSON Schema file and against ``event.schema.json``, and ``parse_event``
  accepts it; an example of a type still being added (```` ```json coming-event ````)
  is held to the same rules as soon as its type exists;
- every event type the engine knows has an example in ``docs/events.md``;
- the report example (```` ```json report ````) uses only keys a real report has,
  in the same order, and shows every contract key and extension;
- links in ``docs/`` and the README resolve to files (and headings) inside the
  repository, and no project file points to a design brief outside it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.report import build_report, recut
from schemas import parse_event
from schemas.events import EVENT_TYPES
from schemas.generate import FOLDER as SCHEMA_FOLDER

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```json ?([\w-]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(kind: str) -> list[tuple[str, str]]:
    """``(page:line, text)`` of every ```json KIND block in docs/."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == kind:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{page.name}:{line}", match.group(2)))
    return found


def _validate(where: str, text: str) -> dict[str, Any]:
    event = json.loads(text)
    assert isinstance(event, dict), where
    kind = event.get("type")
    for name in (f"{kind}.schema.json", "event.schema.json"):
        schema = json.loads((SCHEMA_FOLDER / name).read_text(encoding="utf-8"))
        errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(event)]
        assert not errors, f"{where}: invalid against schemas/json/{name}: {errors}"
    parsed = parse_event(text)
    assert parsed.event_id == event["event_id"]
    return event


EVENT_BLOCKS = blocks("event")
COMING_BLOCKS = blocks("coming-event")


def test_the_pages_exist_and_hold_examples() -> None:
    assert {"README.md", "events.md", "kpis.md", "report.md"} <= {p.name for p in PAGES}
    assert len(EVENT_BLOCKS) >= 11
    assert len(blocks("report")) == 1


@pytest.mark.parametrize(("where", "text"), EVENT_BLOCKS, ids=[w for w, _ in EVENT_BLOCKS])
def test_event_example_is_valid(where: str, text: str) -> None:
    _validate(where, text)


@pytest.mark.parametrize(("where", "text"), COMING_BLOCKS, ids=[w for w, _ in COMING_BLOCKS])
def test_coming_event_example_is_valid_once_its_type_exists(where: str, text: str) -> None:
    event = json.loads(text)
    assert isinstance(event.get("event_id"), str) and isinstance(event.get("data"), dict), where
    if event["type"] in EVENT_TYPES:
        _validate(where, text)


def test_every_event_type_has_an_example() -> None:
    shown = {json.loads(text)["type"] for _, text in EVENT_BLOCKS + COMING_BLOCKS}
    missing = sorted(EVENT_TYPES - shown)
    assert not missing, f"docs/events.md has no example of {missing}"


def test_a_broken_example_would_be_caught() -> None:
    where, text = EVENT_BLOCKS[0]
    event = json.loads(text)
    event["occurred_at"] = "2026-07-01T09:04:13"
    with pytest.raises(AssertionError, match="invalid against"):
        _validate(where, json.dumps(event))


CONTRACT_KEYS = ("duty_timezone", "duty_start", "duty_periods", "overall", "unattributed",
                 "rejected_events", "duplicate_events")
PERIOD_KEYS = ("duty_date", "start", "end", "calls", "incidents", "restored",
               "open_at_handover", "stages", "avg_restoration_minutes", "anomalies",
               "closed", "restoration_anomalies", "arrival", "restore_after_arrival")


def _keys_in_order(example: dict[str, Any], real: dict[str, Any], where: str) -> None:
    unknown = [k for k in example if k not in real]
    assert not unknown, f"docs/report.md example has keys a report does not: {where}{unknown}"
    order = [k for k in real if k in example]
    assert list(example) == order, f"docs/report.md example key order differs at {where}"
    for key, value in example.items():
        if isinstance(value, dict) and isinstance(real[key], dict) and key not in (
                "grid", "area", "crew"):
            _keys_in_order(value, real[key], f"{where}{key}.")


def test_report_example_matches_a_real_report() -> None:
    [(where, text)] = blocks("report")
    example = json.loads(text)
    calendar = DutyCalendar()
    # One verified incident in one period: a real report with every key and breakdown.
    incident = Incident("I1", grid="G", area="urban", priority="normal")
    incident.times[0], incident.times[1] = 0, 60_000_000
    call = Fact("e1", "call.received", "I1", 0, "G", "urban", "normal")
    real = build_report(recut([incident], [call], calendar), {}, calendar)
    missing = [k for k in (*CONTRACT_KEYS, "breakdowns") if k not in example]
    assert not missing, f"{where}: the report example lacks {missing}"
    _keys_in_order(example, real, "")
    for period in example["duty_periods"]:
        assert [k for k in PERIOD_KEYS if k not in period] == [], where
        _keys_in_order(period, real["duty_periods"][0], "duty_periods[].")
    assert [k for k in PERIOD_KEYS[3:] if k not in example["overall"]] == [], where
    for dimension, members in example["breakdowns"].items():
        for stats in members.values():
            _keys_in_order(stats, real["overall"], f"breakdowns.{dimension}.")


# -- nothing points outside the repository ----------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", page.read_text("utf-8"),
                                                    re.MULTILINE)}


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository(page: Path) -> None:
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        assert resolved.is_relative_to(ROOT), f"{page.name}: {target} points outside the repo"
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no heading for #{anchor}"


# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join((r"\.\./" + "shared/", r"\bDESI" + r"GN\b", "/wo" + "rk/")))
SCANNED = ("README.md", "docs", "dispatch", "projections", "schemas", "tests", "bench",
           "deploy", ".ci", "pyproject.toml")
TEXT = {".py", ".md", ".toml", ".sh", ".yml", ".yaml", ".txt", ".sql", ".json", ".cfg", ""}


def _project_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT
                         and "__pycache__" not in p.parts)
    return files


def test_no_project_file_points_outside_the_repository() -> None:
    offenders = []
    for path in _project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not offenders, "cite docs/... instead:\n" + "\n".join(offenders)
