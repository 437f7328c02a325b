"""SLA rules (time-limited completion): the state of each rule of an incident as of
an instant, and the ``dispatch alerts`` document. Pure: no I/O, no clock.

Two rules per outage incident (neither rejected nor merged):

- ``arrival`` runs from the call (t0) to the crew's arrival (t3);
- ``restoration`` runs from the arrival (t3) to power restored (t6).

Each has a limit in minutes per area, and a priority override: for incidents of
the priorities in ``SlaLimits.priorities`` the limit is the smaller of the area's
limit and the override (defaults: arrival at most 30 min, restoration as the area).

State of (incident, rule) as of instant T, with deadline D = start + limit:
not armed (``None``) if the start checkpoint is missing or the incident is
rejected or merged; ``anomaly`` if the stop checkpoint exists and precedes the
start; ``met`` if it exists and stop - start <= limit; ``late`` if it exists and is
later; with no stop checkpoint: ``breach`` when T >= D, ``warning`` when
T >= start + 3/4 of the limit, else ``ok``.

"As of T" means: using only the events with ``occurred_at`` <= T. The stored
``Incident`` keeps the earliest time of each checkpoint and of the rejection or
merge, and the attributes of the earliest call, and that is enough to answer
exactly: the earliest checkpoint among events <= T exists iff the overall
earliest one is <= T, and then it is the same instant; likewise for rejected and
merged; and once t0 <= T the earliest call is itself <= T, so area, priority,
grid and owner as of T are the stored ones (before t0 there are none: a
restoration clock started by an arrival whose call is not known yet has no
area and gets the most lenient area limit, uncapped, so that the call turning
up later can only tighten it). So ``rule_state``
needs no event list: it compares each stored instant with T.

Instants are integers of microseconds since the epoch; a limit of L minutes is
``round(L * 60e6)`` microseconds and the warning threshold is start plus three
quarters of that (rounded down to the microsecond).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from projections.duty import from_micros
from projections.incident import ARRIVE, CALL, RESTORE, Incident

RULES: tuple[str, ...] = ("arrival", "restoration")
STATES: tuple[str, ...] = ("ok", "warning", "breach", "met", "late", "anomaly")
LEVELS: tuple[str, ...] = ("warning", "breach")
"""The states that make an alert active."""
OUTCOMES: tuple[str, ...] = ("met", "late", "anomaly")
"""The states that end a rule's clock (the stop checkpoint exists)."""
AREAS: tuple[str, ...] = ("urban", "rural", "remote")

RULE_CHECKPOINTS: dict[str, tuple[int, int]] = {"arrival": (CALL, ARRIVE),
                                                 "restoration": (ARRIVE, RESTORE)}
"""rule -> (start checkpoint, stop checkpoint), indexes into ``Incident.times``."""

MICROS_PER_MINUTE = 60_000_000
WARNING_SHARE = (3, 4)
"""A warning is raised once three quarters of the limit have passed."""

DEFAULT_LIMITS: dict[str, dict[str, float]] = {
    "arrival": {"urban": 45.0, "rural": 90.0, "remote": 120.0},
    "restoration": {"urban": 180.0, "rural": 240.0, "remote": 240.0},
}
DEFAULT_PRIORITY_LIMITS: dict[str, float | None] = {"arrival": 30.0, "restoration": None}


def _frozen(limits: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {rule: dict(by_area) for rule, by_area in limits.items()}


@dataclass(frozen=True)
class SlaLimits:
    """Per-rule, per-area limits in minutes, and the priority override.

    ``by_area[rule][area]`` is the limit; ``priority[rule]`` caps it for the
    ``priorities`` (``None``: no cap, the area's limit applies). Build it from the
    settings (``dispatch.settings.Settings.sla_limits``); the defaults are the
    published norms.
    """

    by_area: dict[str, dict[str, float]] = field(
        default_factory=lambda: _frozen(DEFAULT_LIMITS))
    priority: dict[str, float | None] = field(
        default_factory=lambda: dict(DEFAULT_PRIORITY_LIMITS))
    priorities: tuple[str, ...] = ("vulnerable", "important")
    _spans: dict[tuple[str, str | None, str | None], tuple[float, int, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    """(rule, area, priority) -> (minutes, limit µs, warning µs): looked up per
    incident and rule on the fold's hot path."""

    def __post_init__(self) -> None:
        for rule in RULES:
            missing = [a for a in AREAS if a not in self.by_area.get(rule, {})]
            if missing:
                raise ValueError(f"sla.{rule}: no limit for {', '.join(missing)}")

    def limit_minutes(self, rule: str, area: str | None, priority: str | None) -> float:
        """The limit of ``rule`` for an incident of ``area`` and ``priority``.

        An incident whose area is not known yet (an arrival whose call has not
        turned up) gets the most lenient area limit: when the call turns up the
        limit can only shrink, so a raised alert is never contradicted by it.
        """
        by_area = self.by_area[rule]
        limit = by_area[area] if area in by_area else max(by_area.values())
        cap = self.priority.get(rule)
        if cap is not None and priority in self.priorities:
            limit = min(limit, cap)
        return limit


def limit_micros(minutes: float) -> int:
    return round(minutes * MICROS_PER_MINUTE)


class Clock(NamedTuple):
    """The instants of one armed rule (microseconds since the epoch)."""

    start: int
    warning: int
    deadline: int
    limit_minutes: float


def call_known(incident: Incident, as_of_us: int | None) -> bool:
    """Whether the earliest call (and so area, priority, grid, owner) is visible as
    of ``as_of_us`` (None: as of the end of time)."""
    t0 = incident.times[CALL]
    return t0 is not None and (as_of_us is None or t0 <= as_of_us)


def rule_clock(incident: Incident, rule: str, limits: SlaLimits,
               as_of_us: int | None = None) -> Clock | None:
    """Start, warning threshold and deadline of ``rule``; None without a start
    checkpoint. The limit depends on the area and priority of the earliest call
    as of ``as_of_us``: a restoration clock started by an arrival whose call is
    not known yet gets the most lenient area limit, uncapped."""
    start = incident.times[RULE_CHECKPOINTS[rule][0]]
    if start is None:
        return None
    key = ((rule, incident.area, incident.priority) if call_known(incident, as_of_us)
           else (rule, None, None))
    spans = limits._spans.get(key)
    if spans is None:
        minutes = limits.limit_minutes(*key)
        span = limit_micros(minutes)
        share, whole = WARNING_SHARE
        spans = limits._spans[key] = (minutes, span, span * share // whole)
    minutes, span, warning = spans
    return Clock(start, start + warning, start + span, minutes)


def _known(at: int | None, as_of_us: int) -> bool:
    return at is not None and at <= as_of_us


def rule_state(incident: Incident, rule: str, as_of_us: int, limits: SlaLimits) -> str | None:
    """The state of ``rule`` for ``incident`` as of ``as_of_us`` (module contract);
    None when the rule is not armed as of that instant.

    ``incident`` is the stored fold (earliest instants); facts later than
    ``as_of_us`` are ignored by comparing each stored instant with it.
    """
    if _known(incident.rejected_at, as_of_us) or _known(incident.merged_at, as_of_us):
        return None
    clock = rule_clock(incident, rule, limits, as_of_us)
    if clock is None or clock.start > as_of_us:
        return None
    stop = incident.times[RULE_CHECKPOINTS[rule][1]]
    if stop is not None and stop <= as_of_us:
        if stop < clock.start:
            return "anomaly"
        return "met" if stop <= clock.deadline else "late"
    if as_of_us >= clock.deadline:
        return "breach"
    if as_of_us >= clock.warning:
        return "warning"
    return "ok"


def next_change_us(incident: Incident, rule: str, as_of_us: int,
                   limits: SlaLimits) -> int | None:
    """The earliest instant after ``as_of_us`` at which ``rule_state`` may change
    without any new event (a threshold, or a stored instant not yet reached), or
    None if it cannot. May be early (then the state is simply the same)."""
    candidates = [incident.rejected_at, incident.merged_at, incident.times[CALL],
                  incident.times[RULE_CHECKPOINTS[rule][1]]]
    for clock in (rule_clock(incident, rule, limits, as_of_us), rule_clock(incident, rule, limits)):
        if clock is not None:
            candidates += [clock.start, clock.warning, clock.deadline]
    later = [at for at in candidates if at is not None and at > as_of_us]
    return min(later) if later else None


def utc_text(micros: int) -> str:
    """RFC 3339 in UTC with ``Z``; fractional seconds only when there are any."""
    instant = from_micros(micros)
    text = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if instant.microsecond:
        text += f".{instant.microsecond:06d}".rstrip("0")
    return text + "Z"


def alert_fields(incident: Incident, rule: str, level: str, clock: Clock,
                 as_of_us: int | None = None) -> dict[str, Any]:
    """One entry of the ``active`` list (also the body of a published alert);
    the call's attributes are null while the call is not known as of ``as_of_us``."""
    known = call_known(incident, as_of_us)
    return {
        "incident_id": incident.incident_id,
        "rule": rule,
        "level": level,
        "start": utc_text(clock.start),
        "deadline": utc_text(clock.deadline),
        "limit_minutes": clock.limit_minutes,
        "grid": incident.grid if known else None,
        "area": incident.area if known else None,
        "priority": incident.priority if known else None,
        "owner": incident.owner if known else None,
    }


def alerts_document(incidents: Iterable[Incident], as_of_us: int,
                    limits: SlaLimits) -> dict[str, Any]:
    """The ``dispatch alerts`` JSON: ``as_of``, ``active`` (warnings and breaches
    sorted by deadline, then incident id, then rule) and ``counts`` of every state
    per rule (rules that are not armed are not counted)."""
    counts = {rule: dict.fromkeys(STATES, 0) for rule in RULES}
    active: list[tuple[int, str, int, dict[str, Any]]] = []
    for incident in incidents:
        for order, rule in enumerate(RULES):
            state = rule_state(incident, rule, as_of_us, limits)
            if state is None:
                continue
            counts[rule][state] += 1
            if state in LEVELS:
                clock = rule_clock(incident, rule, limits, as_of_us)
                assert clock is not None  # armed implies a start checkpoint
                active.append((clock.deadline, incident.incident_id, order,
                               alert_fields(incident, rule, state, clock, as_of_us)))
    active.sort(key=lambda entry: entry[:3])
    return {"as_of": utc_text(as_of_us), "active": [entry[3] for entry in active],
            "counts": counts}
