"""``dispatch demo``: a normal duty day and a storm day, end to end, on a fresh embedded store."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from dispatch import bootstrap
from dispatch.cli.alerts import render as render_alerts
from dispatch.cli.common import ProgressLine, RejectsFile, print_summary, settings_from
from dispatch.cli.render import render
from dispatch.cli.sheet import SHEET_FORMATS, render_sheet
from dispatch.simulation import SimulationPlan, simulate_lines, write_jsonl
from projections.queries import duty_report, handover_sheet
from projections.runners.embedded import ingest_files
from projections.sla import alerts_document

START = date(2026, 7, 1)
STORM_DAY = START + timedelta(days=1)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "demo", help="simulate a normal day and a storm day; print the duty report, the "
                     "storm day's handover sheet and its SLA alerts",
        description="Simulate two duty days (a normal one, then a storm with many calls per "
                    "outage, saturated crews, duplicates and shuffled late events), ingest "
                    "them into a fresh embedded SQLite store and print the duty report, then "
                    "(table and markdown formats) the storm day's handover sheet and the SLA "
                    "alerts still active when it was handed over.")
    parser.add_argument("--dir", metavar="PATH",
                        help="keep the events file and store here (default: a temporary "
                             "folder that is removed afterwards)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--format", choices=("table", "markdown", "json", "csv"),
                        default="table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.dir:
        folder = Path(args.dir)
        folder.mkdir(parents=True, exist_ok=True)
        return _demo(folder, args)
    with tempfile.TemporaryDirectory(prefix="dispatch-demo-") as tmp:
        return _demo(Path(tmp), args)


def _demo(folder: Path, args: argparse.Namespace) -> int:
    events = folder / "demo-events.jsonl"
    store_path = folder / "demo.db"
    for stale in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        stale.unlink(missing_ok=True)
    settings = settings_from(args)
    plan = SimulationPlan(seed=args.seed, start=START, days=2, storm_days=(1,),
                          duplicate_rate=0.02, shuffle=True, late_rate=0.01, skew_rate=0.01,
                          malformed_rate=0.001, duty_timezone=settings.duty_timezone,
                          duty_start=settings.duty_start_time)
    count = write_jsonl(simulate_lines(plan), events)
    print(f"simulated {count:,} lines (normal day 2026-07-01, storm day 2026-07-02) "
          f"into {events}", file=sys.stderr)
    store = bootstrap.read_model_store(settings, f"sqlite:///{store_path}")
    rejects = RejectsFile(None)

    async def work() -> str:
        async with store:
            summary = await ingest_files(store, [events], on_rejected=rejects,
                                         progress=ProgressLine())
            print_summary(summary)
            text = render(await duty_report(store), args.format)
            if args.format in SHEET_FORMATS and args.format != "json":
                # People's formats: the storm day's handover sheet follows the report,
                # then the SLA alerts still active when that day was handed over.
                sheet = await handover_sheet(store, STORM_DAY)
                text += "\n" + render_sheet(sheet, args.format)
                handed_over = store.calendar.bounds(STORM_DAY)[1]
                incidents = [i async for i in store.all_incidents()]
                document = alerts_document(incidents, handed_over, store.sla_limits)
                text += "\n" + render_alerts(document, args.format, store.sla_limits)
            return text

    sys.stdout.write(asyncio.run(work()))
    if args.dir:
        print(f"store kept at {store_path}; try: dispatch incident ID --store "
              f"sqlite:///{store_path}", file=sys.stderr)
    return 0
