"""What the subcommands share: settings from options, errors, progress, rejects."""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from dispatch.settings import Settings
from projections.ports import Rejected
from projections.runners.embedded import IngestSummary


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 1."""


class BadUsage(UserError):
    """Bad options or settings: printed as one line, exit code 2."""


def add_calendar_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duty-timezone", metavar="TZ",
                        help="IANA zone of the duty periods (default Asia/Shanghai, "
                             "env DISPATCH_DUTY_TIMEZONE)")
    parser.add_argument("--duty-start", metavar="HH:MM",
                        help="local time each 24-hour duty period starts (default 08:30)")


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL",
                        help="read-model store: sqlite:///PATH (default sqlite:///dispatch.db "
                             "in the working directory) or postgresql://USER:PW@HOST/DB "
                             "(env DISPATCH_STORE)")


def add_sla_clock_option(parser: argparse.ArgumentParser, default: str = "wall") -> None:
    parser.add_argument("--sla-clock", choices=("wall", "event"),
                        help="what 'now' is for SLA deadlines: the wall clock or the largest "
                             f"occurred_at seen (default {default}; env DISPATCH_SLA_CLOCK)")


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings object, with command-line options overriding env and file."""
    overrides: dict[str, Any] = {}
    for option in ("store", "duty_timezone", "duty_start", "batch_size", "sla_clock"):
        value = getattr(args, option, None)
        if value is not None:
            overrides[option] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if not field:  # a rule across settings names its keys in the message
            raise BadUsage(f"bad settings: {message}") from None
        if message.startswith(f"{field}."):
            raise BadUsage(f"bad setting {message}") from None  # names the key itself
        raise BadUsage(f"bad setting {field}: {message}") from None
    except ValueError as exc:
        raise BadUsage(str(exc)) from None


def require_store(settings: Settings) -> None:
    """Refuse to read an SQLite store that does not exist (opening would create it)."""
    if settings.store.startswith("sqlite:///"):
        path = Path(settings.store.removeprefix("sqlite:///"))
        if not path.is_file():
            raise UserError(f"no store at {path}: run `dispatch ingest FILE` first, "
                            "or pass --input FILE or --store URL")


def existing_files(names: list[str]) -> list[Path]:
    paths = [Path(n) for n in names]
    for path in paths:
        if not path.is_file():
            raise UserError(f"cannot read {path}: no such file")
    return paths


class RejectsFile:
    """Rejected lines as JSON Lines: where, why, and the original text."""

    def __init__(self, path: str | None) -> None:
        self.stream: IO[bytes] | None = open(path, "ab") if path else None  # noqa: SIM115
        self.shown = 0

    def __call__(self, rejected: Rejected) -> None:
        if self.shown < 5:
            print(f"rejected {rejected.record.label}: {rejected.reason}", file=sys.stderr)
        elif self.shown == 5:
            print("(more rejected lines: see --rejects)", file=sys.stderr)
        self.shown += 1
        if self.stream is None:
            return
        row: dict[str, Any] = {"where": rejected.record.label, "reason": rejected.reason}
        try:
            row["raw"] = rejected.record.raw.decode("utf-8")
        except UnicodeDecodeError:
            row["raw_base64"] = base64.b64encode(rejected.record.raw).decode("ascii")
        self.stream.write(orjson.dumps(row) + b"\n")

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


class ProgressLine:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, name: str, done: int, total: int, summary: IngestSummary) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        rate = summary.lines / max(now - self.started, 1e-9)
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        print(f"\r{name} [{bar:<30}] {share:4.0%} {summary.lines:,} lines "
              f"{rate:,.0f}/s", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled and self.last:
            print(file=sys.stderr)


def print_summary(summary: IngestSummary, verb: str = "ingested") -> None:
    rate = summary.lines / summary.seconds if summary.seconds else 0.0
    print(f"{verb} {summary.lines:,} lines in {summary.seconds:.2f}s ({rate:,.0f} lines/s): "
          f"{summary.accepted:,} accepted, {summary.duplicates:,} duplicate, "
          f"{summary.rejected:,} rejected"
          + (f", {summary.conflicts:,} conflicting" if summary.conflicts else ""),
          file=sys.stderr)
    for notice in summary.rewritten + summary.held_back:
        print(notice, file=sys.stderr)
    if summary.skipped_lines:
        print(f"left out {summary.skipped_lines:,} lines that another ingest running at the "
              "same time committed first", file=sys.stderr)
    if summary.skipped_bytes:
        print(f"resumed after {summary.skipped_bytes:,} bytes already ingested "
              "(use --from-start to read files again)", file=sys.stderr)
