"""``dispatch topics``: create the Kafka topics if they are missing."""

from __future__ import annotations

import argparse
import sys

from dispatch.cli.common import settings_from


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "topics", help="create the Kafka topics (events, dead letters, SLA alerts) if missing",
        description="Create the events topic (DISPATCH_PARTITIONS partitions, default 6, "
                    "unlimited retention: it is the source of truth), its dead-letter topic and "
                    "the SLA alerts topic, if they do not exist yet.")
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dispatch.kafka.topics import ensure_topics

    settings = settings_from(args)
    if args.bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap": args.bootstrap})
    created = ensure_topics(settings)
    print(f"created: {', '.join(created)}" if created else "all topics exist", file=sys.stderr)
    return 0
