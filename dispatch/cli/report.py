"""``dispatch report``: the duty report (docs/report.md) from a store or from files."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from dispatch import bootstrap
from dispatch.cli.common import (
    ProgressLine,
    RejectsFile,
    UserError,
    add_calendar_options,
    add_store_option,
    existing_files,
    print_summary,
    require_store,
    settings_from,
)
from dispatch.cli.render import FORMATS, render
from projections.queries import duty_report
from projections.runners.embedded import ingest_files


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report", help="print the duty report (per-stage durations, restoration, duty periods)",
        description="Print the duty report (docs/report.md): per duty period the calls, "
                    "incidents, restored, open at handover, mean minutes of each six-fast "
                    "stage and the average restoration time. Reads the store (--store) or, "
                    "with --input, folds event files in memory without touching any store. "
                    "Other --duty-timezone/--duty-start values re-cut the stored incidents.")
    parser.add_argument("--input", nargs="+", metavar="FILE",
                        help="JSON Lines event files to fold in memory instead of a store")
    add_store_option(parser)
    add_calendar_options(parser)
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json (the contract, default), or table/csv/markdown for people")
    parser.add_argument("--rejects", metavar="PATH",
                        help="with --input: write rejected lines and reasons here (JSON Lines)")
    parser.add_argument("--strict", action="store_true",
                        help="with --input: exit 1 at the first rejected line")
    parser.add_argument("--output", "-o", metavar="PATH", help="write the report here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    calendar_given = args.duty_timezone is not None or args.duty_start is not None
    if args.input and args.store:
        raise UserError("give either --input FILE or --store URL, not both")

    async def from_files() -> str:
        paths = existing_files(args.input)
        store = bootstrap.scratch_store(settings)
        rejects = RejectsFile(args.rejects)
        progress = ProgressLine()
        try:
            summary = await ingest_files(store, paths, strict=args.strict, on_rejected=rejects,
                                         progress=progress, batch_size=settings.batch_size)
        finally:
            rejects.close()
        progress.finish()
        if summary.stopped_at is not None:
            raise UserError(f"--strict: stopped at {summary.stopped_at.record.label}: "
                            f"{summary.stopped_at.reason}")
        if summary.rejected or summary.conflicts or summary.held_back:
            print_summary(summary, "read")
        return render(await duty_report(store), args.format)

    if not args.input:
        require_store(settings)

    async def from_store() -> str:
        store = bootstrap.read_model_store(settings)
        async with store:
            report = await duty_report(store, settings.calendar if calendar_given else None)
        return render(report, args.format)

    text = asyncio.run(from_files() if args.input else from_store())
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
