"""``dispatch replay``: rebuild the read models from the Kafka topic into a fresh store."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from dispatch import bootstrap
from dispatch.cli.common import (
    BadUsage,
    RejectsFile,
    UserError,
    add_calendar_options,
    settings_from,
)
from projections.history import parse_instant
from projections.runners.replay import ReplaySummary, StoreNotEmpty, replay

COLUMNAR_CHUNK = 200_000
"""Messages validated at a time by the columnar engine: larger chunks cost DuckDB less
(about 0.1 s a chunk), smaller ones start the store's copy sooner."""
EXACT_CHUNK = 50_000


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "replay", help="rebuild read models from the Kafka topic into a fresh store",
        description="Read the events topic from the start (or from --from-time) in bulk and "
                    "fold it into an empty store: the same validation, duplicates, conflicts "
                    "and read-model rows as the worker's projection. The offsets reached are "
                    "stored as `dispatch worker` stores them, in the same transaction, so a "
                    "worker started on the new store continues exactly there. Build the new "
                    "store beside the live one, then point the worker and `serve` at it "
                    "(docs/history.md).")
    parser.add_argument("--from-topic", nargs="?", const="", default=None, metavar="TOPIC",
                        required=True,
                        help="replay this topic (default: the events topic, "
                             "env DISPATCH_TOPIC_EVENTS)")
    parser.add_argument("--store", required=True, metavar="URL",
                        help="the new store: postgresql://USER:PW@HOST/DB or sqlite:///PATH; "
                             "it must hold no events")
    parser.add_argument("--from-time", metavar="T",
                        help="start at the first message whose Kafka timestamp is at or "
                             "after T (RFC 3339 with offset)")
    parser.add_argument("--to-time", metavar="T",
                        help="stop after the last message whose Kafka timestamp is at or "
                             "before T (default: the end of the topic when the replay starts)")
    parser.add_argument("--bootstrap", metavar="HOST:PORT",
                        help="Kafka bootstrap servers (env DISPATCH_KAFKA_BOOTSTRAP)")
    parser.add_argument("--group", metavar="NAME",
                        help="the worker's consumer group, under which the offsets are stored "
                             "(default: env DISPATCH_CONSUMER_GROUP, dispatch-projector)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted replay into a store that holds this "
                             "group's offsets, from those offsets")
    parser.add_argument("--rejects", metavar="PATH",
                        help="append rejected messages with their reasons here (JSON Lines)")
    parser.add_argument("--dead-letters", action="store_true",
                        help="also publish rejected messages to the dead-letter topic, as the "
                             "worker does (off by default: the live worker has sent them)")
    parser.add_argument("--engine", choices=("columnar", "exact"), default="columnar",
                        help="columnar (default): validated in DuckDB chunk after chunk while "
                             "the store copies the events, folded at the end, all in one "
                             "transaction (an interrupted replay leaves the store empty); "
                             "exact: the worker's projection, one transaction per chunk "
                             "(what --resume continues)")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="messages per chunk (default 200000 for the columnar engine, "
                             "50000 for the exact one, where each chunk is one transaction)")
    parser.add_argument("--parse-workers", type=int, default=0, metavar="N",
                        help="exact engine: processes validating ahead (default 0: in this "
                             "process, which measured faster on a busy 2-core machine)")
    add_calendar_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.batch_size is None:
        args.batch_size = COLUMNAR_CHUNK if args.engine == "columnar" else EXACT_CHUNK
    if args.batch_size < 1:
        raise BadUsage("--batch-size must be at least 1")
    if args.parse_workers < 0:
        raise BadUsage("--parse-workers must be 0 or more")
    instants = {}
    for option, value in (("--from-time", args.from_time), ("--to-time", args.to_time)):
        if value is not None:
            try:
                instants[option] = parse_instant(value)
            except ValueError as exc:
                raise BadUsage(f"{option}: {exc}") from None
    from_us, to_us = instants.get("--from-time"), instants.get("--to-time")
    if from_us is not None and to_us is not None and from_us > to_us:
        raise BadUsage(f"--from-time {args.from_time} is after --to-time {args.to_time}")
    topic = args.from_topic or settings.topic_events
    bootstrap_servers = args.bootstrap or settings.kafka_bootstrap
    group = args.group or settings.consumer_group
    workers = args.parse_workers
    store = bootstrap.read_model_store(settings, args.store)
    rejects = RejectsFile(args.rejects)
    bar = ReplayProgress()

    async def work() -> ReplaySummary:
        from dispatch.kafka.log_reader import KafkaLog

        dead_letters = None
        if args.dead_letters:
            dead_letters = bootstrap.dead_letters(
                settings.model_copy(update={"kafka_bootstrap": bootstrap_servers}))
            await dead_letters.start()
        try:
            async with store:
                with KafkaLog(bootstrap_servers, topic) as log:
                    return await replay(store, log, group, from_us=from_us, to_us=to_us,
                                        resume=args.resume, chunk=args.batch_size,
                                        columnar=args.engine == "columnar",
                                        parse_workers=workers, on_rejected=rejects,
                                        dead_letters=dead_letters, progress=bar)
        finally:
            if dead_letters is not None:
                await dead_letters.stop()

    try:
        summary = asyncio.run(work())
    except StoreNotEmpty as exc:
        raise UserError(f"{args.store}: {exc}") from None
    finally:
        rejects.close()
        bar.finish()
    rate = summary.messages / summary.seconds if summary.seconds else 0.0
    print(f"replayed {summary.messages:,} messages of {topic} in {summary.seconds:.1f}s "
          f"({rate:,.0f}/s): {summary.accepted:,} accepted, {summary.duplicates:,} duplicate, "
          f"{summary.rejected:,} rejected, {summary.conflicts:,} conflicting; offsets stored "
          f"for group {group}: {_offsets(summary.stop)}; seconds in each step "
          f"({'they overlap' if 'store' in summary.phases else 'waited for'}): "
          + ", ".join(f"{k} {v:.1f}" for k, v in summary.phases.items()), file=sys.stderr)
    return 0


def _offsets(stops: dict[int, int]) -> str:
    return " ".join(f"{p}:{o}" for p, o in sorted(stops.items())) or "(no partitions)"


class ReplayProgress:
    """A progress bar with rate and ETA on stderr: redrawn in place on a terminal,
    else one line every 10 %."""

    def __init__(self, terminal: bool | None = None) -> None:
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.started = time.perf_counter()
        self.last = 0.0
        self.step = -1
        self.doing = ""
        self.drawn = False

    def __call__(self, summary: ReplaySummary) -> None:
        now = time.perf_counter()
        share = summary.messages / summary.total if summary.total else 1.0
        moved = summary.step != self.doing
        if self.terminal:
            if now - self.last < 0.2 and share < 1.0 and not moved:
                return
        elif int(share * 10) == self.step and not moved:
            return
        self.last, self.step, self.doing = now, int(share * 10), summary.step
        elapsed = max(now - self.started, 1e-9)
        rate = summary.messages / elapsed
        left = (summary.total - summary.messages) / rate if rate else 0.0
        bar = "#" * int(share * 30)
        line = (f"replay [{bar:<30}] {share:4.0%} {summary.messages:,}/{summary.total:,} "
                f"{rate:,.0f} msg/s ETA {_clock(left)}")
        if summary.step:  # the columnar engine, after its last chunk
            line = (f"replay: {summary.messages:,} messages read; {summary.step} "
                    f"({_clock(elapsed)} since the start)")
        if self.terminal:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
            self.drawn = True
        else:
            print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.drawn:
            print(file=sys.stderr)


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
