"""``dispatch produce``: publish JSON Lines event files to Kafka, validated on the way in."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dispatch import bootstrap
from dispatch.cli.common import RejectsFile, existing_files, settings_from
from projections.ports import Record, Rejected
from projections.runners.files import read_records

if TYPE_CHECKING:
    from confluent_kafka import Producer

    from dispatch.kafka.producer import ProduceSummary


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "produce", help="publish JSON Lines event files to the Kafka events topic",
        description="Validate each line and publish it to the events topic (default "
                    "outage.events) keyed by incident_id; invalid lines go to the dead-letter "
                    "topic with a `reason` header. Creates the topics if missing. Broker from "
                    "DISPATCH_KAFKA_BOOTSTRAP (default 127.0.0.1:9092).")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument("--rejects", metavar="PATH",
                        help="also append rejected lines with reasons here (JSON Lines)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the Kafka clients are heavy, and the embedded commands never need them.

    from dispatch.kafka.topics import ensure_topics

    settings = settings_from(args)
    if args.bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap": args.bootstrap})
    paths = existing_files(args.files)
    rejects = RejectsFile(args.rejects)
    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(name: str, done: int, total: int, lines: int) -> None:
        now = time.perf_counter()
        if tty and now - last[0] > 0.2:
            last[0] = now
            print(f"\r{name}: {done / max(total, 1):4.0%} {lines:,} lines", end="",
                  file=sys.stderr, flush=True)

    try:
        ensure_topics(settings)
        summary = produce_files(paths, bootstrap.event_producer(settings), settings.topic_events,
                                settings.topic_dlq, on_rejected=rejects, progress=progress)
    finally:
        rejects.close()
    if tty:
        print(file=sys.stderr)
    rate = summary.lines / summary.seconds if summary.seconds else 0.0
    print(f"produced {summary.lines:,} lines in {summary.seconds:.2f}s ({rate:,.0f} lines/s): "
          f"{summary.published:,} published to {settings.topic_events}, {summary.rejected:,} "
          f"rejected to {settings.topic_dlq}", file=sys.stderr)
    return 0


def produce_files(
    paths: Sequence[Path], producer: Producer, topic: str, dlq_topic: str,
    on_rejected: Callable[[Rejected], None] | None = None,
    progress: Callable[[str, int, int, int], None] | None = None,
) -> ProduceSummary:
    """Publish the lines of ``paths``, in order (see ``produce_records``);
    ``progress(file name, bytes done, file size, lines so far)`` after each batch."""
    from dispatch.kafka.producer import produce_records

    current: list[tuple[str, int]] = [("", 0)]

    def batches() -> Iterator[list[Record]]:
        for path in paths:
            current[0] = (path.name, path.stat().st_size)
            yield from read_records(path, f"file:{path}")

    def on_batch(records: Sequence[Record], summary: ProduceSummary) -> None:
        if progress is not None:
            name, size = current[0]
            progress(name, records[-1].next_position, size, summary.lines)

    return produce_records(batches(), producer, topic, dlq_topic, on_rejected, on_batch)
