"""Seed-deterministic simulator of "six-fast" outage-repair histories.

It produces the event stream a utility's repair service would put on the
``outage.events`` topic (docs/events.md): hotline calls, verification,
crew dispatch, depart, arrive, diagnose, repair, power restored, callback and
closure, plus the awkward cases real streams contain (repeat calls, merged
tickets, rejected calls, reinforcement crews, incidents still open at the end,
storm days that saturate the crews) and, on request, delivery faults
(duplicates, shuffling, late delivery, crew-device clock skew, malformed lines).

Contracts
---------
- **Pure and deterministic.** :func:`simulate` and :func:`simulate_lines` do no
  I/O and read no clock: the same :class:`SimulationPlan` (seed included) gives
  the same items in the same order, so :func:`write_jsonl` writes byte-identical
  files. Event ids are ``ev-{seed}-{start:%Y%m%d}-{n}`` where ``n`` counts the
  generated events; incident ids are ``INC-{duty date:%Y%m%d}-{k:05d}``.
- **Separate random streams.** The incidents ("the world") come from one
  random stream and each delivery fault from its own, so switching a fault on
  or off changes nothing else: with ``duplicate_rate > 0`` the stream minus the
  repeated ids is exactly the stream without duplicates; with ``shuffle=True``
  it is the same multiset of events; ``late_rate`` only changes ``recorded_at``
  and positions; ``malformed_rate`` only adds lines; ``skew_rate`` only changes
  the ``occurred_at`` of some crew events.
- **Event envelope.** Every event dict has, in this order, ``event_id``,
  ``type``, ``incident_id``, ``occurred_at``, ``recorded_at``,
  ``schema_version`` (1), ``source``, ``actor`` and ``data``. Timestamps are
  RFC 3339 with the offset of ``plan.duty_timezone`` at that instant (so they
  change across daylight-saving transitions). Hotline, dispatcher and SCADA
  timestamps carry milliseconds, crew-app timestamps whole seconds.
- **Stream order.** Unshuffled, items come in delivery order (``recorded_at``;
  a duplicate comes a little after its original): this is roughly event-time
  order, except late events (far later) and skewed crew clocks.
- **Horizon.** With ``days`` (no ``target_events``) the history is a snapshot at
  the end of the last duty period: events that happen after it are not
  emitted, so incidents still being worked then stay open (no
  ``power.restored``). Late and duplicate copies of events that did happen
  before it are still delivered, at the end of the stream.
  With ``target_events`` there is no horizon: duty days are simulated until at
  least that many items were produced, and every incident is whole.
- **Memory.** Items are generated one duty day at a time and held in a heap
  keyed by delivery time only until no later day can deliver before them, so
  memory is bounded by about a day's events plus those still pending (long
  repairs, late deliveries), never the whole history. ``shuffle`` shuffles each
  such day batch (a bounded window of about one duty day of deliveries), not
  the whole history.
- **Malformed lines** are not dicts: :func:`simulate_lines` yields them as
  :class:`MalformedLine` markers (text written verbatim by :func:`write_jsonl`)
  in addition to, never instead of, the valid events. :func:`simulate` yields
  only dicts and refuses a plan with ``malformed_rate > 0``.

The model (all times in minutes; triangular ``low/mode/high`` draws)
--------------------------------------------------------------------
Each grid has outages (Poisson per duty period, scaled by its length: 23 or 25
hours on daylight-saving days) spread over the day with a daytime-heavy
profile. An outage makes one first call (a new incident, or with
``reject_rate`` a call that is not a utility fault and gets ``call.rejected``)
and some repeat calls from other customers; a share ``merged_call_share`` of the
repeat calls open their own ticket that is later ``call.merged`` into the
first, the rest are logged as further ``call.received`` on the first incident
(they do not move its t0). Priorities are about 88% normal, 6% vulnerable,
6% important; the latter two are verified faster. Verification takes about
2-12 min; the incident then waits for the grid's crew that is free first
(first come, first served; crews are busy from dispatch until they have
restored power and wrapped up, so on storm days incidents queue and
depart/arrive waits grow to hours); preparation 2-15 min; travel by area
(urban 10-32, rural 25-75, remote 45-130; arrival counted from the call is
typically 20-50, 40-100 and 60-150 min); diagnosis 5-45; repair by cause
(fuse 15-60 ... cable or transformer 2-8 h); switching back 1-25; customer
callback and closure 15 min to 8 h later. A few incidents need a reinforcement
crew: a second ``crew.dispatched``/``crew.departed``/``crew.arrived`` after the
diagnosis, which does not move the checkpoints. A storm day multiplies calls by
8-15 (more outages and many more repeat calls, concentrated around the storm's
passage), slows verification (2-30 min), lengthens travel and repairs, and
brings more reinforcements. ``recorded_at`` is the delivery time: 0.05-4 s
after the event for hotline/dispatcher/SCADA, 1-90 s for the crew app, 1-18 h
for late events.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from heapq import heappop, heappush
from itertools import accumulate
from typing import IO, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

try:  # orjson is a dependency, but keep the module usable without it.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None  # type: ignore[assignment]
import json as _json

__all__ = [
    "AREAS",
    "DEFAULT_GRIDS",
    "EVENT_TYPES",
    "Area",
    "Event",
    "Grid",
    "MalformedLine",
    "SimItem",
    "SimulationPlan",
    "SimulationStats",
    "Simulator",
    "dumps",
    "simulate",
    "simulate_lines",
    "write_jsonl",
]

Area = Literal["urban", "rural", "remote"]
AREAS: Final[tuple[Area, ...]] = ("urban", "rural", "remote")
Event = dict[str, object]
"""One event as a JSON-ready dict (the envelope of docs/events.md)."""

EVENT_TYPES: Final[tuple[str, ...]] = (
    "call.received",
    "call.verified",
    "call.rejected",
    "call.merged",
    "crew.dispatched",
    "crew.departed",
    "crew.arrived",
    "fault.diagnosed",
    "repair.completed",
    "power.restored",
    "incident.closed",
)
"""Every type the simulator emits (exactly the types of docs/events.md)."""

_MIN: Final = 60.0
_HOUR: Final = 3600.0


# --------------------------------------------------------------------------- plan


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
            ZoneInfo(self.duty_timezone)
        except (ZoneInfoNotFoundError, ValueError):
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
"""What :func:`simulate_lines` yields."""


@dataclass
class SimulationStats:
    """Counters filled in while a :class:`Simulator` is iterated (final once exhausted).

    ``items`` = everything yielded; ``events`` = event dicts yielded (duplicates
    included); ``incidents`` = incident ids that got at least one event
    (outage, rejected and merged tickets); ``calls`` = ``call.received`` events
    (not counting duplicates); ``open_incidents`` = outage incidents without
    ``power.restored`` at the horizon.
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
    first_duty_date: date | None = None
    last_duty_date: date | None = None


# --------------------------------------------------------------------------- model data

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
class _Cause:
    cause: str
    equipment: str
    repair: tuple[float, float, float]  # minutes low, mode, high
    customers: tuple[int, int]
    weights: tuple[float, float, float]  # normal day: urban, rural, remote
    storm_weights: tuple[float, float, float]
    descriptions: tuple[str, ...]


_CAUSES: Final[tuple[_Cause, ...]] = (
    _Cause("fuse blown", "drop-out fuse", (15, 25, 60), (20, 150), (20, 20, 15), (10, 10, 10),
           ("no power in the whole building", "lights out on our block")),
    _Cause("tree contact", "overhead line", (40, 70, 180), (50, 600), (5, 15, 18), (20, 25, 25),
           ("tree branch on the line", "power went out, trees swaying on the wires")),
    _Cause("lightning strike", "surge arrester", (30, 60, 150), (50, 400), (2, 5, 6),
           (20, 20, 20), ("loud bang then power cut", "lightning hit near the pole")),
    _Cause("conductor broken", "overhead line", (60, 110, 240), (100, 1500), (4, 10, 14),
           (15, 20, 22), ("wire down on the road", "line snapped, sparks seen")),
    _Cause("cable fault", "underground cable", (120, 200, 480), (80, 1200), (15, 3, 1),
           (10, 3, 1), ("whole street is dark", "outage in the residential compound")),
    _Cause("transformer failure", "distribution transformer", (120, 180, 420), (30, 300),
           (10, 10, 10), (8, 8, 8), ("transformer humming then outage", "smoke from the box")),
    _Cause("animal contact", "insulator", (20, 40, 90), (20, 200), (6, 10, 10), (2, 3, 3),
           ("flash at the pole, power out", "bird on the line, no power")),
    _Cause("service line fault", "service drop", (20, 35, 90), (1, 6), (25, 15, 12), (8, 5, 5),
           ("only our house has no power", "meter box dead, neighbours fine")),
    _Cause("LV breaker trip", "low-voltage switchgear", (10, 20, 45), (10, 120), (13, 8, 5),
           (4, 3, 2), ("half the building has no power", "power off in the shops")),
    _Cause("pole damaged", "pole", (120, 240, 480), (50, 800), (1, 4, 5), (3, 3, 4),
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
_PRIORITIES: Final = ("normal", "vulnerable", "important")
_PRIORITY_WEIGHTS: Final = (0.88, 0.06, 0.06)
_AGENTS: Final = 40
# Normal-day mean number of repeat calls per outage.
_REPEAT_MEAN_NORMAL: Final = 0.2
_MALFORMED_KINDS: Final = ("bad_json", "missing_field", "naive_timestamp", "unknown_type")
_UNKNOWN_TYPES: Final = ("call.recieved", "crew.teleported", "power.restore", "etr.updated")


# --------------------------------------------------------------------------- output


def dumps(obj: object) -> bytes:
    """Compact JSON bytes for ``obj`` (orjson if importable, else json with identical output
    for the str/int/bool/None/dict values the simulator produces)."""
    if _orjson is not None:
        return _orjson.dumps(obj)
    return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def write_jsonl(
    items: Iterable[SimItem],
    path_or_stream: str | os.PathLike[str] | IO[bytes] | IO[str],
) -> int:
    """Write one JSON object per line (``MalformedLine`` text verbatim); return the line count.

    A path is created/truncated and closed afterwards. A binary stream is
    written to directly; a text stream with a ``buffer`` (like ``sys.stdout``)
    is flushed and its binary buffer used; other text streams get ``str``.
    Streams are flushed, not closed. Output is UTF-8, ``\\n``-terminated lines,
    identical whether orjson or json does the encoding.
    """
    if isinstance(path_or_stream, str | os.PathLike):
        with open(path_or_stream, "wb") as fh:
            return _write_binary(items, fh)
    stream = path_or_stream
    if isinstance(stream, io.TextIOBase):
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            return _write_binary(items, buffer)
        return _write_text(items, stream)
    if isinstance(stream, io.StringIO):  # pragma: no cover - StringIO is a TextIOBase
        return _write_text(items, stream)
    return _write_binary(items, stream)  # type: ignore[arg-type]


_CHUNK: Final = 4096


def _encoder() -> Callable[[object], bytes]:
    if _orjson is not None:
        opt = _orjson.OPT_APPEND_NEWLINE
        raw = _orjson.dumps

        def enc(obj: object) -> bytes:
            return raw(obj, option=opt)

        return enc
    return lambda obj: dumps(obj) + b"\n"


def _write_binary(items: Iterable[SimItem], fh: IO[bytes]) -> int:
    enc = _encoder()
    count = 0
    chunk: list[bytes] = []
    append = chunk.append
    for item in items:
        if isinstance(item, MalformedLine):
            append(item.text.encode("utf-8", "surrogateescape") + b"\n")
        else:
            append(enc(item))
        if len(chunk) >= _CHUNK:
            fh.write(b"".join(chunk))
            count += len(chunk)
            chunk.clear()
    if chunk:
        fh.write(b"".join(chunk))
        count += len(chunk)
    fh.flush()
    return count


def _write_text(items: Iterable[SimItem], fh: IO[str]) -> int:
    count = 0
    for item in items:
        if isinstance(item, MalformedLine):
            fh.write(item.text + "\n")
        else:
            fh.write(dumps(item).decode() + "\n")
        count += 1
    fh.flush()
    return count


# --------------------------------------------------------------------------- timestamps


class _Clock:
    """Formats epoch seconds (>= 0) as RFC 3339 in one zone, fast.

    Per UTC hour it caches the local ``YYYY-MM-DDTHH:`` prefix and the offset
    text. An hour containing an offset change (checked at both ends), or with
    an offset that is not a whole number of hours, goes through ``datetime``.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._cache: dict[int, tuple[str, str] | None] = {}

    def _entry(self, utc_hour: int) -> tuple[str, str] | None:
        cache = self._cache
        if len(cache) > 10_000:  # the stream moves forward: old hours are rarely needed
            cache.clear()
        begin = datetime.fromtimestamp(utc_hour * 3600, self._tz)
        end = datetime.fromtimestamp(utc_hour * 3600 + 3599, self._tz)
        off = begin.utcoffset()
        entry: tuple[str, str] | None = None
        if off is not None and off == end.utcoffset() and off.total_seconds() % 3600 == 0:
            text = begin.isoformat()
            entry = (text[:14], text[19:])  # "2026-07-01T09:", "+08:00"
        cache[utc_hour] = entry
        return entry

    def format(self, t: float, millis: bool) -> str:
        sec = int(t)
        hour, rem = divmod(sec, 3600)
        try:
            entry = self._cache[hour]
        except KeyError:
            entry = self._entry(hour)
        if entry is None:
            dt = datetime.fromtimestamp(sec, self._tz)
            if millis:
                ms = int((t - sec) * 1000)
                return dt.replace(microsecond=ms * 1000).isoformat(timespec="milliseconds")
            return dt.isoformat()
        minute, second = divmod(rem, 60)
        if millis:
            return f"{entry[0]}{minute:02d}:{second:02d}.{int((t - sec) * 1000):03d}{entry[1]}"
        return f"{entry[0]}{minute:02d}:{second:02d}{entry[1]}"


# --------------------------------------------------------------------------- simulator


def _rng(seed: int, stream: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


@dataclass
class _Outage:
    """One outage (cluster of calls) while it is being laid out."""

    grid: Grid
    grid_index: int
    t0: float
    rejected: bool
    repeat_times: list[float]
    repeat_merged: list[bool]
    incident_id: str = ""
    merged_ids: list[str] = field(default_factory=list)


_HeapItem = tuple[float, int, SimItem]


class Simulator:
    """Iterable simulation of one plan; ``stats`` fills in as it is iterated.

    Iterating yields :data:`SimItem` (dicts and, with ``malformed_rate``,
    :class:`MalformedLine`); iterate a given instance only once.
    """

    def __init__(self, plan: SimulationPlan) -> None:
        self.plan = plan
        self.stats = SimulationStats()
        self._tz = ZoneInfo(plan.duty_timezone)
        self._clock = _Clock(self._tz)
        seed = plan.seed
        self._world = _rng(seed, "world")
        self._r_latency = _rng(seed, "latency")
        self._r_late = _rng(seed, "late")
        self._r_dup = _rng(seed, "duplicate")
        self._r_bad = _rng(seed, "malformed")
        self._r_skew = _rng(seed, "skew")
        self._r_shuffle = _rng(seed, "shuffle")
        self._id_prefix = f"ev-{seed}-{plan.start:%Y%m%d}-"
        self._next_event = 0
        self._next_bad = 0
        self._seq = 0
        self._heap: list[_HeapItem] = []
        self._horizon = math.inf  # days mode: end of the last duty period
        self._late_rate = plan.late_rate
        self._dup_rate = plan.duplicate_rate
        self._bad_rate = plan.malformed_rate
        self._u_latency = self._r_latency.random
        self._u_late = self._r_late.random
        self._u_dup = self._r_dup.random
        self._u_bad = self._r_bad.random
        self._format = self._clock.format
        self._produced = 0  # items pushed (target accounting)
        self._started = False
        # free-at time (epoch seconds) of every crew, per grid
        self._crew_free: list[list[float]] = [[-math.inf] * g.crews for g in plan.grids]
        self._crew_ids = [g.crew_ids for g in plan.grids]

    # -- public

    def __iter__(self) -> Iterator[SimItem]:
        if self._started:
            raise RuntimeError("a Simulator can be iterated only once; make a new one")
        self._started = True
        return self._run()

    # -- periods

    def period(self, day: int) -> tuple[float, float]:
        """Start and end (epoch seconds) of duty period ``day`` (0 = plan.start)."""
        d = self.plan.start + timedelta(days=day)
        begin = datetime.combine(d, self.plan.duty_start, tzinfo=self._tz)
        end = datetime.combine(d + timedelta(days=1), self.plan.duty_start, tzinfo=self._tz)
        return begin.timestamp(), end.timestamp()

    # -- main loop

    def _run(self) -> Iterator[SimItem]:
        plan = self.plan
        stats = self.stats
        target = plan.target_events
        storms = plan.storm_day_set
        if target is None:
            self._horizon = self.period(plan.days - 1)[1]
        heap = self._heap
        day = 0
        while True:
            if target is None:
                if day >= plan.days:
                    break
            elif self._produced >= target:
                break
            begin, end = self.period(day)
            duty_date = plan.start + timedelta(days=day)
            stats.days += 1
            if day in storms:
                stats.storm_days += 1
            if stats.first_duty_date is None:
                stats.first_duty_date = duty_date
            stats.last_duty_date = duty_date
            self._simulate_day(day, duty_date, begin, end, day in storms)
            # Everything later days generate is delivered at or after `end`.
            batch: list[SimItem] = []
            while heap and heap[0][0] < end:
                batch.append(heappop(heap)[2])
            yield from self._release(batch)
            day += 1
        rest = [heappop(heap)[2] for _ in range(len(heap))]
        yield from self._release(rest)

    def _release(self, batch: list[SimItem]) -> Iterator[SimItem]:
        if self.plan.shuffle:
            self._r_shuffle.shuffle(batch)
        stats = self.stats
        stats.items += len(batch)
        for item in batch:
            if not isinstance(item, MalformedLine):
                stats.events += 1
        return iter(batch)

    # -- one duty day

    @staticmethod
    def _sample_offset(rng: random.Random, length: float, cum_weights: list[float]) -> float:
        """Seconds into a period of ``length`` seconds, following the hourly profile."""
        slots = range(len(cum_weights))
        for _ in range(20):
            slot = rng.choices(slots, cum_weights=cum_weights)[0]
            off = (slot + rng.random()) * _HOUR
            if off < length:
                return off
        return rng.random() * length

    def _simulate_day(
        self, day: int, duty_date: date, begin: float, end: float, storm: bool
    ) -> None:
        plan = self.plan
        rng = self._world
        length = end - begin
        scale = length / 86400.0
        local_hour0 = plan.duty_start.hour + plan.duty_start.minute / 60.0
        if storm:
            call_factor = rng.uniform(8.0, 15.0)
            repeat_mean = rng.uniform(2.4, 3.4)
            storm_peak = ((rng.uniform(11.0, 21.0) - local_hour0) % 24.0) * _HOUR
            storm_peak = min(storm_peak, length - _HOUR)
        else:
            call_factor, repeat_mean, storm_peak = 1.0, _REPEAT_MEAN_NORMAL, 0.0
        cum_weights = list(
            accumulate(
                _HOURLY_PROFILE[int(local_hour0 + h) % 24] for h in range(math.ceil(length / _HOUR))
            )
        )
        outages: list[_Outage] = []
        for gi, grid in enumerate(plan.grids):
            lam = grid.base_calls_per_day * scale * call_factor / (1.0 + repeat_mean)
            count = _poisson(rng, lam)
            for _ in range(count):
                if storm and rng.random() < 0.75:
                    off = rng.gauss(storm_peak, 2.5 * _HOUR)
                    if not 0.0 <= off < length:
                        off = self._sample_offset(rng, length, cum_weights)
                else:
                    off = self._sample_offset(rng, length, cum_weights)
                t0 = begin + off
                rejected = rng.random() < plan.reject_rate
                repeats: list[float] = []
                merged: list[bool] = []
                if not rejected:
                    n_rep = _geometric(rng, repeat_mean)
                    spread = (25.0 if storm else 12.0) * _MIN
                    for _ in range(n_rep):
                        repeats.append(t0 + 30.0 + rng.expovariate(1.0 / spread))
                        merged.append(rng.random() < plan.merged_call_share)
                outages.append(_Outage(grid, gi, t0, rejected, repeats, merged))
        outages.sort(key=lambda o: o.t0)

        # Lay out every outage's timeline (crew assignment in call order).
        timelines = [self._timeline(o, day, storm) for o in outages]

        # Drop repeat calls made after power came back; number all tickets by call time.
        creations: list[tuple[float, int, int]] = []
        for oi, (o, tl) in enumerate(zip(outages, timelines, strict=True)):
            creations.append((o.t0, oi, -1))
            keep = [i for i, t in enumerate(o.repeat_times) if t < tl.restored]
            o.repeat_times = [o.repeat_times[i] for i in keep]
            o.repeat_merged = [o.repeat_merged[i] for i in keep]
            for ri, merged_flag in enumerate(o.repeat_merged):
                if merged_flag:
                    creations.append((o.repeat_times[ri], oi, ri))
        creations.sort()
        stamp = f"INC-{duty_date:%Y%m%d}-"
        merged_ids: dict[tuple[int, int], str] = {}
        for k, (_, oi, ri) in enumerate(creations, start=1):
            ticket = f"{stamp}{k:05d}"
            if ri < 0:
                outages[oi].incident_id = ticket
            else:
                merged_ids[(oi, ri)] = ticket

        target = plan.target_events
        for oi, (o, tl) in enumerate(zip(outages, timelines, strict=True)):
            self._emit_outage(o, tl, oi, merged_ids, day, storm)
            if target is not None and self._produced >= target:
                return

    # -- timelines

    def _timeline(self, o: _Outage, day: int, storm: bool) -> _Timeline:
        rng = self._world
        grid = o.grid
        area = grid.area
        t0 = o.t0
        priority = rng.choices(_PRIORITIES, _PRIORITY_WEIGHTS)[0]
        agent = f"AG-{rng.randrange(1, _AGENTS + 1):03d}"
        dispatcher = f"DSP-{area[0].upper()}{day % 3 + 1}"
        if o.rejected:
            tl = _Timeline(priority=priority, agent=agent, dispatcher=dispatcher)
            tl.rejected_at = t0 + rng.triangular(2.0, 25.0, 6.0) * _MIN
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
        t1 = t0 + verify * _MIN
        ready = t1 + rng.triangular(0.5, 6.0, 1.5) * _MIN
        free = self._crew_free[o.grid_index]
        ci = min(range(len(free)), key=free.__getitem__)
        dispatched = max(ready, free[ci] + rng.uniform(0.5, 3.0) * _MIN)
        prep = rng.triangular(2.0, 15.0, 5.0)
        lo, mode, hi = _TRAVEL[area]
        travel = rng.triangular(lo, hi, mode) * (rng.uniform(1.1, 1.4) if storm else 1.0)
        eta = max(1, round((prep + travel) * rng.uniform(0.8, 1.2)))
        departed = dispatched + prep * _MIN
        arrived = departed + travel * _MIN
        diagnose = rng.triangular(5.0, 45.0, 12.0) * (1.2 if storm else 1.0)
        diagnosed = arrived + diagnose * _MIN
        rlo, rmode, rhi = cause.repair
        repair = rng.triangular(rlo, rhi, rmode) * (rng.uniform(1.3, 1.7) if storm else 1.0)
        repaired = diagnosed + repair * _MIN
        tl = _Timeline(priority=priority, agent=agent, dispatcher=dispatcher)
        tl.cause = cause
        tl.customers = customers
        tl.description = rng.choice(cause.descriptions)
        tl.crew = self._crew_ids[o.grid_index][ci]
        tl.eta = eta
        tl.verified = t1
        tl.dispatched = dispatched
        tl.departed = departed
        tl.arrived = arrived
        tl.diagnosed = diagnosed
        if len(free) > 1 and rng.random() < (0.10 if storm else 0.04):
            others = [i for i in range(len(free)) if i != ci]
            c2 = min(others, key=free.__getitem__)
            d2 = max(diagnosed + rng.triangular(1.0, 10.0, 3.0) * _MIN,
                     free[c2] + rng.uniform(0.5, 3.0) * _MIN)  # fmt: skip
            p2 = rng.triangular(2.0, 15.0, 5.0) * _MIN
            a2 = d2 + p2 + rng.triangular(lo, hi, mode) * _MIN
            tl.second = (self._crew_ids[o.grid_index][c2], d2, d2 + p2, a2)
            repaired = max(repaired, a2 + rng.triangular(20.0, 120.0, 45.0) * _MIN)
        else:
            c2 = -1
        tl.repaired = repaired
        scada = rng.random() < _SCADA_SHARE[area]
        gap = rng.triangular(0.5, 10.0, 2.0) if scada else rng.triangular(2.0, 25.0, 6.0)
        tl.scada = scada
        tl.restored = repaired + gap * _MIN
        restoration_h = (tl.restored - t0) / _HOUR
        tl.closed = tl.restored + rng.triangular(15.0, 480.0, 60.0) * _MIN
        tl.satisfied = rng.random() < (0.93 if restoration_h < 4.0 else 0.7)
        wrap = rng.triangular(5.0, 40.0, 15.0) * _MIN
        free[ci] = tl.restored + wrap
        if c2 >= 0:
            free[c2] = tl.restored + wrap
        return tl

    # -- events

    def _emit_outage(
        self,
        o: _Outage,
        tl: _Timeline,
        oi: int,
        merged_ids: dict[tuple[int, int], str],
        day: int,
        storm: bool,
    ) -> None:
        stats = self.stats
        grid = o.grid
        inc = o.incident_id
        emit = self._emit
        horizon = self._horizon
        base_data: dict[str, object] = {"grid": grid.name, "area": grid.area,
                                        "priority": tl.priority}  # fmt: skip
        first: dict[str, object] = dict(base_data)
        if tl.customers:
            first["customers_affected"] = tl.customers
        first["agent"] = tl.agent
        first["description"] = tl.description or "no power"
        t0 = o.t0
        emitted_any = emit(inc, "call.received", t0, t0, "hotline", tl.agent, first, True)
        stats.incidents += emitted_any
        stats.calls += emitted_any
        if o.rejected:
            stats.rejected_incidents += emitted_any
            emit(inc, "call.rejected", tl.rejected_at, tl.rejected_at, "dispatcher",
                 tl.dispatcher, {"reason": tl.reject_reason}, True)  # fmt: skip
            return
        stats.outage_incidents += emitted_any
        # Clock skew of the first crew's handheld after departure (own random stream).
        skew = 0.0
        if self._r_skew.random() < self.plan.skew_rate:
            r = self._r_skew
            if r.random() < 0.5:  # behind: arrives "before" it departed
                skew = -(tl.arrived - tl.departed) - r.triangular(1.0, 25.0, 5.0) * _MIN
            else:  # ahead: repair "completed" after power was restored
                skew = (tl.restored - tl.repaired) + r.triangular(1.0, 30.0, 5.0) * _MIN
            skew = float(math.floor(skew))
            if tl.restored <= horizon:
                stats.skewed_incidents += 1
        crew = tl.crew
        disp = tl.dispatcher
        emit(
            inc,
            "call.verified",
            tl.verified,
            tl.verified,
            "dispatcher",
            disp,
            {"verified_by": disp},
            True,
        )
        emit(
            inc,
            "crew.dispatched",
            tl.dispatched,
            tl.dispatched,
            "dispatcher",
            disp,
            {"crew": crew, "dispatcher": disp, "eta_minutes": tl.eta},
            True,
        )
        emit(
            inc, "crew.departed", tl.departed, tl.departed, "crew-app", crew, {"crew": crew}, False
        )
        emit(
            inc,
            "crew.arrived",
            tl.arrived,
            tl.arrived + skew,
            "crew-app",
            crew,
            {"crew": crew},
            False,
        )
        assert tl.cause is not None
        emit(
            inc,
            "fault.diagnosed",
            tl.diagnosed,
            tl.diagnosed + skew,
            "crew-app",
            crew,
            {"cause": tl.cause.cause, "equipment": tl.cause.equipment},
            False,
        )
        if tl.second is not None:
            crew2, d2, p2, a2 = tl.second
            if emit(
                inc,
                "crew.dispatched",
                d2,
                d2,
                "dispatcher",
                disp,
                {"crew": crew2, "dispatcher": disp},
                True,
            ):
                stats.redispatches += 1
            emit(inc, "crew.departed", p2, p2, "crew-app", crew2, {"crew": crew2}, False)
            emit(inc, "crew.arrived", a2, a2, "crew-app", crew2, {"crew": crew2}, False)
        emit(inc, "repair.completed", tl.repaired, tl.repaired + skew, "crew-app", crew, {}, False)
        restored_data: dict[str, object] = {}
        if tl.customers:
            restored_data["customers_restored"] = tl.customers
        if tl.scada:
            done = emit(
                inc,
                "power.restored",
                tl.restored,
                tl.restored,
                "scada",
                "SCADA",
                restored_data,
                True,
            )
        else:
            done = emit(
                inc,
                "power.restored",
                tl.restored,
                tl.restored,
                "crew-app",
                crew,
                restored_data,
                False,
            )
        if emitted_any and not done:
            stats.open_incidents += 1
        emit(inc, "incident.closed", tl.closed, tl.closed, "hotline", tl.agent,
             {"satisfied": tl.satisfied}, True)  # fmt: skip
        # Repeat calls: on this incident, or their own ticket merged into it.
        world = self._world
        for ri, (tc, merged) in enumerate(zip(o.repeat_times, o.repeat_merged, strict=True)):
            agent = f"AG-{world.randrange(1, _AGENTS + 1):03d}"
            data = dict(base_data)
            data["agent"] = agent
            data["description"] = "another customer reports the same outage"
            if merged:
                mid = merged_ids[(oi, ri)]
                got = emit(mid, "call.received", tc, tc, "hotline", agent, data, True)
                tm = tc + world.triangular(1.0, 20.0, 4.0) * _MIN
                emit(mid, "call.merged", tm, tm, "dispatcher", disp,
                     {"into_incident_id": inc}, True)  # fmt: skip
                stats.incidents += got
                stats.merged_incidents += got
                stats.calls += got
            else:
                stats.calls += emit(inc, "call.received", tc, tc, "hotline", agent, data, True)

    def _emit(
        self,
        incident_id: str,
        etype: str,
        t_true: float,
        t_occurred: float,
        source: str,
        actor: str,
        data: dict[str, object],
        millis: bool,
    ) -> bool:
        """Build one event and schedule its delivery; False if it is past the horizon.

        Ids and every random draw are consumed even past the horizon, so a
        plan with more days repeats the shorter plan's events exactly.
        """
        n = self._next_event
        self._next_event = n + 1
        u_lat = self._u_latency()
        late = self._u_late() < self._late_rate
        late_delay = self._r_late.uniform(1.0, 18.0) * _HOUR if late else 0.0
        dup = self._u_dup() < self._dup_rate
        dup_delay = self._r_dup.uniform(1.0, 900.0) if dup else 0.0
        bad = self._u_bad() < self._bad_rate
        if t_true > self._horizon:
            return False
        if late:
            recorded = t_true + late_delay
            self.stats.late += 1
        elif millis:  # hotline, dispatcher, SCADA: seconds
            recorded = t_true + 0.05 + 4.0 * u_lat
        else:  # crew app over mobile data: up to a minute and a half
            recorded = t_true + 1.0 + 89.0 * u_lat
        fmt = self._format
        event: Event = {
            "event_id": self._id_prefix + str(n),
            "type": etype,
            "incident_id": incident_id,
            "occurred_at": fmt(t_occurred, millis),
            "recorded_at": fmt(recorded, True),
            "schema_version": 1,
            "source": source,
            "actor": actor,
            "data": data,
        }
        heap = self._heap
        seq = self._seq
        heappush(heap, (recorded, seq, event))
        pushed = 1
        if dup:
            copy = dict(event)
            copy["data"] = dict(data)
            heappush(heap, (recorded + dup_delay, seq + 1, copy))
            self.stats.duplicates += 1
            pushed += 1
        if bad:
            heappush(heap, (recorded + 0.001, seq + 2, self._malformed(event)))
            self.stats.malformed += 1
            pushed += 1
        self._seq = seq + 3
        self._produced += pushed
        return True

    def _malformed(self, event: Event) -> MalformedLine:
        r = self._r_bad
        kind = r.choice(_MALFORMED_KINDS)
        bad: dict[str, object] = dict(event)
        bad["event_id"] = f"bad-{self.plan.seed}-{self._next_bad}"
        self._next_bad += 1
        if kind == "bad_json":
            text = dumps(bad).decode()
            cut = r.randrange(1, len(text) - 1)  # a strict prefix of an object never parses
            return MalformedLine(text[:cut], kind)
        if kind == "missing_field":
            del bad[r.choice(("event_id", "type", "incident_id", "occurred_at", "data"))]
        elif kind == "naive_timestamp":
            stamp = str(bad["occurred_at"])
            bad["occurred_at"] = stamp[:-6]  # drop "+08:00"
        else:
            bad["type"] = r.choice(_UNKNOWN_TYPES)
        return MalformedLine(dumps(bad).decode(), kind)


@dataclass
class _Timeline:
    """Instants (epoch seconds, true time) of one outage incident's history."""

    priority: str
    agent: str
    dispatcher: str
    rejected_at: float = 0.0
    reject_reason: str = ""
    cause: _Cause | None = None
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


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- entry points


def simulate_lines(plan: SimulationPlan) -> Iterator[SimItem]:
    """Yield the plan's history: event dicts and, with ``malformed_rate``, MalformedLine markers.

    Pure and deterministic (see the module contract). For counters while
    iterating, use ``Simulator(plan)`` and read its ``stats``.
    """
    return iter(Simulator(plan))


def simulate(plan: SimulationPlan) -> Iterator[Event]:
    """Yield the plan's history as event dicts only.

    Raises ``ValueError`` if ``plan.malformed_rate > 0`` (malformed lines are
    not dicts: use :func:`simulate_lines`).
    """
    if plan.malformed_rate > 0:
        raise ValueError("malformed_rate > 0 produces non-dict lines: use simulate_lines()")
    return _only_events(Simulator(plan))


def _only_events(sim: Simulator) -> Iterator[Event]:
    for item in sim:
        if isinstance(item, MalformedLine):  # pragma: no cover - excluded by simulate()
            continue
        yield item
