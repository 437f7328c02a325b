"""``dispatch export``: events and the per-incident read model as Parquet, by duty date."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from dispatch import bootstrap
from dispatch.cli.common import (
    RejectsFile,
    UserError,
    add_calendar_options,
    existing_files,
    require_store,
    settings_from,
)
from dispatch.settings import Settings
from projections.columnar import (
    ColumnarEvents,
    columnar_from_facts,
    export_parquet,
    load_columnar,
)
from projections.duty import DutyCalendar
from projections.runners.batch import load_store


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "export", help="write events and incidents as Parquet, partitioned by duty date",
        description="Write the accepted events (one copy each) to DIR/events and the "
                    "per-incident read model to DIR/incidents, as Parquet partitioned by duty "
                    "date (duty_date=YYYY-MM-DD folders), for DuckDB, pandas or Polars "
                    "(docs/history.md). The events come from JSON Lines files (validated like "
                    "`report --input`), from a store's event log, or straight from the Kafka "
                    "topic (validated like the worker does).")
    parser.add_argument("--to", dest="folder", required=True, metavar="DIR",
                        help="folder to write (created if missing)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", metavar="FILE", help="JSON Lines event files")
    source.add_argument("--store", metavar="URL",
                        help="a store's event log: sqlite:///PATH or postgresql://...")
    source.add_argument("--from-topic", nargs="?", const="", metavar="TOPIC",
                        help="the whole Kafka topic (default: the events topic)")
    parser.add_argument("--bootstrap", metavar="HOST:PORT",
                        help="with --from-topic: Kafka bootstrap servers")
    parser.add_argument("--rejects", metavar="PATH",
                        help="write rejected lines or messages and reasons here (JSON Lines)")
    add_calendar_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--to {folder}: not a folder")
    rejects = RejectsFile(args.rejects)
    calendar = settings.calendar
    try:
        if args.input:
            paths = existing_files(args.input)
            events = load_columnar(paths, on_rejected=rejects)
        elif args.store:
            settings = settings.model_copy(update={"store": args.store})
            require_store(settings)
            events, stored_calendar = asyncio.run(_from_store(settings))
            if args.duty_timezone is None and args.duty_start is None:
                calendar = stored_calendar  # the store's own duty periods
        else:
            events = _from_topic(args, settings, rejects)
    finally:
        rejects.close()
    folder.mkdir(parents=True, exist_ok=True)
    counts = export_parquet(events, calendar, folder)
    events.db.close()
    print(f"exported {counts['events']:,} events and {counts['incidents']:,} incidents to "
          f"{folder} ({events.rejected:,} rejected, {events.duplicates:,} duplicates)",
          file=sys.stderr)
    return 0


async def _from_store(settings: Settings) -> tuple[ColumnarEvents, DutyCalendar]:
    async with bootstrap.read_model_store(settings) as store:
        found = await load_store(store)
    return columnar_from_facts(found.facts, found.known, found.counters()), store.calendar


def _from_topic(args: argparse.Namespace, settings: Settings,
                rejects: RejectsFile) -> ColumnarEvents:
    """The whole topic read in bulk and validated by the columnar engine, chunk after
    chunk (as ``dispatch replay`` does): no store in between."""
    from dispatch.cli.replay import ReplayProgress
    from dispatch.kafka.log_reader import KafkaLog
    from projections.runners.replay import planned
    from projections.runners.replay_columnar import validate_log

    progress = ReplayProgress()
    try:
        with KafkaLog(args.bootstrap or settings.kafka_bootstrap,
                      args.from_topic or settings.topic_events) as log:
            events, rejected = validate_log(log, planned(log), progress)
    finally:
        progress.finish()
    for item in rejected:
        rejects(item)
    return events
