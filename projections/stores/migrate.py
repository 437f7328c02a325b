"""Versioned SQL migrations shipped as ``migrations/<dialect>/NNNN_name.sql``."""

from __future__ import annotations

from importlib import resources


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for ``dialect``, in version order."""
    folder = resources.files("projections.stores") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
