"""``dispatch ingest``: JSON Lines files into the store, resumable, one transaction per batch."""

from __future__ import annotations

import argparse
import asyncio
import sys

from dispatch import bootstrap
from dispatch.cli.common import (
    ProgressLine,
    RejectsFile,
    UserError,
    add_calendar_options,
    add_sla_clock_option,
    add_store_option,
    existing_files,
    print_summary,
    settings_from,
)
from projections.runners.embedded import ingest_files


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "ingest", help="load JSON Lines event files into the store",
        description="Validate each line (docs/events.md), drop duplicates by event_id and "
                    "fold the rest into the read models, one transaction per batch together "
                    "with the file position: an interrupted ingest resumes where it stopped.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines event files")
    add_store_option(parser)
    add_calendar_options(parser)
    parser.add_argument("--rejects", metavar="PATH",
                        help="append rejected lines with their reasons here (JSON Lines)")
    parser.add_argument("--strict", action="store_true",
                        help="stop with exit code 1 at the first rejected line")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="events per transaction (default 10000)")
    parser.add_argument("--from-start", action="store_true",
                        help="read files from the top even if ingested before "
                             "(repeated events then count as duplicates)")
    add_sla_clock_option(parser, default="event")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    paths = existing_files(args.files)
    store = bootstrap.read_model_store(settings)
    rejects = RejectsFile(args.rejects)
    progress = ProgressLine()

    async def work() -> int:
        async with store:
            summary = await ingest_files(
                store, paths, batch_size=settings.batch_size, strict=args.strict,
                on_rejected=rejects, progress=progress, from_start=args.from_start,
                sla=settings.ingest_sla_policy)
        progress.finish()
        print_summary(summary)
        if summary.stopped_at is not None:
            raise UserError(f"--strict: stopped at {summary.stopped_at.record.label}: "
                            f"{summary.stopped_at.reason}")
        return 0

    try:
        return asyncio.run(work())
    finally:
        rejects.close()
        sys.stderr.flush()
