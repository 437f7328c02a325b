"""The incident model: how outages, calls and crews behave on a duty day.

Contract: pure functions of a :class:`SimulationPlan` and one ``random.Random``
(the "world" stream); no I/O, no clock. Times are epoch seconds (floats), true
field time. Drawing the same plan with the same stream gives the same outages
and timelines, in the same order of random draws, so the output stays
byte-identical for a seed.

The numbers (all in minutes; triangular ``low/mode/high`` draws) are described
in the package documentation of :mod:`dispatch.simulation`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final, get_args

from dispatch.simulation.plan import AREAS, Grid, SimulationPlan
from schemas.events import Priority

MINUTE: Final = 60.0
HOUR: Final = 3600.0
AGENTS: Final = 40
"""First-contact agents ``AG-001`` .. ``AG-040`` answer the hotline."""

# Calls per local hour of day (relative weights), highest in the evening.
_HOURLY_PROFILE: Final = (
    2.0, 1.5, 1.0, 1.0, 1.0, 1.5, 3.0, 5.0, 6.0, 7.0, 7.0, 7.0,
    7.0, 7.0, 7.0, 7.0, 8.0, 9.0, 10.0, 10.0, 9.0, 7.0, 5.0, 3.0,
)  # fmt: skip

# Travel time to site per area (minutes: low, mode, high).
_TRAVEL: Final[dict[str, tuple[float, float, float]]] = {
    "urban": (10.0, 16.0, 32.0),
    "rural": (25.0, 40.0, 75.0),
    "remote": (45.0, 70.0, 130.0),
}
# Probability that power.restored comes from SCADA rather than the crew's app.
_SCADA_SHARE: Final[dict[str, float]] = {"urban": 0.7, "rural": 0.35, "remote": 0.1}


@dataclass(frozen=True)
class Cause:
    cause: str
    equipment: str
    repair: tuple[float, float, float]  # minutes low, mode, high
    customers: tuple[int, int]
    weights: tuple[float, float, float]  # normal day: urban, rural, remote
    storm_weights: tuple[float, float, float]
    descriptions: tuple[str, ...]


_CAUSES: Final[tuple[Cause, ...]] = (
    Cause("fuse blown", "drop-out fuse", (15, 25, 60), (20, 150), (20, 20, 15), (10, 10, 10),
           ("no power in the whole building", "lights out on our block")),
    Cause("tree contact", "overhead line", (40, 70, 180), (50, 600), (5, 15, 18), (20, 25, 25),
           ("tree branch on the line", "power went out, trees swaying on the wires")),
    Cause("lightning strike", "surge arrester", (30, 60, 150), (50, 400), (2, 5, 6),
           (20, 20, 20), ("loud bang then power cut", "lightning hit near the pole")),
    Cause("conductor broken", "overhead line", (60, 110, 240), (100, 1500), (4, 10, 14),
           (15, 20, 22), ("wire down on the road", "line snapped, sparks seen")),
    Cause("cable fault", "underground cable", (120, 200, 480), (80, 1200), (15, 3, 1),
           (10, 3, 1), ("whole street is dark", "outage in the residential compound")),
    Cause("transformer failure", "distribution transformer", (120, 180, 420), (30, 300),
           (10, 10, 10), (8, 8, 8), ("transformer humming then outage", "smoke from the box")),
    Cause("animal contact", "insulator", (20, 40, 90), (20, 200), (6, 10, 10), (2, 3, 3),
           ("flash at the pole, power out", "bird on the line, no power")),
    Cause("service line fault", "service drop", (20, 35, 90), (1, 6), (25, 15, 12), (8, 5, 5),
           ("only our house has no power", "meter box dead, neighbours fine")),
    Cause("LV breaker trip", "low-voltage switchgear", (10, 20, 45), (10, 120), (13, 8, 5),
           (4, 3, 2), ("half the building has no power", "power off in the shops")),
    Cause("pole damaged", "pole", (120, 240, 480), (50, 800), (1, 4, 5), (3, 3, 4),
           ("pole leaning after a truck hit it", "pole down across the lane")),
)  # fmt: skip

_REJECT_REASONS: Final = (
    "customer-side fault: internal wiring",
    "customer main breaker tripped",
    "disconnected for non-payment",
    "prepaid meter out of credit",
    "planned outage already notified",
    "not a supply fault: street light",
)
_REJECT_DESCRIPTIONS: Final = (
    "no power in my flat",
    "power off since this morning",
    "meter display is blank",
    "street light is out",
)
_PRIORITIES: Final = get_args(Priority)
_PRIORITY_WEIGHTS: Final = (0.88, 0.06, 0.06)

# Normal-day mean number of repeat calls per outage.
_REPEAT_MEAN_NORMAL: Final = 0.2


@dataclass
class Outage:
    """One outage (a cluster of calls) while it is being laid out."""

    grid: Grid
    grid_index: int
    t0: float
    rejected: bool
    repeat_times: list[float]
    repeat_merged: list[bool]
    incident_id: str = ""


@dataclass
class Timeline:
    """Instants (epoch seconds, true time) of one outage incident's history."""

    priority: str
    agent: str
    dispatcher: str
    rejected_at: float = 0.0
    reject_reason: str = ""
    cause: Cause | None = None
    customers: int = 0
    description: str = ""
    crew: str = ""
    eta: int = 0
    verified: float = 0.0
    dispatched: float = 0.0
    departed: float = 0.0
    arrived: float = 0.0
    diagnosed: float = 0.0
    second: tuple[str, float, float, float] | None = None
    repaired: float = 0.0
    restored: float = math.inf
    closed: float = 0.0
    satisfied: bool = True
    scada: bool = False


@dataclass
class CrewBoard:
    """When each crew of each grid is free again (epoch seconds).

    A crew is busy from its dispatch until it has restored power and wrapped
    up, so on storm days incidents queue for crews.
    """

    free_at: list[list[float]] = field(default_factory=list)
    crew_ids: list[tuple[str, ...]] = field(default_factory=list)

    @classmethod
    def of(cls, grids: tuple[Grid, ...]) -> CrewBoard:
        return cls([[-math.inf] * g.crews for g in grids], [g.crew_ids for g in grids])


def draw_outages(plan: SimulationPlan, rng: random.Random, begin: float, end: float,
                 storm: bool) -> list[Outage]:
    """The outages whose first call falls in the period ``[begin, end)``, by first call."""
    length = end - begin
    scale = length / 86400.0
    local_hour0 = plan.duty_start.hour + plan.duty_start.minute / 60.0
    if storm:
        call_factor = rng.uniform(8.0, 15.0)
        repeat_mean = rng.uniform(2.4, 3.4)
        storm_peak = ((rng.uniform(11.0, 21.0) - local_hour0) % 24.0) * HOUR
        storm_peak = min(storm_peak, length - HOUR)
    else:
        call_factor, repeat_mean, storm_peak = 1.0, _REPEAT_MEAN_NORMAL, 0.0
    cum_weights = list(
        accumulate(
            _HOURLY_PROFILE[int(local_hour0 + h) % 24] for h in range(math.ceil(length / HOUR))
        )
    )
    outages: list[Outage] = []
    for gi, grid in enumerate(plan.grids):
        lam = grid.base_calls_per_day * scale * call_factor / (1.0 + repeat_mean)
        count = _poisson(rng, lam)
        for _ in range(count):
            if storm and rng.random() < 0.75:
                off = rng.gauss(storm_peak, 2.5 * HOUR)
                if not 0.0 <= off < length:
                    off = _sample_offset(rng, length, cum_weights)
            else:
                off = _sample_offset(rng, length, cum_weights)
            t0 = begin + off
            rejected = rng.random() < plan.reject_rate
            repeats: list[float] = []
            merged: list[bool] = []
            if not rejected:
                n_rep = _geometric(rng, repeat_mean)
                spread = (25.0 if storm else 12.0) * MINUTE
                for _ in range(n_rep):
                    repeats.append(t0 + 30.0 + rng.expovariate(1.0 / spread))
                    merged.append(rng.random() < plan.merged_call_share)
            outages.append(Outage(grid, gi, t0, rejected, repeats, merged))
    outages.sort(key=lambda o: o.t0)
    return outages


def lay_out(o: Outage, day: int, storm: bool, rng: random.Random, crews: CrewBoard) -> Timeline:
    """The timeline of one outage; books the grid's first free crew(s) on ``crews``.

    Outages must be laid out in first-call order (first come, first served).
    """
    grid = o.grid
    area = grid.area
    t0 = o.t0
    priority = rng.choices(_PRIORITIES, _PRIORITY_WEIGHTS)[0]
    agent = f"AG-{rng.randrange(1, AGENTS + 1):03d}"
    dispatcher = f"DSP-{area[0].upper()}{day % 3 + 1}"
    if o.rejected:
        tl = Timeline(priority=priority, agent=agent, dispatcher=dispatcher)
        tl.rejected_at = t0 + rng.triangular(2.0, 25.0, 6.0) * MINUTE
        tl.reject_reason = rng.choice(_REJECT_REASONS)
        tl.description = rng.choice(_REJECT_DESCRIPTIONS)
        return tl
    ai = AREAS.index(area)
    causes = _CAUSES
    weights = [c.storm_weights[ai] if storm else c.weights[ai] for c in causes]
    cause = rng.choices(causes, weights)[0]
    customers = rng.randint(*cause.customers)
    urgent = priority != "normal"
    verify = rng.triangular(2.0, 30.0, 8.0) if storm else rng.triangular(1.5, 12.0, 4.0)
    if urgent:
        verify *= 0.6
    t1 = t0 + verify * MINUTE
    ready = t1 + rng.triangular(0.5, 6.0, 1.5) * MINUTE
    free = crews.free_at[o.grid_index]
    ci = min(range(len(free)), key=free.__getitem__)
    dispatched = max(ready, free[ci] + rng.uniform(0.5, 3.0) * MINUTE)
    prep = rng.triangular(2.0, 15.0, 5.0)
    lo, mode, hi = _TRAVEL[area]
    travel = rng.triangular(lo, hi, mode) * (rng.uniform(1.1, 1.4) if storm else 1.0)
    eta = max(1, round((prep + travel) * rng.uniform(0.8, 1.2)))
    departed = dispatched + prep * MINUTE
    arrived = departed + travel * MINUTE
    diagnose = rng.triangular(5.0, 45.0, 12.0) * (1.2 if storm else 1.0)
    diagnosed = arrived + diagnose * MINUTE
    rlo, rmode, rhi = cause.repair
    repair = rng.triangular(rlo, rhi, rmode) * (rng.uniform(1.3, 1.7) if storm else 1.0)
    repaired = diagnosed + repair * MINUTE
    tl = Timeline(priority=priority, agent=agent, dispatcher=dispatcher)
    tl.cause = cause
    tl.customers = customers
    tl.description = rng.choice(cause.descriptions)
    tl.crew = crews.crew_ids[o.grid_index][ci]
    tl.eta = eta
    tl.verified = t1
    tl.dispatched = dispatched
    tl.departed = departed
    tl.arrived = arrived
    tl.diagnosed = diagnosed
    if len(free) > 1 and rng.random() < (0.10 if storm else 0.04):
        others = [i for i in range(len(free)) if i != ci]
        c2 = min(others, key=free.__getitem__)
        d2 = max(diagnosed + rng.triangular(1.0, 10.0, 3.0) * MINUTE,
                 free[c2] + rng.uniform(0.5, 3.0) * MINUTE)  # fmt: skip
        p2 = rng.triangular(2.0, 15.0, 5.0) * MINUTE
        a2 = d2 + p2 + rng.triangular(lo, hi, mode) * MINUTE
        tl.second = (crews.crew_ids[o.grid_index][c2], d2, d2 + p2, a2)
        repaired = max(repaired, a2 + rng.triangular(20.0, 120.0, 45.0) * MINUTE)
    else:
        c2 = -1
    tl.repaired = repaired
    scada = rng.random() < _SCADA_SHARE[area]
    gap = rng.triangular(0.5, 10.0, 2.0) if scada else rng.triangular(2.0, 25.0, 6.0)
    tl.scada = scada
    tl.restored = repaired + gap * MINUTE
    restoration_h = (tl.restored - t0) / HOUR
    tl.closed = tl.restored + rng.triangular(15.0, 480.0, 60.0) * MINUTE
    tl.satisfied = rng.random() < (0.93 if restoration_h < 4.0 else 0.7)
    wrap = rng.triangular(5.0, 40.0, 15.0) * MINUTE
    free[ci] = tl.restored + wrap
    if c2 >= 0:
        free[c2] = tl.restored + wrap
    return tl


def _sample_offset(rng: random.Random, length: float, cum_weights: list[float]) -> float:
    """Seconds into a period of ``length`` seconds, following the hourly profile."""
    slots = range(len(cum_weights))
    for _ in range(20):
        slot = rng.choices(slots, cum_weights=cum_weights)[0]
        off = (slot + rng.random()) * HOUR
        if off < length:
            return off
    return rng.random() * length


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(lam) draw (inversion for small lam, rounded normal for large)."""
    if lam <= 0.0:
        return 0
    if lam > 500.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _geometric(rng: random.Random, mean: float) -> int:
    """A draw on {0, 1, ...} with the given mean (geometric distribution)."""
    if mean <= 0.0:
        return 0
    q = mean / (1.0 + mean)  # P(at least one more)
    return int(math.log(1.0 - rng.random()) / math.log(q))

