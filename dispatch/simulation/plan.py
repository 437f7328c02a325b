"""What to simulate: the service territory (grids and crews) and the plan.

Contract: a :class:`SimulationPlan` is validated when it is created (``ValueError``
with a readable message); a valid plan fully determines the simulated history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final, get_args

from projections.duty import load_zone
from schemas.events import Area

AREAS: Final[tuple[Area, ...]] = get_args(Area)
"""The contract's area values, in the order the model's per-area tables use."""

Event = dict[str, object]
"""One event as a JSON-ready dict (the envelope of docs/events.md)."""

@dataclass(frozen=True)
class Grid:
    """A supply grid (service territory) with its own repair crews.

    ``crews`` crews with ids ``f"{name}-C{i}"`` (i from 1) serve it;
    ``base_calls_per_day`` is the mean number of fault calls on a normal
    (non-storm) 24-hour duty day, repeat calls and rejected calls included.
    """

    name: str
    area: Area
    crews: int
    base_calls_per_day: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("grid name must not be empty")
        if self.area not in AREAS:
            raise ValueError(f"grid {self.name}: area must be one of {AREAS}, not {self.area!r}")
        if self.crews < 1:
            raise ValueError(f"grid {self.name}: needs at least one crew")
        if not (self.base_calls_per_day >= 0 and math.isfinite(self.base_calls_per_day)):
            raise ValueError(f"grid {self.name}: base_calls_per_day must be a number >= 0")

    @property
    def crew_ids(self) -> tuple[str, ...]:
        """The ids of this grid's crews, e.g. ``("URB-1-C1", "URB-1-C2")``."""
        return tuple(f"{self.name}-C{i}" for i in range(1, self.crews + 1))


DEFAULT_GRIDS: Final[tuple[Grid, ...]] = (
    Grid("URB-1", "urban", 4, 14.0),
    Grid("URB-2", "urban", 4, 12.0),
    Grid("URB-3", "urban", 3, 10.0),
    Grid("RUR-1", "rural", 3, 8.0),
    Grid("RUR-2", "rural", 3, 7.0),
    Grid("RUR-3", "rural", 2, 6.0),
    Grid("REM-1", "remote", 2, 3.0),
    Grid("REM-2", "remote", 2, 2.5),
)
"""Three urban, three rural and two remote grids: about 62 calls per normal day."""


def _check_rate(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}")


@dataclass(frozen=True)
class SimulationPlan:
    """What to simulate. Every field has a default; the plan is validated on creation.

    - ``seed``: drives every random choice (same plan -> same output).
    - ``start``: the first duty date; ``days``: how many duty periods (ignored
      when ``target_events`` is set).
    - ``storm_days``: indexes (0 = ``start``) of storm days; a tuple is accepted
      and normalised to a frozenset. Must be ``< days`` unless ``target_events``
      is set.
    - ``duty_timezone`` / ``duty_start``: the duty period (docs/kpis.md);
      timestamps are written with this zone's offset.
    - ``grids``: the service territory (see :data:`DEFAULT_GRIDS`).
    - ``target_events``: if set, simulate as many days as needed to produce at
      least this many items (events, duplicates and malformed lines), stopping
      after a whole outage (incident with its repeat calls and merged tickets).
    - ``reject_rate``: share of first calls that are not utility faults.
    - ``merged_call_share``: share of repeat calls logged as their own incident
      and then ``call.merged``; the others are extra ``call.received`` on the
      first incident.
    - ``duplicate_rate``: share of events delivered a second time, verbatim.
    - ``shuffle``: deliver each day batch in random order (see module doc).
    - ``late_rate``: share of events delivered 1-18 hours after they happened
      (``recorded_at`` = delivery time).
    - ``skew_rate``: share of outage incidents whose crew handheld clock is
      wrong after departure, which gives a negative arrive stage (clock behind)
      or a negative restore stage (clock ahead).
    - ``malformed_rate``: per event, chance of an additional malformed line
      (only with :func:`simulate_lines`).
    """

    seed: int = 7
    start: date = date(2026, 7, 1)
    days: int = 1
    storm_days: frozenset[int] | tuple[int, ...] = frozenset()
    duty_timezone: str = "Asia/Shanghai"
    duty_start: time = time(8, 30)
    grids: tuple[Grid, ...] = DEFAULT_GRIDS
    target_events: int | None = None
    reject_rate: float = 0.05
    merged_call_share: float = 0.5
    duplicate_rate: float = 0.0
    shuffle: bool = False
    late_rate: float = 0.0
    skew_rate: float = 0.0
    malformed_rate: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "storm_days", frozenset(self.storm_days))
        object.__setattr__(self, "grids", tuple(self.grids))
        if self.days < 1:
            raise ValueError(f"days must be at least 1, not {self.days}")
        if self.target_events is not None and self.target_events < 1:
            raise ValueError(f"target_events must be at least 1, not {self.target_events}")
        for day in self.storm_days:
            if day < 0:
                raise ValueError(f"storm day {day} is negative")
            if self.target_events is None and day >= self.days:
                raise ValueError(
                    f"storm day {day} is outside the simulated days 0..{self.days - 1}"
                )
        try:
            load_zone(self.duty_timezone)
        except ValueError:
            raise ValueError(f"unknown duty_timezone {self.duty_timezone!r}") from None
        if self.duty_start.tzinfo is not None:
            raise ValueError("duty_start is a local wall-clock time: give it without tzinfo")
        if not self.grids:
            raise ValueError("at least one grid is needed")
        names = [g.name for g in self.grids]
        if len(set(names)) != len(names):
            raise ValueError(f"grid names must be unique: {names}")
        if self.target_events is not None and not any(g.base_calls_per_day > 0 for g in self.grids):
            raise ValueError("target_events needs a grid with base_calls_per_day > 0")
        for name in (
            "reject_rate",
            "merged_call_share",
            "duplicate_rate",
            "late_rate",
            "skew_rate",
            "malformed_rate",
        ):
            _check_rate(name, getattr(self, name))
        try:
            datetime.combine(self.start + timedelta(days=self.days), self.duty_start)
        except OverflowError:
            raise ValueError("start + days is out of the supported date range") from None

    @property
    def storm_day_set(self) -> frozenset[int]:
        """``storm_days`` as a frozenset (it always is one after validation)."""
        return frozenset(self.storm_days)


@dataclass(frozen=True)
class MalformedLine:
    """A line that is deliberately not a valid event; written verbatim (no newline in it).

    ``kind`` is one of ``bad_json``, ``missing_field``, ``naive_timestamp``,
    ``unknown_type``: what a consumer should reject it for.
    """

    text: str
    kind: str


SimItem = Event | MalformedLine
"""What :func:`~dispatch.simulation.simulate_lines` yields."""


@dataclass
class SimulationStats:
    """Counters filled in while a :class:`Simulator` is iterated (final once exhausted).

    ``items`` = everything yielded; ``events`` = event dicts yielded (duplicates
    included); ``incidents`` = incident ids that got at least one event
    (outage, rejected and merged tickets); ``calls`` = ``call.received`` events
    (not counting duplicates); ``open_incidents`` = outage incidents without
    ``power.restored`` at the horizon; ``shift_starts``, ``team_changes`` and
    ``callbacks`` count the duty-accountability events (duplicates not counted).
    """

    days: int = 0
    storm_days: int = 0
    items: int = 0
    events: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    incidents: int = 0
    outage_incidents: int = 0
    rejected_incidents: int = 0
    merged_incidents: int = 0
    calls: int = 0
    redispatches: int = 0
    skewed_incidents: int = 0
    open_incidents: int = 0
    shift_starts: int = 0
    team_changes: int = 0
    """Duty periods whose team was relieved mid-period (a second shift start)."""
    callbacks: int = 0
    """``customer.callback`` events (unreached attempts included)."""
    first_duty_date: date | None = None
    last_duty_date: date | None = None

