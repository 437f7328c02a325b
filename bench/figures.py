"""What the bench scripts share: printing their figures, and a fresh PostgreSQL
database to measure in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path


def print_figures(figures: Mapping[str, object], json_path: str | None = None) -> None:
    """One ``name  value`` line per figure, aligned; also as JSON at ``json_path``."""
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")


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
