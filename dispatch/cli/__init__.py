"""The ``dispatch`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

_STARTED_BY = os.getpid()


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _STARTED_BY:
        return  # a process forked from this one (a parse worker): the command decides
    # Nothing has been done yet: leave at once, quietly, as main() would.
    print("dispatch: interrupted", file=sys.stderr)
    os._exit(130)


if (sys.argv and (os.path.basename(sys.argv[0]) == "dispatch" or sys.argv[0] == "-m")
        and not {"multiprocessing.forkserver", "multiprocessing.spawn"} & sys.modules.keys()):
    # Run as the command (console script or ``python -m``), not imported by a test or
    # by a worker process: Ctrl-C during the imports below (most of a second) must not
    # print a traceback.
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import argparse  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from dispatch.cli import (  # noqa: E402
    alerts,
    compare,
    demo,
    export,
    handover,
    incident,
    ingest,
    produce,
    reliability,
    replay,
    report,
    roster,
    serve,
    simulate,
    topics,
    worker,
)
from dispatch.cli.common import BadUsage, UserError  # noqa: E402
from projections.ports import StoreError  # noqa: E402

SUBCOMMANDS = (demo, ingest, report, handover, compare, reliability, export, replay, incident,
               alerts, simulate, topics, produce, worker, serve, roster)
OWN_SIGNALS = frozenset({"worker", "serve"})
"""Commands whose framework (Faust, uvicorn) handles Ctrl-C itself."""


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
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        sys.stdout = _ClosedOutput()
    if args.command not in OWN_SIGNALS:
        # Ctrl-C stops at once, wherever the process is: every commit is one
        # transaction, so an interrupted batch leaves nothing behind. (asyncio's own
        # handler would only cancel the task, which a long synchronous step ignores.)
        signal.signal(signal.SIGINT, _interrupt)
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # here, so that a closed pipe is reported now, not at exit
        return code
    except BadUsage as exc:
        print(f"dispatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except (UserError, StoreError) as exc:
        # StoreError covers StoreUnavailable: the adapters translate their drivers'
        # errors (PostgreSQL, Kafka) into it, naming the server without its password.
        print(f"dispatch {args.command}: {redact(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`dispatch incident X | head -1`): not a failure.
        _discard_stdout()
        return 0
    except OSError as exc:  # missing folders, permissions
        where = f": {exc.filename}" if exc.filename else ""
        print(f"dispatch {args.command}: {redact(str(exc.strerror or exc))}{where}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        print(f"dispatch {args.command}: interrupted; every batch committed before is kept, "
              "nothing of the interrupted one was written", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's final flush of what
    is still buffered does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


class _ClosedOutput(io.TextIOBase):
    """Standard output when the process was started without one: writing fails
    with a clear one-line error instead of being silently lost."""

    def write(self, text: str) -> int:
        raise UserError("standard output is closed: nothing can be printed "
                        "(reopen it, or write to a file where the command offers --output)")

    def flush(self) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
