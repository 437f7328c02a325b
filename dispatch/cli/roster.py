"""``dispatch roster FILE``: crews from a TOML or CSV file, as ``crew.rostered`` events."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from dispatch import bootstrap
from dispatch.cli.common import UserError, add_store_option, existing_files, settings_from
from dispatch.commands import DISPATCHER, Accepted, Command, decide_roster
from dispatch.roster import read_roster
from projections.ports import Record
from projections.projector import Projector


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "roster", help="roster crews from a TOML or CSV file (crew.rostered events)",
        description="Write one crew.rostered event per crew of FILE into the store's event "
                    "log, in one transaction; the latest entry per crew wins. TOML: "
                    "[[crew]] tables with crew, grid, skills; CSV: a crew,grid,skills header, "
                    "skills separated by ';'.")
    parser.add_argument("file", metavar="FILE", help="roster file (.toml or .csv)")
    add_store_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    path = existing_files([args.file])[0]
    try:
        entries = read_roster(path.name, Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: {exc}") from None
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    records = []
    for n, (crew, grid, skills) in enumerate(entries):
        decision = decide_roster(Command("crew.rostered", {"crew": crew, "grid": grid,
                                                          "skills": skills}),
                                 DISPATCHER, event_id=f"roster-{uuid.uuid4()}", now=now)
        if not isinstance(decision, Accepted):
            raise UserError(f"{path}: crew {crew}: {decision.reason}")
        records.append(Record(f"roster:{path.name}", 0, n + 1, decision.raw))
    store = bootstrap.read_model_store(settings)

    async def work() -> None:
        async with store, store.writing():
            prepared = await Projector(store, "roster").prepare(records)
            prepared.commit.positions = {}
            await store.commit(prepared.commit)

    asyncio.run(work())
    print(f"{len(records)} crew{'s' if len(records) != 1 else ''} rostered from {path.name}",
          file=sys.stderr)
    return 0
