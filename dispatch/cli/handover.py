"""``dispatch handover DUTY_DATE``: one duty period's handover sheet."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path

from dispatch import bootstrap
from dispatch.cli.common import (
    ProgressLine,
    RejectsFile,
    add_calendar_options,
    add_store_option,
    existing_files,
    print_summary,
    require_store,
    settings_from,
)
from dispatch.cli.sheet import SHEET_FORMATS, render_sheet
from projections.queries import handover_sheet
from projections.runners.embedded import ingest_files


def duty_date(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or len(text) != 10 or not 1 < day.year < 9999:
        raise argparse.ArgumentTypeError(
            f"DUTY_DATE must be a date as YYYY-MM-DD, got {text!r}") from None
    return day


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "handover", help="print one duty period's handover sheet (team, KPIs, open incidents)",
        description="Print the handover sheet of the 24-hour duty period that starts on "
                    "DUTY_DATE: the team and leader on duty, the period's figures, time-limit "
                    "(SLA) states at the end of the period, callbacks and satisfaction, the "
                    "first-visit fix rate, what each first-contact agent owns, and the "
                    "incidents handed over still open, oldest first. Reads the store "
                    "(--store) or folds event files in memory (--input).")
    parser.add_argument("duty_date", type=duty_date, metavar="DUTY_DATE",
                        help="the date the duty period starts on, e.g. 2026-07-02")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", nargs="+", metavar="FILE",
                        help="JSON Lines event files to fold in memory instead of a store")
    add_store_option(source)
    add_calendar_options(parser)
    parser.add_argument("--format", choices=SHEET_FORMATS, default="table",
                        help="table (default), markdown (paste into a ticket) or json")
    parser.add_argument("--rejects", metavar="PATH",
                        help="with --input: write rejected lines and reasons here (JSON Lines)")
    parser.add_argument("--output", "-o", metavar="PATH", help="write the sheet here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    calendar_given = args.duty_timezone is not None or args.duty_start is not None

    async def from_files() -> str:
        store = bootstrap.scratch_store(settings)
        rejects = RejectsFile(args.rejects)
        progress = ProgressLine()
        try:
            summary = await ingest_files(store, existing_files(args.input), on_rejected=rejects,
                                         progress=progress, batch_size=settings.batch_size)
        finally:
            rejects.close()
        progress.finish()
        if summary.rejected:
            print_summary(summary, "read")
        return render_sheet(await handover_sheet(store, args.duty_date), args.format)

    if not args.input:
        require_store(settings)

    async def from_store() -> str:
        async with bootstrap.read_model_store(settings) as store:
            sheet = await handover_sheet(store, args.duty_date,
                                         settings.calendar if calendar_given else None)
        return render_sheet(sheet, args.format)

    text = asyncio.run(from_files() if args.input else from_store())
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
