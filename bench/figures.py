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
    async def make() -> None:
        import asyncpg

        conn = await asyncpg.connect(f"{root}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
    asyncio.run(make())
    return f"{root}/{name}"
