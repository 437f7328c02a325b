"""Crew roster files: TOML (``[[crew]]`` tables) or CSV (``crew,grid,skills``).

Contract of ``read_roster(name, text)``: the roster entries in file order as
``(crew, grid, skills)``; ``ValueError`` naming the line (CSV) or the entry
(TOML) and the field at fault for anything else. Pure: no I/O.

TOML::

    [[crew]]
    crew = "URB-2-C1"
    grid = "URB-2"
    skills = ["overhead", "cable"]

CSV (header required; skills separated by ``;``)::

    crew,grid,skills
    URB-2-C1,URB-2,overhead;cable
"""

from __future__ import annotations

import csv
import io
import tomllib
from typing import Any

Entry = tuple[str, str, list[str]]


def read_roster(name: str, text: str) -> list[Entry]:
    if name.lower().endswith(".toml"):
        return _toml(text)
    if name.lower().endswith(".csv"):
        return _csv(text)
    raise ValueError(f"{name}: a roster is a .toml or .csv file")


def _toml(text: str) -> list[Entry]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    tables = document.get("crew")
    if not isinstance(tables, list) or not tables:
        raise ValueError("no [[crew]] entries")
    return [_entry(f"[[crew]] entry {n}", table) for n, table in enumerate(tables, start=1)]


def _entry(where: str, table: Any) -> Entry:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: not a table")
    for field in ("crew", "grid"):
        if not isinstance(table.get(field), str) or not table[field].strip():
            raise ValueError(f"{where}: {field} must be a non-empty string")
    skills = table.get("skills", [])
    if not isinstance(skills, list) or not all(isinstance(s, str) and s.strip()
                                               for s in skills):
        raise ValueError(f"{where}: skills must be a list of non-empty strings")
    return table["crew"].strip(), table["grid"].strip(), [s.strip() for s in skills]


def _csv(text: str) -> list[Entry]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["crew", "grid"]:
        raise ValueError("line 1: the header must be crew,grid[,skills]")
    entries = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or len(row) > 3:
            raise ValueError(f"line {number}: expected crew,grid[,skills], got {len(row)} "
                             f"field{'s' if len(row) != 1 else ''}")
        skills = [s for s in (row[2].split(";") if len(row) == 3 else []) if s.strip()]
        entries.append(_entry(f"line {number}", {"crew": row[0], "grid": row[1],
                                                 "skills": skills}))
    if not entries:
        raise ValueError("no crews after the header")
    return entries
