"""``dispatch alerts``: SLA state (arrival and restoration limits) as of an instant."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from dispatch import bootstrap
from dispatch.cli.common import (
    BadUsage,
    ProgressLine,
    RejectsFile,
    add_store_option,
    existing_files,
    print_summary,
    require_store,
    settings_from,
)
from projections.history import parse_instant
from projections.incident import Incident
from projections.runners.embedded import ingest_files
from projections.sla import RULES, STATES, SlaLimits, alerts_document

FORMATS = ("json", "table", "markdown")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "alerts", help="SLA alerts: incidents near or past their arrival/restoration limit",
        description="Print the SLA state as of an instant (docs/sla.md): the active warnings "
                    "(75 %% of the limit passed) and breaches sorted by deadline, and per rule "
                    "the number of incidents in each state (ok, warning, breach, met, late, "
                    "anomaly). Only events that occurred at or before --as-of count. Limits "
                    "come from the [sla] settings.")
    parser.add_argument("--input", nargs="+", metavar="FILE",
                        help="JSON Lines event files to fold in memory instead of a store")
    add_store_option(parser)
    parser.add_argument("--as-of", metavar="T",
                        help="RFC 3339 instant with offset, e.g. 2026-07-01T10:00:00+08:00 "
                             "(default: now)")
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json (the contract, default), or table/markdown for people")
    parser.add_argument("--rejects", metavar="PATH",
                        help="with --input: write rejected lines and reasons here (JSON Lines)")
    parser.set_defaults(run=run)


def parse_as_of(text: str) -> int:
    """``--as-of`` as µs since the epoch; BadUsage (exit 2) naming the option."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise BadUsage(f"--as-of: {exc}") from None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.input and args.store:
        raise BadUsage("give either --input FILE or --store URL, not both")
    as_of = parse_as_of(args.as_of) if args.as_of else time.time_ns() // 1000
    limits = settings.sla_limits

    async def from_files() -> list[Incident]:
        store = bootstrap.scratch_store(settings)
        rejects = RejectsFile(args.rejects)
        progress = ProgressLine()
        try:
            summary = await ingest_files(store, existing_files(args.input),
                                         on_rejected=rejects, progress=progress,
                                         batch_size=settings.batch_size)
        finally:
            rejects.close()
        progress.finish()
        if summary.rejected:
            print_summary(summary, "read")
        return [i async for i in store.all_incidents()]

    async def from_store() -> list[Incident]:
        async with bootstrap.read_model_store(settings) as store:
            return [i async for i in store.all_incidents()]

    if not args.input:
        require_store(settings)
    incidents = asyncio.run(from_files() if args.input else from_store())
    sys.stdout.write(render(alerts_document(incidents, as_of, limits), args.format, limits))
    return 0


def render(document: dict[str, Any], fmt: str, limits: SlaLimits) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    header = ["deadline", "level", "rule", "incident", "grid", "area", "priority", "owner",
              "limit min", "start"]
    rows = [[a["deadline"], a["level"], a["rule"], a["incident_id"], a["grid"] or "-",
             a["area"] or "-", a["priority"] or "-", a["owner"] or "-",
             f"{a['limit_minutes']:g}", a["start"]] for a in document["active"]]
    count_header = ["rule", *STATES]
    count_rows = [[rule, *(str(document["counts"][rule][s]) for s in STATES)] for rule in RULES]
    title = f"SLA alerts as of {document['as_of']}: {len(rows)} active"
    if fmt == "markdown":
        return "\n".join([f"**{title}**", "", *_markdown(header, rows), "",
                          *_markdown(count_header, count_rows)]) + "\n"
    return "\n".join([title, "", *_table(header, rows), "", *_table(count_header, count_rows),
                      "", _limits_line(limits)]) + "\n"


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _limits_line(limits: SlaLimits) -> str:
    parts = []
    for rule in RULES:
        by_area = ", ".join(f"{a} {m:g}" for a, m in limits.by_area[rule].items())
        cap = limits.priority.get(rule)
        extra = f"; {'/'.join(limits.priorities)} at most {cap:g}" if cap is not None else ""
        parts.append(f"{rule}: {by_area} min{extra}")
    return "limits: " + " | ".join(parts)

