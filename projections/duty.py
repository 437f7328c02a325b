"""Duty periods: 24-hour shifts that start at ``duty_start`` local time every day.

Contract:
- the period with duty date D runs from D at ``start`` (local, in ``timezone``)
  to D+1 at ``start``; so it lasts 23 or 25 hours on a daylight-saving day;
- an instant exactly at a period's start belongs to that (new) period;
- a local start time that does not exist (inside a spring-forward gap) resolves
  the way ``zoneinfo`` does with ``fold=0`` (the pre-transition offset);
- all instants are integers of microseconds since the Unix epoch (UTC), so that
  arithmetic on them is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_MINUTE = 60_000_000
MICROS_PER_HOUR = 3_600_000_000
ONE_DAY = timedelta(days=1)


def to_micros(instant: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact)."""
    return (instant - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int, zone: ZoneInfo | None = None) -> datetime:
    """The aware datetime for ``micros``, in ``zone`` (UTC if None)."""
    instant = EPOCH + timedelta(microseconds=micros)
    return instant.astimezone(zone) if zone is not None else instant


def parse_duty_start(text: str) -> time:
    """``HH:MM`` -> time; ValueError with a readable message otherwise."""
    try:
        if not re.fullmatch(r"\d{1,2}:\d{2}", text):
            raise ValueError(text)
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"duty start must be HH:MM (00:00-23:59), got {text!r}") from None


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError with a readable message if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") \
            from None


@dataclass(frozen=True)
class DutyCalendar:
    """Maps instants to duty dates and duty dates to their bounds."""

    timezone: str = "Asia/Shanghai"
    start: time = time(8, 30)
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _hours: dict[int, tuple[date, int, date]] = field(
        init=False, repr=False, compare=False, default_factory=dict)
    """UTC hour -> (duty date at its start, the next period's start, that date)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", load_zone(self.timezone))

    @property
    def start_text(self) -> str:
        return self.start.strftime("%H:%M")

    def period_start(self, duty_date: date) -> int:
        """Instant (µs) at which the period of ``duty_date`` starts."""
        return _period_start(self.timezone, self.start, duty_date)

    def bounds(self, duty_date: date) -> tuple[int, int]:
        """``(start, end)`` instants (µs) of the period; end is exclusive."""
        return self.period_start(duty_date), self.period_start(duty_date + ONE_DAY)

    def duty_date(self, micros: int) -> date:
        """The duty date of the period that contains ``micros``."""
        # A period lasts 23 hours or more, so a UTC hour meets at most two of them.
        hour = micros // MICROS_PER_HOUR
        known = self._hours.get(hour)
        if known is None:
            first = self._duty_date(hour * MICROS_PER_HOUR)
            known = (first, self.period_start(first + ONE_DAY), first + ONE_DAY)
            if len(self._hours) < 1 << 16:
                self._hours[hour] = known
        return known[0] if micros < known[1] else known[2]

    def _duty_date(self, micros: int) -> date:
        candidate = from_micros(micros, self.zone).date()
        while micros < self.period_start(candidate):
            candidate -= ONE_DAY
        while micros >= self.period_start(candidate + ONE_DAY):
            candidate += ONE_DAY
        return candidate

    def format_instant(self, micros: int) -> str:
        """RFC 3339 text of ``micros`` in the duty time zone."""
        return from_micros(micros, self.zone).isoformat()


@lru_cache(maxsize=65536)
def _period_start(timezone: str, start: time, duty_date: date) -> int:
    local = datetime.combine(duty_date, start, tzinfo=ZoneInfo(timezone))
    return to_micros(local)
