"""Schema-version upcasters: pure ``vN -> vN+1`` functions on the decoded JSON object.

Contract: ``upcast(obj)`` returns an object whose ``schema_version`` is
``CURRENT_SCHEMA_VERSION``, applying each step in order, before validation. An
upcaster never drops information: fields it does not understand are carried over.
Versions newer than this engine understands are refused by ``upcast`` (ValueError).

Version history:
- **v0** (pre-contract export of the legacy hotline/crew-app bridge): the event
  time was called ``time``; crew events named the crew ``data.crew_id``.
- **v1** (docs/events.md): ``occurred_at``; ``data.crew``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.events import CURRENT_SCHEMA_VERSION

JsonObject = dict[str, Any]


def v0_to_v1(obj: JsonObject) -> JsonObject:
    """Rename ``time`` to ``occurred_at`` and ``data.crew_id`` to ``data.crew``."""
    out = dict(obj)
    if "occurred_at" not in out and "time" in out:
        out["occurred_at"] = out.pop("time")
    data = out.get("data")
    if isinstance(data, dict) and "crew" not in data and "crew_id" in data:
        data = dict(data)
        data["crew"] = data.pop("crew_id")
        out["data"] = data
    out["schema_version"] = 1
    return out


UPCASTERS: dict[int, Callable[[JsonObject], JsonObject]] = {0: v0_to_v1}
"""``UPCASTERS[n]`` turns a version-n object into version n+1."""


def upcast(obj: JsonObject) -> JsonObject:
    """Bring ``obj`` to the current schema version (see module contract)."""
    version = obj.get("schema_version", CURRENT_SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"schema_version: must be an integer, got {version!r}")
    if version > CURRENT_SCHEMA_VERSION:
        raise ValueError(
            f"schema_version: {version} is newer than this engine understands "
            f"(max {CURRENT_SCHEMA_VERSION})"
        )
    if version < min(UPCASTERS, default=CURRENT_SCHEMA_VERSION):
        raise ValueError(f"schema_version: unknown version {version}")
    while version < CURRENT_SCHEMA_VERSION:
        obj = UPCASTERS[version](obj)
        version += 1
    return obj
