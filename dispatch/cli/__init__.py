"""The ``dispatch`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from dispatch.cli import (
    alerts,
    demo,
    handover,
    incident,
    ingest,
    produce,
    report,
    roster,
    serve,
    simulate,
    topics,
    worker,
)
from dispatch.cli.common import BadUsage, UserError
from projections.ports import StoreError

SUBCOMMANDS = (demo, ingest, report, handover, incident, alerts, simulate, topics, produce,
               worker, serve, roster)


def redact(text: str) -> str:
    """Hide passwords in URLs (``scheme://user:secret@host``)."""
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="dispatch",
        description="Event-sourced outage-repair dispatch engine: folds fault calls, crew "
                    "dispatch and restoration events into six-fast stage durations, average "
                    "restoration time and 24-hour duty-period accountability.",
        epilog="Start with `dispatch demo`. Settings also come from DISPATCH_* environment "
               "variables and the TOML file named by DISPATCH_CONFIG. The contract (events, "
               "KPIs and duty periods, the report) is described in docs/README.md.")
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except BadUsage as exc:
        print(f"dispatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except (UserError, StoreError) as exc:
        # StoreError covers StoreUnavailable: the adapters translate their drivers'
        # errors (PostgreSQL, Kafka) into it, naming the server without its password.
        print(f"dispatch {args.command}: {redact(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:  # missing folders, permissions
        where = f": {exc.filename}" if exc.filename else ""
        print(f"dispatch {args.command}: {redact(str(exc.strerror or exc))}{where}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dispatch {args.command}: interrupted; committed batches are kept",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
