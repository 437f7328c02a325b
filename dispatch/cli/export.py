"""``dispatch export``: events and the per-incident read model as Parquet, by duty date."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dispatch.cli.common import (
    RejectsFile,
    UserError,
    add_calendar_options,
    existing_files,
    settings_from,
)
from projections.columnar import export_parquet, load_columnar


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "export", help="write events and incidents as Parquet, partitioned by duty date",
        description="Validate JSON Lines event files like `report --input` and write the "
                    "accepted events (one copy each) to DIR/events and the per-incident read "
                    "model to DIR/incidents, as Parquet partitioned by duty date "
                    "(duty_date=YYYY-MM-DD folders), for DuckDB, pandas or Polars "
                    "(docs/history.md).")
    parser.add_argument("--to", dest="folder", required=True, metavar="DIR",
                        help="folder to write (created if missing)")
    parser.add_argument("--input", nargs="+", required=True, metavar="FILE",
                        help="JSON Lines event files")
    parser.add_argument("--rejects", metavar="PATH",
                        help="write rejected lines and reasons here (JSON Lines)")
    add_calendar_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    paths = existing_files(args.input)
    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--to {folder}: not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    rejects = RejectsFile(args.rejects)
    try:
        events = load_columnar(paths, on_rejected=rejects)
    finally:
        rejects.close()
    counts = export_parquet(events, settings.calendar, folder)
    events.db.close()
    print(f"exported {counts['events']:,} events and {counts['incidents']:,} incidents to "
          f"{folder} ({events.rejected:,} rejected lines, {events.duplicates:,} duplicates)",
          file=sys.stderr)
    return 0
