"""What ``report``, ``compare`` and ``reliability`` share: where the events come from,
which of them count (the window), and one fold over them."""

from __future__ import annotations

import argparse
import atexit
import gc
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch import bootstrap
from dispatch.cli.common import (
    BadUsage,
    ProgressLine,
    RejectsFile,
    UserError,
    existing_files,
    print_summary,
    require_store,
)
from dispatch.settings import Settings
from projections.columnar import NotColumnar, fold_columnar, load_columnar
from projections.duty import DutyCalendar
from projections.history import Window, parse_duty_date, parse_instant
from projections.incident import Fact, Incident
from projections.ports import ProjectionStore
from projections.report import recut
from projections.runners.batch import fold_history, load_store
from projections.runners.embedded import IngestSummary, ingest_files
from projections.totals import Bucket, Totals


def add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", nargs="+", metavar="FILE",
                        help="JSON Lines event files to fold in memory instead of a store")
    parser.add_argument("--rejects", metavar="PATH",
                        help="with --input: write rejected lines and reasons here (JSON Lines)")
    parser.add_argument("--strict", action="store_true",
                        help="with --input: exit 1 at the first rejected line")
    parser.add_argument("--engine", choices=("exact", "columnar"), default="exact",
                        help="with --input: exact (default: the contract line by line, as "
                             "`dispatch ingest`) or columnar (DuckDB, faster on large files; "
                             "differs on a few malformed inputs, docs/history.md)")


def add_window_options(parser: argparse.ArgumentParser, dates: bool = True) -> None:
    if dates:
        parser.add_argument("--from", dest="first", metavar="DUTY_DATE",
                            help="first duty date reported (YYYY-MM-DD, inclusive)")
        parser.add_argument("--to", dest="last", metavar="DUTY_DATE",
                            help="last duty date reported (YYYY-MM-DD, inclusive)")
    parser.add_argument("--as-of", metavar="T",
                        help="only events that occurred at or before T (RFC 3339 with offset)")
    parser.add_argument("--known-at", metavar="T",
                        help="only events recorded at or before T: what the control room "
                             "knew then (RFC 3339 with offset)")


def window_from(args: argparse.Namespace) -> Window:
    """The window the options ask for; BadUsage (exit 2) naming the bad option."""
    def parsed(option: str, value: str | None, parse: Callable[[str], Any]) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise BadUsage(f"{option}: {exc}") from None

    first = parsed("--from", getattr(args, "first", None), parse_duty_date)
    last = parsed("--to", getattr(args, "last", None), parse_duty_date)
    if first is not None and last is not None and first > last:
        raise BadUsage(f"--from {first} is after --to {last}")
    return Window(first, last, parsed("--as-of", args.as_of, parse_instant),
                  parsed("--known-at", args.known_at, parse_instant))


@dataclass(slots=True)
class Folded:
    """One fold's results, under one duty calendar."""

    calendar: DutyCalendar
    totals: dict[Bucket, Totals]
    counters: dict[str, int]
    incidents: list[Incident] = field(default_factory=list)
    shifts: list[Fact] = field(default_factory=list)
    """Shift starts (for the report's accountability)."""
    handover: list[Incident] | None = None
    """At least the incidents open at the end of their period (None: ``incidents``)."""


async def fold_source(args: argparse.Namespace, settings: Settings, window: Window,
                      calendar_given: bool, need_incidents: bool = False) -> Folded:
    """Fold ``--input`` files or the ``--store`` for ``window`` (one fold either way)."""
    if args.input and args.store:
        raise UserError("give either --input FILE or --store URL, not both")
    if args.input:
        paths = existing_files(args.input)
        if args.engine == "columnar":
            try:
                return _fold_columnar(args, settings, window, paths, need_incidents)
            except NotColumnar:
                pass  # lines the reader cannot map one to one: read them the exact way
        return await _fold_exact(args, settings, window, paths, need_incidents)
    require_store(settings)
    store = bootstrap.read_model_store(settings)
    async with store:
        calendar = settings.calendar if calendar_given else store.calendar
        return await fold_store(store, calendar, window, need_incidents)


async def fold_store(store: ProjectionStore, calendar: DutyCalendar, window: Window,
                     need_incidents: bool = False) -> Folded:
    """One fold of an open store for ``window`` under ``calendar`` (the maintained
    totals when nothing filters the events and the calendar is the store's)."""
    counters = await store.counters()
    if window.filters_events:
        events = await load_store(store)
        incidents, totals, shifts = fold_history(events, calendar, window, store.sla_limits)
        return Folded(calendar, totals, counters, list(incidents.values()), shifts)
    shifts = await store.shifts()
    if calendar == store.calendar:
        rows = [i async for i in store.all_incidents()] if need_incidents else []
        return Folded(calendar, await store.totals(), counters, rows, shifts,
                      await store.handover_incidents())
    rows = [i async for i in store.all_incidents()]
    calls = [c async for c in store.all_calls()]
    return Folded(calendar, recut(rows, calls, calendar, store.sla_limits), counters, rows,
                  shifts)


async def _fold_exact(args: argparse.Namespace, settings: Settings, window: Window,
                      paths: list[Path], need_incidents: bool) -> Folded:
    """The files ingested into a scratch store, as ``dispatch ingest`` would (same
    rejects, duplicates and conflicts), then folded for the window."""
    store = bootstrap.scratch_store(settings)
    rejects = RejectsFile(args.rejects)
    progress = ProgressLine()
    try:
        summary = await ingest_files(store, paths, strict=args.strict, on_rejected=rejects,
                                     progress=progress, batch_size=settings.batch_size,
                                     recorded_as_occurred=True)
    finally:
        rejects.close()
    progress.finish()
    if summary.stopped_at is not None:
        raise UserError(f"--strict: stopped at {summary.stopped_at.record.label}: "
                        f"{summary.stopped_at.reason}")
    if summary.rejected or summary.conflicts or summary.held_back:
        print_summary(summary, "read")
    return await fold_store(store, settings.calendar, window, need_incidents)


def _fold_columnar(args: argparse.Namespace, settings: Settings, window: Window,
                   paths: list[Path], need_incidents: bool) -> Folded:
    with _collector_paused():
        rejects = RejectsFile(args.rejects)
        started = time.perf_counter()
        try:
            events = load_columnar(paths, strict=args.strict, on_rejected=rejects)
        finally:
            rejects.close()
        try:
            if events.stopped_at is not None:
                raise UserError(f"--strict: stopped at {events.stopped_at.record.label}: "
                                f"{events.stopped_at.reason}")
            if events.rejected:
                print_summary(IngestSummary(
                    lines=events.lines, accepted=events.lines - events.rejected
                    - events.duplicates, duplicates=events.duplicates,
                    rejected=events.rejected, seconds=time.perf_counter() - started), "read")
            handover: list[Incident] = []
            totals, incidents, shifts = fold_columnar(events, settings.calendar, window,
                                                      settings.sla_limits, handover,
                                                      all_incidents=need_incidents)
        finally:
            events.db.close()
    return Folded(settings.calendar, totals, events.counters(), incidents, shifts, handover)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off: the rows and incidents a columnar fold builds
    hold no cycles and live until the command ends, so they are frozen afterwards and
    building the report does not walk them again (0.3 s at 1M events)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
        # Handed back at exit: DuckDB's bindings report objects never collected.
        atexit.unregister(gc.unfreeze)
        atexit.register(gc.unfreeze)


def say_empty(what: str) -> None:
    print(f"no data: {what} (the report below is empty)", file=sys.stderr)
