"""Hostile input for the fuzz tests: hypothesis draws mutation recipes, and each
recipe is applied to many good lines, so a few hundred drawn recipes make tens of
thousands of bad lines without overrunning hypothesis's data budget.

Every bad line is bad by construction (its kind says why); ``Mix`` keeps the
good lines apart, so the report over them can be checked against the oracle.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

INVALID_VALUES: dict[str, list[Any]] = {
    "occurred_at": ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00",
                    "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "2026-07-01T09:00:00",
                    "2026-07-01T09:00Z", "1782865800", 1782865800, None, "", "yesterday",
                    "2026-13-01T09:00:00Z", "2026-07-01T25:00:00+08:00", True, [], {}],
    "recorded_at": ["9999-01-01T00:00:00Z", "2026-07-01 09:00", 0, False],
    "event_id": ["", None, 5, True, [], {"id": 1}],
    "incident_id": ["", None, 7.5, False],
    "type": ["call.recieved", "", None, 3, "CALL.RECEIVED", "'; DROP TABLE incidents;--"],
    "schema_version": [2, 99, -1, True, 1.0, "1", None],
    "data": [None, [], "data", 5, True],
}
INVALID_DATA: dict[str, dict[str, list[Any]]] = {
    "call.received": {"customers_affected": ["5", True, 5.5, -1, 2**53, 2**63, 1e400],
                      "area": ["suburban", "", None, 1], "grid": ["", None, 5],
                      "priority": ["urgent", 1, None]},
    "crew.dispatched": {"eta_minutes": ["5", True, -1, "NaN"],
                        "crew": ["", None, 12]},
    "crew.arrived": {"crew": ["", None, ["C1"]]},
    "power.restored": {"customers_restored": ["10", False, 1.5, -3, 2**60]},
    "incident.closed": {"satisfied": [1, "yes", "true", 0]},
    "call.rejected": {"reason": ["", None, 0]},
    "call.merged": {"into_incident_id": ["", None, 4]},
}
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]
KINDS = ("truncate", "field", "data_field", "non_finite", "not_object", "garbage",
         "drop_field", "conflict")


@dataclass(frozen=True)
class Recipe:
    kind: str
    choice: int
    """Picks the field, value or cut point (modulo what is available)."""
    text: str = ""
    blob: bytes = b""


recipes = st.builds(
    Recipe,
    kind=st.sampled_from(KINDS),
    choice=st.integers(0, 10_000),
    text=st.text(max_size=12),
    blob=st.binary(min_size=1, max_size=24),
)


@dataclass
class Mix:
    """A shuffled file: good lines, and bad ones with their kind."""

    lines: list[bytes] = field(default_factory=list)
    good: list[bytes] = field(default_factory=list)
    bad: dict[int, str] = field(default_factory=dict)
    """1-based line number -> kind, for every line that must be rejected."""

    @property
    def invalid(self) -> int:
        return sum(1 for kind in self.bad.values() if kind != "conflict")

    @property
    def conflicts(self) -> int:
        return sum(1 for kind in self.bad.values() if kind == "conflict")


def mutate(recipe: Recipe, line: bytes, rng: random.Random) -> bytes:
    """One bad line made from the good ``line`` by ``recipe``."""
    obj = json.loads(line)
    pick = recipe.choice
    if recipe.kind == "truncate":
        return line[:1 + pick % (len(line) - 1)]  # never the whole line: not JSON
    if recipe.kind == "field":
        name = sorted(INVALID_VALUES)[pick % len(INVALID_VALUES)]
        values = INVALID_VALUES[name]
        obj[name] = values[(pick // 7) % len(values)]
        return _dump(obj)
    if recipe.kind == "data_field":
        fields = INVALID_DATA.get(obj["type"])
        if not fields:
            obj["occurred_at"] = "2026-07-01T09:00:00"  # naive
            return _dump(obj)
        name = sorted(fields)[pick % len(fields)]
        values = fields[name]
        obj["data"][name] = values[(pick // 7) % len(values)]
        text = _dump(obj)
        return text.replace(b'"NaN"', b"NaN") if obj["data"][name] == "NaN" else text
    if recipe.kind == "non_finite":
        literal = NON_FINITE[pick % len(NON_FINITE)]
        where = "data" if pick % 2 else "envelope"
        obj.setdefault("data", {})
        target = obj["data"] if where == "data" else obj
        target["x_hostile"] = "@@NONFINITE@@"
        return _dump(obj).replace(b'"@@NONFINITE@@"', literal.encode())
    if recipe.kind == "not_object":
        options = [json.dumps(recipe.text), json.dumps([recipe.text, pick]), str(pick),
                   "null", "true", json.dumps([obj])]
        return options[pick % len(options)].encode()
    if recipe.kind == "garbage":
        blob = recipe.blob.replace(b"\n", b" ").replace(b"\r", b" ")
        return b"\xff{" + blob if pick % 2 else b"{" + blob + b'"\xff'
    if recipe.kind == "drop_field":
        required = ["event_id", "incident_id", "occurred_at", "type", "data"]
        del obj[required[pick % len(required)]]
        return _dump(obj)
    raise ValueError(recipe.kind)


def conflicting(line: bytes, pick: int) -> bytes:
    """Another event under the same ``event_id``: same id, other content."""
    obj = json.loads(line)
    obj["occurred_at"] = f"2026-01-0{1 + pick % 9}T0{pick % 10}:00:00Z"
    obj.setdefault("data", {})["x_conflict"] = pick
    return _dump(obj)


def mix(good: list[bytes], drawn: list[Recipe], per_recipe: int, seed: int) -> Mix:
    """Good lines and ``len(drawn) * per_recipe`` bad ones, shuffled; a conflicting
    copy always comes after the line it conflicts with."""
    rng = random.Random(seed)
    bad: list[tuple[bytes, str]] = []
    conflicts: list[tuple[int, bytes]] = []
    # Shift starts carry no incident: dropping or spoiling their incident_id can leave a
    # valid event, so hostile mutations are made from incident events only.
    incident_lines = [i for i, line in enumerate(good) if b'"duty.' not in line]
    for recipe in drawn:
        for _ in range(per_recipe):
            index = (rng.randrange(len(good)) if recipe.kind == "conflict"
                     else incident_lines[rng.randrange(len(incident_lines))])
            if recipe.kind == "conflict":
                conflicts.append((index, conflicting(good[index], recipe.choice + index)))
            else:
                bad.append((mutate(recipe, good[index], rng), recipe.kind))
    items: list[tuple[bytes, str | None]] = [(line, None) for line in good]
    items += [(line, kind) for line, kind in bad]
    rng.shuffle(items)
    after: dict[int, list[bytes]] = {}
    position = {id(line): i for i, (line, _) in enumerate(items)}
    for index, line in conflicts:
        after.setdefault(position[id(good[index])], []).append(line)
    out = Mix(good=list(good))
    for i, (line, kind) in enumerate(items):
        out.lines.append(line)
        if kind is not None:
            out.bad[len(out.lines)] = kind
        for copy in after.get(i, []):
            out.lines.append(copy)
            out.bad[len(out.lines)] = "conflict"
    return out


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")
