"""``dispatch compare``: two duty-date ranges side by side, per stage and for restoration."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from typing import Any

from dispatch.cli.common import BadUsage, add_calendar_options, add_store_option, settings_from
from dispatch.cli.history import (
    add_source_options,
    add_window_options,
    fold_source,
    say_empty,
    window_from,
)
from projections.history import Window, compare, parse_range, restrict
from projections.incident import STAGES
from projections.report import build_report


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "compare", help="compare two duty-date ranges (e.g. year over year)",
        description="Print, per six-fast stage and for the average restoration time, the "
                    "mean minutes over two ranges of duty dates and the change in percent "
                    "(negative: faster). Both ranges come from one fold of the same events.")
    parser.add_argument("--base", required=True, metavar="FROM..TO",
                        help="the range compared against, e.g. 2025-07-01..2025-07-31")
    parser.add_argument("--against", required=True, metavar="FROM..TO",
                        help="the range compared, e.g. 2026-07-01..2026-07-31")
    add_source_options(parser)
    add_store_option(parser)
    add_calendar_options(parser)
    add_window_options(parser, dates=False)
    parser.add_argument("--format", choices=("json", "table", "markdown"), default="json",
                        help="json (default), or table/markdown for people")
    parser.set_defaults(run=run)


def _range(option: str, text: str) -> tuple[date, date]:
    try:
        return parse_range(text)
    except ValueError as exc:
        raise BadUsage(f"{option}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    base_range = _range("--base", args.base)
    against_range = _range("--against", args.against)
    window = window_from(args)
    calendar_given = args.duty_timezone is not None or args.duty_start is not None
    folded = asyncio.run(fold_source(args, settings, window, calendar_given))
    reports = [build_report(restrict(folded.totals, Window(first, last)), folded.counters,
                            folded.calendar) for first, last in (base_range, against_range)]
    for name, report, (first, last) in zip(("--base", "--against"), reports,
                                           (base_range, against_range), strict=True):
        if not report["duty_periods"]:
            say_empty(f"{name} {first}..{last} has no duty period with calls or incidents")
    result = compare(reports[0], reports[1], base_range, against_range)
    if window.filters_events:
        result["window"] = window.describe(folded.calendar)
    sys.stdout.write(render(result, args.format))
    return 0


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} %"


def render(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    base, against = result["base"], result["against"]
    header = ["", f"base {base['from']}..{base['to']}",
              f"against {against['from']}..{against['to']}", "change"]
    rows = [[f"{stage} (mean min)", _minutes(v["base"]), _minutes(v["against"]),
             _percent(v["change_percent"])]
            for stage, v in ((s, result["stages"][s]) for s in STAGES)]
    v = result["avg_restoration_minutes"]
    rows.append(["avg restoration (min)", _minutes(v["base"]), _minutes(v["against"]),
                 _percent(v["change_percent"])])
    rows.append(["incidents", str(result["incidents"]["base"]),
                 str(result["incidents"]["against"]), ""])
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([line(header), line(["-" * w for w in widths]),
                      *(line(r) for r in rows)]) + "\n"
