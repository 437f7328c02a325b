"""History for analysts: windows over the event set, comparisons, IEEE 1366 indices (pure).

Contract:
- a ``Window`` never redefines a KPI. ``as_of``/``known_at`` choose which events
  enter the one fold (``projections.incident``/``projector.fold_batch``), and
  ``first``/``last`` choose which duty periods of its result are reported;
- ``as_of`` T keeps events with ``occurred_at`` <= T; ``known_at`` T keeps events
  whose known time (earliest ``recorded_at`` among their copies; ``occurred_at``
  for a file event without one, the ingestion time in a store) is <= T;
- ``first``..``last`` are inclusive duty dates: a period is reported when its duty
  date lies in the range, with everything its incidents did (also after the range);
  ``overall`` sums those periods; ``unattributed`` and the rejected/duplicate
  counters describe the input and are not windowed;
- ``compare`` and ``reliability`` only read incidents and totals that the fold made.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from projections.duty import MICROS_PER_MINUTE, DutyCalendar, to_micros
from projections.incident import STAGES, Fact, Incident
from projections.report import Report
from projections.totals import UNATTRIBUTED, Bucket, Totals

SUSTAINED_US = 5 * MICROS_PER_MINUTE
"""IEEE 1366: an interruption lasting at least 5 minutes is sustained."""
MED_BETA_MULTIPLIER = 2.5

_INSTANT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


_EARLIEST_QUERY_US = to_micros(datetime(2, 1, 1, tzinfo=UTC))
_LATEST_QUERY_US = to_micros(datetime(9998, 12, 31, tzinfo=UTC))


def parse_instant(text: str) -> int:
    """An RFC 3339 instant with seconds and an offset, as µs since the epoch;
    ValueError with a readable message otherwise."""
    if not _INSTANT.match(text):
        raise ValueError(f"expected an RFC 3339 instant with seconds and an offset, such as "
                         f"2026-07-01T08:30:00+08:00, got {text!r}")
    head, _, fraction = text.replace("t", "T").replace("z", "Z").partition(".")
    if fraction:  # Python parses at most microseconds: truncate like the event contract
        digits = re.match(r"\d+", fraction)
        assert digits is not None
        head += "." + digits.group()[:6].ljust(6, "0") + fraction[digits.end():]
    try:
        value = to_micros(datetime.fromisoformat(head))
    except ValueError as exc:
        raise ValueError(f"not a valid instant {text!r}: {exc}") from None
    if not _EARLIEST_QUERY_US <= value <= _LATEST_QUERY_US:
        # Reports print instants in any duty time zone; the years 0001 and 9999
        # cannot be shifted by a zone offset without leaving Python's calendar.
        raise ValueError(f"{text!r} is out of range (years 0002 to 9998)")
    return value


def parse_duty_date(text: str) -> date:
    """``YYYY-MM-DD`` -> date; ValueError with a readable message otherwise."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"expected a duty date YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a valid duty date {text!r}: {exc}") from None


def parse_range(text: str) -> tuple[date, date]:
    """``FROM..TO`` (inclusive duty dates) -> (first, last)."""
    first, sep, last = text.partition("..")
    if not sep:
        raise ValueError(f"expected a duty-date range FROM..TO such as "
                         f"2025-07-01..2025-07-31, got {text!r}")
    start, end = parse_duty_date(first), parse_duty_date(last)
    if start > end:
        raise ValueError(f"range {text!r} starts after it ends")
    return start, end


@dataclass(frozen=True)
class Window:
    """Which events are folded and which duty periods are reported (module contract)."""

    first: date | None = None
    last: date | None = None
    as_of: int | None = None
    known_at: int | None = None

    def __post_init__(self) -> None:
        if self.first is not None and self.last is not None and self.first > self.last:
            raise ValueError(f"--from {self.first} is after --to {self.last}")

    @property
    def filters_events(self) -> bool:
        return self.as_of is not None or self.known_at is not None

    @property
    def is_everything(self) -> bool:
        return not self.filters_events and self.first is None and self.last is None

    def contains(self, duty_date: str) -> bool:
        """Whether the duty date (ISO text) lies in ``first..last``."""
        return ((self.first is None or duty_date >= self.first.isoformat())
                and (self.last is None or duty_date <= self.last.isoformat()))

    def keeps(self, fact: Fact, known: int) -> bool:
        """Whether an event enters the fold; ``known`` is its known time (µs)."""
        return ((self.as_of is None or fact.at <= self.as_of)
                and (self.known_at is None or known <= self.known_at))

    def describe(self, calendar: DutyCalendar) -> dict[str, Any]:
        return {
            "from": None if self.first is None else self.first.isoformat(),
            "to": None if self.last is None else self.last.isoformat(),
            "as_of": None if self.as_of is None else calendar.format_instant(self.as_of),
            "known_at": None if self.known_at is None else calendar.format_instant(
                self.known_at),
        }


def select(facts: Iterable[Fact], known: Mapping[str, int], window: Window) -> list[Fact]:
    """The facts (first copies, no duplicates) that enter the fold for ``window``;
    ``known`` maps event ids to known times (events missing from it count at
    ``occurred_at``)."""
    if not window.filters_events:
        return list(facts)
    return [f for f in facts if window.keeps(f, known.get(f.event_id, f.at))]


def restrict(totals: Mapping[Bucket, Totals], window: Window) -> dict[Bucket, Totals]:
    """Totals of the duty periods in ``first..last`` (unattributed kept)."""
    return {bucket: vector for bucket, vector in totals.items()
            if bucket[2] == UNATTRIBUTED or window.contains(bucket[2])}


def has_periods(report: Report) -> bool:
    return bool(report["duty_periods"])


# -- compare ---------------------------------------------------------------------------

def change_percent(base: float | None, against: float | None) -> float | None:
    """Change from ``base`` to ``against`` in percent; None from a null or zero base."""
    if base is None or against is None or base == 0:
        return None
    return (against - base) / base * 100.0


def compare(base: Report, against: Report, base_range: tuple[date, date],
            against_range: tuple[date, date]) -> dict[str, Any]:
    """Per stage and for average restoration, both overall means and the change."""
    def pair(b: float | None, a: float | None) -> dict[str, float | None]:
        return {"base": b, "against": a, "change_percent": change_percent(b, a)}

    return {
        "base": {"from": base_range[0].isoformat(), "to": base_range[1].isoformat()},
        "against": {"from": against_range[0].isoformat(), "to": against_range[1].isoformat()},
        "stages": {stage: pair(base["overall"]["stages"][stage]["mean_minutes"],
                               against["overall"]["stages"][stage]["mean_minutes"])
                   for stage in STAGES},
        "avg_restoration_minutes": pair(base["overall"]["avg_restoration_minutes"],
                                        against["overall"]["avg_restoration_minutes"]),
        "incidents": {"base": base["overall"]["incidents"],
                      "against": against["overall"]["incidents"]},
    }


# -- IEEE 1366 reliability ---------------------------------------------------------------

@dataclass(slots=True)
class _Exposure:
    customers: int = 0
    customer_us: int = 0
    interruptions: int = 0


def interruptions(incidents: Iterable[Incident], calendar: DutyCalendar,
                  window: Window) -> list[tuple[str, str | None, int, int]]:
    """Sustained interruptions as ``(duty_date, grid, customers, duration_us)``: outage
    incidents with t0 and t6 at least 5 minutes apart, in the window's duty dates;
    customers from the earliest call (1 when it did not say)."""
    found = []
    for incident in incidents:
        if not incident.is_outage:
            continue
        t0, t6 = incident.times[0], incident.times[6]
        if t0 is None or t6 is None or t6 - t0 < SUSTAINED_US:
            continue
        day = calendar.duty_date(t0).isoformat()
        if not window.contains(day):
            continue
        customers = 1 if incident.customers is None else incident.customers
        found.append((day, incident.grid, customers, t6 - t0))
    return found


def _indices(exposure: _Exposure, served: int) -> dict[str, float | None]:
    return {
        "saifi": exposure.customers / served,
        "saidi": exposure.customer_us / (served * MICROS_PER_MINUTE),
        "caidi": (exposure.customer_us / (exposure.customers * MICROS_PER_MINUTE)
                  if exposure.customers else None),
    }


def major_event_threshold(daily_saidi: Iterable[float]) -> float | None:
    """T_MED = exp(alpha + 2.5 beta) over the natural logs of the daily SAIDI values
    above zero (beta: sample standard deviation); None with fewer than two such days."""
    logs = [math.log(value) for value in daily_saidi if value > 0]
    if len(logs) < 2:
        return None
    return math.exp(statistics.fmean(logs) + MED_BETA_MULTIPLIER * statistics.stdev(logs))


def reliability(incidents: Iterable[Incident], calendar: DutyCalendar, window: Window,
                customers_served: int,
                customers_by_grid: Mapping[str, int] | None = None) -> dict[str, Any]:
    """IEEE 1366 SAIFI, SAIDI (minutes), CAIDI per duty date and overall, with and
    without major event days. ``customers_by_grid`` (optional) adds per-grid indices;
    ``customers_served`` is then their sum. Raises ValueError for ``customers_served``
    < 1 or an interrupted grid missing from ``customers_by_grid``."""
    if customers_served < 1:
        raise ValueError(f"customers served must be at least 1, got {customers_served}")
    found = interruptions(incidents, calendar, window)
    days: dict[str, _Exposure] = {}
    for day, _, customers, span in found:
        exposure = days.setdefault(day, _Exposure())
        exposure.customers += customers
        exposure.customer_us += customers * span
        exposure.interruptions += 1
    ordered = sorted(days.items())
    daily = {day: _indices(e, customers_served) for day, e in ordered}
    t_med = major_event_threshold(v["saidi"] or 0.0 for v in daily.values())
    major = [day for day, v in daily.items()
             if t_med is not None and (v["saidi"] or 0.0) > t_med]
    overall, normal = _Exposure(), _Exposure()
    for day, exposure in ordered:
        for target in (overall,) if day in major else (overall, normal):
            target.customers += exposure.customers
            target.customer_us += exposure.customer_us
            target.interruptions += exposure.interruptions
    result: dict[str, Any] = {
        "customers_served": customers_served,
        "t_med": t_med,
        "major_event_days": major,
        "overall": _indices(overall, customers_served),
        "excluding_major_events": _indices(normal, customers_served),
        "daily": {day: {"saifi": v["saifi"], "saidi": v["saidi"]} for day, v in daily.items()},
        "sustained_interruptions": {"overall": overall.interruptions,
                                    "excluding_major_events": normal.interruptions},
    }
    if customers_by_grid is not None:
        grids: dict[str, _Exposure] = {grid: _Exposure() for grid in customers_by_grid}
        for _, grid, customers, span in found:
            if grid not in grids:
                raise ValueError(f"grid {grid!r} has interruptions but no customer count")
            grids[grid].customers += customers
            grids[grid].customer_us += customers * span
        result["grids"] = {
            grid: {"customers_served": customers_by_grid[grid],
                   **_indices(grids[grid], customers_by_grid[grid])}
            for grid in sorted(grids)}
    return result
