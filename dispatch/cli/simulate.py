"""``dispatch simulate``: write a synthetic, seed-deterministic outage-repair history.

Contract: :func:`register` adds the ``simulate`` subcommand to a subparsers
object and sets ``run=run`` as its default; :func:`run` takes the parsed
namespace and returns the exit code (0 written, 2 inconsistent options), or
raises ``UserError`` (exit 1) when the output cannot be written or a setting
from the environment is invalid. Events go to ``--out`` (stdout by default) as JSON
Lines; a one-line summary goes to stderr, and a progress indicator too when
stderr is a terminal. Nothing but events is ever written to the output.
"""

from __future__ import annotations

import argparse
import os
import sys
import time as _time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import IO, Final

from dispatch.cli.common import UserError, settings_from
from dispatch.simulation import (
    DEFAULT_GRIDS,
    SimItem,
    SimulationPlan,
    SimulationStats,
    Simulator,
    write_jsonl,
)
from projections.duty import load_zone

DESCRIPTION: Final = """\
Write a realistic, seed-deterministic history of outage-repair incidents as
JSON Lines events (docs/events.md): customer calls, verification,
crew dispatch/depart/arrive, diagnosis, repair, power restored and closure,
with repeat calls, merged and rejected tickets, reinforcement crews and
incidents still open at the end. The same options and seed always give a
byte-identical file. Optional delivery faults (duplicates, shuffling, late
events, crew clock skew, malformed lines) test a consumer's robustness.
"""

_CALLS: Final = sum(g.base_calls_per_day for g in DEFAULT_GRIDS)
EPILOG: Final = f"""\
territory: {len(DEFAULT_GRIDS)} grids ({", ".join(g.name for g in DEFAULT_GRIDS)})
with about {_CALLS:.0f} calls on a normal day; a storm day has 8-15 times the calls,
and its queues for crews last into the following days.

examples:
  dispatch simulate --days 7 --storm-day 3 --out week.jsonl
  dispatch simulate --events 1000000 --out bench.jsonl
  dispatch simulate --duplicates 0.02 --late 0.01 --shuffle --malformed 0.001 --out faulty.jsonl
  dispatch simulate --duty-timezone Europe/Berlin --start 2026-03-28 --days 2
"""

_PROGRESS_EVERY: Final = 50_000
_parser: argparse.ArgumentParser | None = None


# --------------------------------------------------------------------------- option types


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, not {text}")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, not {text!r}") from None


def _hhmm(text: str) -> str:
    try:
        datetime.strptime(text, "%H:%M")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time HH:MM, not {text!r}") from None
    return text


def _timezone(text: str) -> str:
    try:
        load_zone(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown IANA time zone {text!r} (e.g. Asia/Shanghai, Europe/Berlin)"
        ) from None
    return text


# --------------------------------------------------------------------------- registration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` subcommand (its defaults include ``run=run``)."""
    global _parser
    parser = subparsers.add_parser(
        "simulate",
        help="write a synthetic outage-repair event history (JSON Lines)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(run=run)
    _parser = parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``simulate`` options (also usable on a standalone parser)."""
    what = parser.add_argument_group("what to simulate")
    what.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    what.add_argument(
        "--start",
        type=_date,
        default=date(2026, 7, 1),
        metavar="YYYY-MM-DD",
        help="first duty date (default 2026-07-01)",
    )
    what.add_argument(
        "--days",
        type=_int_at_least(1),
        default=1,
        metavar="N",
        help="number of duty periods; the history stops at the end of the last one, "
        "leaving incidents still being worked open (default 1)",
    )
    what.add_argument(
        "--storm-day",
        dest="storm_days",
        type=_int_at_least(0),
        action="append",
        default=[],
        metavar="N",
        help="make day N (0 = --start) a storm day; repeatable",
    )
    what.add_argument(
        "--events",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="instead of --days, simulate as many days as needed for about N lines "
        "(stops after a whole incident; every incident complete)",
    )
    what.add_argument(
        "--reject-rate",
        type=_rate,
        default=0.05,
        metavar="RATE",
        help="share of calls that are not utility faults -> call.rejected (default 0.05)",
    )
    what.add_argument(
        "--duty-timezone",
        type=_timezone,
        metavar="TZ",
        help="IANA zone of the duty periods and of the timestamps' offsets "
        "(default Asia/Shanghai, env DISPATCH_DUTY_TIMEZONE)",
    )
    what.add_argument(
        "--duty-start",
        type=_hhmm,
        metavar="HH:MM",
        help="local time at which each 24-hour duty period starts "
        "(default 08:30, env DISPATCH_DUTY_START)",
    )
    faults = parser.add_argument_group("delivery faults (all off by default)")
    faults.add_argument(
        "--duplicates",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of events delivered twice with the same event_id",
    )
    faults.add_argument(
        "--shuffle",
        action="store_true",
        help="deliver events in random order (shuffled within each duty day's batch)",
    )
    faults.add_argument(
        "--late",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of events delivered 1-18 hours after they happened",
    )
    faults.add_argument(
        "--skew",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of incidents whose crew device clock is wrong (negative stages)",
    )
    faults.add_argument(
        "--malformed",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="per event, chance of an extra invalid line (bad JSON, missing field, "
        "timestamp without offset, unknown type)",
    )
    parser.add_argument(
        "--out",
        "-o",
        default="-",
        metavar="PATH",
        help="output file, '-' for stdout (default)",
    )


# --------------------------------------------------------------------------- running


def _usage_error(message: str) -> int:
    if _parser is not None:
        _parser.print_usage(sys.stderr)
        print(f"{_parser.prog}: error: {message}", file=sys.stderr)
    else:
        print(f"dispatch simulate: error: {message}", file=sys.stderr)
    return 2


def plan_from_args(args: argparse.Namespace) -> SimulationPlan:
    """The :class:`SimulationPlan` the options describe (``ValueError`` if inconsistent).

    The duty calendar comes from the settings object, so ``DISPATCH_DUTY_TIMEZONE``
    and ``DISPATCH_DUTY_START`` apply when the options are not given (``UserError``
    if those settings are invalid).
    """
    settings = settings_from(args)
    return SimulationPlan(
        seed=args.seed,
        start=args.start,
        days=args.days,
        storm_days=frozenset(args.storm_days),
        duty_timezone=settings.duty_timezone,
        duty_start=settings.duty_start_time,
        target_events=args.events,
        reject_rate=args.reject_rate,
        duplicate_rate=args.duplicates,
        shuffle=args.shuffle,
        late_rate=args.late,
        skew_rate=args.skew,
        malformed_rate=args.malformed,
    )


def _with_progress(
    items: Iterator[SimItem], stats: SimulationStats, err: IO[str]
) -> Iterator[SimItem]:
    count = 0
    for item in items:
        yield item
        count += 1
        if count % _PROGRESS_EVERY == 0:
            print(
                f"\rsimulate: {count:,} lines, duty date {stats.last_duty_date} ",
                end="",
                file=err,
                flush=True,
            )
    if count >= _PROGRESS_EVERY:
        print("\r\033[K", end="", file=err, flush=True)


def _summary(written: int, stats: SimulationStats, out: str, seconds: float) -> str:
    extras = []
    if stats.duplicates:
        extras.append(f"{stats.duplicates:,} duplicates")
    if stats.late:
        extras.append(f"{stats.late:,} late")
    if stats.malformed:
        extras.append(f"{stats.malformed:,} malformed lines")
    if stats.skewed_incidents:
        extras.append(f"{stats.skewed_incidents:,} skewed incidents")
    if stats.shift_starts:
        extras.append(f"{stats.shift_starts:,} shift starts ({stats.team_changes:,} "
                      f"mid-period team changes)")
    if stats.callbacks:
        extras.append(f"{stats.callbacks:,} callbacks")
    detail = f" ({', '.join(extras)})" if extras else ""
    period = f"{stats.first_duty_date}" + (
        f"..{stats.last_duty_date}" if stats.last_duty_date != stats.first_duty_date else ""
    )
    storms = f", {stats.storm_days} storm" if stats.storm_days else ""
    target = "stdout" if out == "-" else out
    return (
        f"simulate: wrote {written:,} events{detail}, {stats.incidents:,} incidents "
        f"({stats.outage_incidents:,} outages, {stats.open_incidents:,} open at the end), "
        f"{stats.calls:,} calls, {stats.days:,} duty days{storms} ({period}) "
        f"to {target} in {seconds:.1f} s"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``dispatch simulate`` with parsed options; return the exit code."""
    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        return _usage_error(str(exc))
    err = sys.stderr
    sim = Simulator(plan)
    items: Iterator[SimItem] = iter(sim)
    if err.isatty():
        items = _with_progress(items, sim.stats, err)
    began = _time.perf_counter()
    out: str = args.out
    target: str | IO[bytes] = sys.stdout.buffer if out == "-" else out
    try:
        written = write_jsonl(items, target)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(_summary(written, sim.stats, out, _time.perf_counter() - began), file=err)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m dispatch.cli.simulate [options]``."""
    from dispatch.cli import main as dispatch_main

    return dispatch_main(["simulate", *(sys.argv[1:] if argv is None else argv)])


__all__ = ["DESCRIPTION", "add_arguments", "main", "plan_from_args", "register", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
