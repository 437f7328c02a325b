"""Roster files (dispatch.roster) and ``dispatch roster`` end to end on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dispatch.api.writes import crew_view
from dispatch.cli import main
from dispatch.roster import read_roster
from projections.stores import open_store

TOML = '''
[[crew]]
crew = "C1"
grid = "URB-1"
skills = ["overhead", "cable"]

[[crew]]
crew = "C2"
grid = "RUR-1"
'''
CSV = "crew,grid,skills\nC1,URB-1,overhead;cable\n\nC2,RUR-1,\n"


def test_toml_and_csv_say_the_same() -> None:
    want = [("C1", "URB-1", ["overhead", "cable"]), ("C2", "RUR-1", [])]
    assert read_roster("crews.toml", TOML) == want
    assert read_roster("crews.CSV", CSV) == want


@pytest.mark.parametrize(("name", "text", "reason"), [
    ("a.csv", "crew,grid\nC1\n", "line 2: expected crew,grid[,skills], got 1 field"),
    ("a.csv", "name,grid\nC1,G\n", "line 1: the header must be crew,grid[,skills]"),
    ("a.csv", "crew,grid\nC1, \n", "line 2: grid must be a non-empty string"),
    ("a.toml", "[[crew]]\ncrew = 'C1'\n", "[[crew]] entry 1: grid must be a non-empty string"),
    ("a.toml", "[[crew]]\ncrew='C1'\ngrid='G'\nskills='x'\n",
     "[[crew]] entry 1: skills must be a list of non-empty strings"),
    ("a.toml", "crew = [", "not valid TOML"),
    ("a.json", "{}", "a.json: a roster is a .toml or .csv file"),
])
def test_bad_roster_files_name_the_line_or_entry(name: str, text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        read_roster(name, text)
    assert str(caught.value).startswith(reason)


def test_dispatch_roster_writes_crew_rostered_events(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "crews.toml").write_text(TOML, encoding="utf-8")
    (tmp_path / "later.csv").write_text("crew,grid,skills\nC1,URB-9,tree\n", encoding="utf-8")
    assert main(["roster", str(tmp_path / "crews.toml"), "--store", store]) == 0
    assert main(["roster", str(tmp_path / "later.csv"), "--store", store]) == 0
    assert "1 crew rostered from later.csv" in capsys.readouterr().err

    async def crews() -> dict[str, tuple[str, tuple[str, ...], str]]:
        async with open_store(store) as opened:
            states, _ = await crew_view(opened)
            assert await opened.event_count() == 3
            return {c.crew: (c.grid, c.skills, c.status) for c in states.values()}

    assert asyncio.run(crews()) == {"C1": ("URB-9", ("tree",), "available"),
                                    "C2": ("RUR-1", (), "available")}
    (tmp_path / "bad.csv").write_text("crew,grid\nC3\n", encoding="utf-8")
    assert main(["roster", str(tmp_path / "bad.csv"), "--store", store]) == 1
    assert "bad.csv: line 2: expected crew,grid" in capsys.readouterr().err
