"""What the bench scripts share: printing their figures, a fresh PostgreSQL
database to measure in, and the CPU time of processes."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path


def print_figures(figures: Mapping[str, object], json_path: str | None = None) -> None:
    """One ``name  value`` line per figure, aligned; also as JSON at ``json_path``."""
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float | None:
    """User+system CPU seconds of a process (all threads), or None if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def backends_of(database: str) -> list[int]:
    """The PostgreSQL server processes serving sessions on ``database`` (their process
    titles name it), found without a session of our own."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].split()
            except OSError:
                continue
            if len(title) > 2 and title[0] == b"postgres:" and title[2] == database.encode():
                found.append(int(entry.name))
    return found


def fresh_database(root: str, name: str) -> str:
    """Drop and create database ``name`` at ``root`` (a URL without database);
    returns its URL."""
    asyncio.run(_administer(root, f'DROP DATABASE IF EXISTS "{name}"',
                            f'CREATE DATABASE "{name}"'))
    return f"{root}/{name}"


def drop_databases(root: str, *names: str) -> None:
    """Drop databases ``names`` at ``root`` if they exist."""
    asyncio.run(_administer(root, *(f'DROP DATABASE IF EXISTS "{name}"' for name in names)))


async def _administer(root: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{root}/postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
