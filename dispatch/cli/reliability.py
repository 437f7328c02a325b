"""``dispatch reliability``: IEEE 1366 SAIFI, SAIDI, CAIDI and major event days."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any

from dispatch.cli.common import (
    BadUsage,
    UserError,
    add_calendar_options,
    add_store_option,
    settings_from,
)
from dispatch.cli.history import (
    add_source_options,
    add_window_options,
    fold_source,
    say_empty,
    window_from,
)
from projections.history import reliability


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "reliability", help="IEEE 1366 indices (SAIFI, SAIDI, CAIDI, major event days)",
        description="Print IEEE 1366 reliability indices over sustained interruptions "
                    "(outage incidents restored at least 5 minutes after the first call; "
                    "customers from that call's customers_affected, 1 if missing): SAIFI, "
                    "SAIDI (minutes) and CAIDI per duty date and overall, major event days "
                    "by the 2.5 beta method, and the indices without them.")
    served = parser.add_mutually_exclusive_group(required=True)
    served.add_argument("--customers-served", type=int, metavar="N",
                        help="customers served by the whole system")
    served.add_argument("--customers-file", metavar="PATH",
                        help="customers served per grid: CSV with columns grid,customers "
                             "(or a JSON object grid -> count); adds per-grid indices")
    add_source_options(parser)
    add_store_option(parser)
    add_calendar_options(parser)
    add_window_options(parser)
    parser.add_argument("--format", choices=("json", "table", "markdown"), default="json",
                        help="json (default), or table/markdown for people")
    parser.set_defaults(run=run)


def customers_by_grid(path: str) -> dict[str, int]:
    """Per-grid customer counts from a CSV (grid,customers) or JSON object file."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"cannot read {file}: no such file")
    text = file.read_text(encoding="utf-8")
    counts: dict[str, Any]
    if text.lstrip().startswith("{"):
        try:
            counts = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{file}: not valid JSON: {exc}") from None
    else:
        counts = {}
        for n, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or (n == 1 and row[0].strip().lower() == "grid"):
                continue
            if len(row) != 2:
                raise UserError(f"{file}:{n}: expected two columns grid,customers")
            counts[row[0].strip()] = row[1].strip()
    out: dict[str, int] = {}
    for grid, value in counts.items():
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise UserError(f"{file}: grid {grid!r}: customers must be a whole number, "
                            f"got {value!r}") from None
        if number < 1:
            raise BadUsage(f"{file}: grid {grid!r}: customers served must be at least 1")
        out[grid] = number
    if not out:
        raise BadUsage(f"{file}: no grid customer counts")
    return out


def run(args: argparse.Namespace) -> int:
    if args.customers_served is not None and args.customers_served < 1:
        raise BadUsage(f"--customers-served must be at least 1, got {args.customers_served}")
    settings = settings_from(args)
    window = window_from(args)
    grids = customers_by_grid(args.customers_file) if args.customers_file else None
    served = args.customers_served if grids is None else sum(grids.values())
    calendar_given = args.duty_timezone is not None or args.duty_start is not None
    folded = asyncio.run(fold_source(args, settings, window, calendar_given,
                                     need_incidents=True))
    try:
        result = reliability(folded.incidents, folded.calendar, window, served, grids)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not window.is_everything:
        result["window"] = window.describe(folded.calendar)
    if not result["daily"]:
        say_empty("no sustained interruption in the window")
    sys.stdout.write(render(result, args.format))
    return 0


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    header = ["", "SAIFI", "SAIDI min", "CAIDI min"]
    rows = [[day, _number(v["saifi"]), _number(v["saidi"], 2), ""]
            for day, v in result["daily"].items()]
    for label, key in (("overall", "overall"), ("without major events",
                                                "excluding_major_events")):
        v = result[key]
        rows.append([label, _number(v["saifi"]), _number(v["saidi"], 2),
                     _number(v["caidi"], 2)])
    major = ", ".join(result["major_event_days"]) or "none"
    footer = (f"customers served {result['customers_served']:,}; T_MED "
              f"{_number(result['t_med'], 2)} min; major event days: {major}")
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + \
            f"\n\n{footer}\n"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([line(header), line(["-" * w for w in widths]),
                      *(line(r) for r in rows)]) + f"\n{footer}\n"
