"""``dispatch worker``: the Faust projection worker (Kafka -> PostgreSQL read models)."""

from __future__ import annotations

import argparse
import logging
import sys

from dispatch.cli.common import add_sla_clock_option, settings_from
from dispatch.worker import WORKER_BATCH, tune_collector


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "worker", help="run the Faust worker: Kafka events -> PostgreSQL read models",
        description="Consume the events topic in batches with Faust, fold each batch with the "
                    "same projection as the embedded engine and write it to PostgreSQL in one "
                    "transaction together with the partition offsets (exactly-once effect). "
                    "Invalid messages go to the dead-letter topic. Run several in one consumer "
                    "group to share the partitions. Each batch also keeps the SLA state of its "
                    "incidents; a timer raises warnings and breaches as deadlines pass and "
                    "publishes every transition once to the alert topic (docs/sla.md). "
                    "Stop with Ctrl-C or SIGTERM.")
    parser.add_argument("--pg-dsn", metavar="DSN",
                        help="PostgreSQL DSN (env DISPATCH_PG_DSN)")
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help=f"max messages per batch (default {WORKER_BATCH:,})")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on 127.0.0.1:PORT (0: off; default 9108)")
    parser.add_argument("--instance-id", metavar="NAME",
                        help="static group membership name, stable per worker slot: a "
                             "restarted worker resumes at once (env DISPATCH_WORKER_INSTANCE_ID)")
    add_sla_clock_option(parser)
    parser.add_argument("--no-sla", action="store_true",
                        help="do not keep live SLA state nor publish alerts to the alert topic "
                             "(env DISPATCH_SLA_LIVE=false)")
    parser.add_argument("--log-level", default="warning",
                        choices=("debug", "info", "warning", "error"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import SecretStr

    from dispatch.kafka.metrics import WorkerMetrics
    from dispatch.kafka.topics import ensure_topics
    from dispatch.worker.faust_app import build_app

    settings = settings_from(args)
    updates: dict[str, object] = {}
    if args.pg_dsn:
        updates["pg_dsn"] = SecretStr(args.pg_dsn)
    if args.bootstrap:
        updates["kafka_bootstrap"] = args.bootstrap
    if args.instance_id:
        updates["worker_instance_id"] = args.instance_id
    if args.metrics_port is not None:
        updates["metrics_port"] = args.metrics_port
    if args.no_sla:
        updates["sla_live"] = False
    settings = settings.model_copy(update=updates)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dispatch").setLevel(logging.INFO)
    for chatty in ("kafka", "aiokafka"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.root.level))
    ensure_topics(settings)
    metrics = WorkerMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    app, _runtime = build_app(settings, batch_max=args.batch_size or WORKER_BATCH, metrics=metrics)
    import faust

    worker = faust.Worker(app, loglevel=args.log_level.upper(), quiet=True)
    tune_collector()
    worker.execute_from_commandline()
    return 0
