"""``dispatch report``: the duty report (docs/report.md) from a store or from files, for
any window of duty dates, occurrence time or knowledge time (docs/history.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from dispatch.cli.common import add_calendar_options, add_store_option, settings_from
from dispatch.cli.history import (
    Folded,
    add_source_options,
    add_window_options,
    fold_source,
    say_empty,
    window_from,
)
from dispatch.cli.render import FORMATS, render
from projections.history import Window, restrict
from projections.report import Report, build_report


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report", help="print the duty report (per-stage durations, restoration, duty periods)",
        description="Print the duty report (docs/report.md): per duty period the calls, "
                    "incidents, restored, open at handover, mean minutes of each six-fast "
                    "stage and the average restoration time. Reads the store (--store) or, "
                    "with --input, folds event files in memory without touching any store. "
                    "Other --duty-timezone/--duty-start values re-cut the stored incidents. "
                    "--from/--to report a range of duty dates; --as-of and --known-at fold "
                    "only the events that had occurred, or had been recorded, by then "
                    "(docs/history.md).")
    add_source_options(parser)
    add_store_option(parser)
    add_calendar_options(parser)
    add_window_options(parser)
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json (the contract, default), or table/csv/markdown for people")
    parser.add_argument("--output", "-o", metavar="PATH", help="write the report here")
    parser.set_defaults(run=run)


def report_document(folded: Folded, window: Window) -> Report:
    """The report of one fold for ``window`` (also what ``/api/report`` answers)."""
    report = build_report(restrict(folded.totals, window), folded.counters, folded.calendar,
                          folded.shifts,
                          folded.incidents if folded.handover is None else folded.handover)
    if not window.is_everything:
        report["window"] = window.describe(folded.calendar)
    return report


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    window = window_from(args)
    calendar_given = args.duty_timezone is not None or args.duty_start is not None
    folded = asyncio.run(fold_source(args, settings, window, calendar_given))
    report = report_document(folded, window)
    if not window.is_everything and not report["duty_periods"]:
        say_empty("no duty period in the window has calls or incidents")
    text = render(report, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
