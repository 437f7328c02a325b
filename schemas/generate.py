"""Generate the JSON Schema files under ``schemas/json/`` from the pydantic models.

``python -m schemas.generate`` rewrites them; ``--check`` exits 1 if any is stale
(what the test suite and CI run). One file per event type plus ``event.schema.json``
for the whole union, so consumers in other languages validate the same contract.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schemas.events import EVENT_ADAPTER, EVENT_MODELS

FOLDER = Path(__file__).parent / "json"


def documents() -> dict[str, str]:
    """File name -> JSON text of every schema file."""
    out: dict[str, str] = {}
    union = EVENT_ADAPTER.json_schema(mode="validation")
    union["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    union["title"] = "Outage dispatch event"
    out["event.schema.json"] = _dump(union)
    for model in EVENT_MODELS:
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        kind = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        out[f"{kind}.schema.json"] = _dump(schema)
    return out


def _dump(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    args = parser.parse_args(argv)
    wanted = documents()
    present = {p.name for p in FOLDER.glob("*.schema.json")}
    stale = sorted(name for name, text in wanted.items()
                   if not (FOLDER / name).is_file()
                   or (FOLDER / name).read_text(encoding="utf-8") != text)
    extra = sorted(present - set(wanted))
    if args.check:
        if stale or extra:
            print(f"stale JSON Schema files: {', '.join(stale + extra)}; "
                  "run `python -m schemas.generate`", file=sys.stderr)
            return 1
        return 0
    FOLDER.mkdir(exist_ok=True)
    for name in extra:
        (FOLDER / name).unlink()
    for name in stale:
        (FOLDER / name).write_text(wanted[name], encoding="utf-8")
    print(f"{len(stale)} written, {len(extra)} removed, {len(wanted) - len(stale)} unchanged",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
