"""A naive, independent reference implementation of docs/events.md, docs/kpis.md and docs/report.md.

Written from the documented contract alone (it does not import or mirror ``projections``),
so that the engine's numbers can be checked against something that got there by a
different road: plain ``datetime``/``zoneinfo`` arithmetic, plain float sums, one
pass per question, no cleverness.

Interpretations the engine follows and this oracle matches:
- stage k exists only when checkpoints k-1 and k both exist; a negative stage is
  counted in ``anomalies`` and left out of the stage's ``count`` and mean;
- a negative restoration (t6 < t0) is left out of ``avg_restoration_minutes`` and
  is NOT counted in ``anomalies``;
- ``restored`` counts incidents with any t6; ``open_at_handover`` those whose t6
  is missing or not before the period's end;
- incidents with a ``call.rejected`` or ``call.merged`` event are not outage
  incidents (left out of everything but ``calls``);
- a period is listed only when it has calls or incidents; ``start``/``end`` are
  ``isoformat()`` of the aware local datetime in the duty time zone.

Beyond the contract keys, the oracle also computes every field the engine adds:
- ``closed``: outage incidents with an ``incident.closed`` event;
- ``restoration_anomalies``: incidents with t6 < t0;
- ``arrival`` (t3 - t0) and ``restore_after_arrival`` (t6 - t3): count and mean of
  the non-negative ones (negative ones are counted nowhere);
- ``breakdowns`` by ``grid``, ``area`` and ``crew``: the same statistics over all
  periods per member. An incident's grid and area come from its earliest call
  (ties: smallest ``event_id``); its crew is that of the earliest ``crew.arrived``,
  else of the earliest ``crew.dispatched`` (ties: smallest crew), else ``(none)``.
  ``calls`` count each call under its own grid and area (crews take no calls).
  A member is listed when it has calls or incidents.

``compare_reports`` compares an engine report with an oracle report on every one
of these keys.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

CHECKPOINT_OF_TYPE = {
    "call.received": 0,
    "call.verified": 1,
    "crew.departed": 2,
    "crew.arrived": 3,
    "fault.diagnosed": 4,
    "repair.completed": 5,
    "power.restored": 6,
}
STAGE_NAMES = ("verify", "depart", "arrive", "diagnose", "repair", "restore")
REQUIRED_DATA = {
    "call.received": ("grid", "area"),
    "call.verified": (),
    "call.rejected": ("reason",),
    "call.merged": ("into_incident_id",),
    "crew.dispatched": ("crew",),
    "crew.departed": ("crew",),
    "crew.arrived": ("crew",),
    "fault.diagnosed": (),
    "repair.completed": (),
    "power.restored": (),
    "incident.closed": (),
    "customer.callback": (),
    "duty.shift_started": ("team", "leader"),
    "crew.rostered": ("crew", "grid"),
}
NO_INCIDENT_TYPES = ("crew.rostered",)  # a crew's roster entry: no incident, no KPI
EVENT_TYPES = frozenset(REQUIRED_DATA)
AREAS = ("urban", "rural", "remote")
PRIORITIES = ("normal", "vulnerable", "important")
ENDING_TYPES = ("call.rejected", "call.merged")

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
)

PERIOD_KEYS = ("duty_date", "start", "end", "calls", "incidents", "restored",
               "open_at_handover", "avg_restoration_minutes", "anomalies", "closed",
               "restoration_anomalies")
OVERALL_KEYS = ("calls", "incidents", "restored", "open_at_handover",
                "avg_restoration_minutes", "anomalies", "closed", "restoration_anomalies")
DURATION_KEYS = ("arrival", "restore_after_arrival")
DIMENSIONS = ("grid", "area", "crew")
NO_MEMBER = "(none)"
TOP_KEYS = ("duty_timezone", "duty_start", "unattributed", "rejected_events",
            "duplicate_events", "conflicting_events")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
END_OF_RANGE = datetime(2200, 1, 1, tzinfo=UTC)
MAX_COUNT = 2**53 - 1
COUNT_FIELDS = {"call.received": "customers_affected", "power.restored": "customers_restored"}


class Rejected(Exception):
    """The line is not a valid event (docs/events.md)."""


def parse_instant(value: Any, name: str) -> datetime:
    """An RFC 3339 timestamp with an offset, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise Rejected(f"{name}: not a string")
    match = RFC3339.match(value)
    if match is None:
        raise Rejected(f"{name}: not an RFC 3339 timestamp")
    if match.group(2) is None:
        raise Rejected(f"{name}: timestamp has no offset")
    text = value.replace("t", "T").replace("z", "Z")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:  # 2026-02-30, 24:00:00, +24:00 ...
        raise Rejected(f"{name}: not a real instant ({exc})") from None
    if parsed.tzinfo is None:  # pragma: no cover - the regex already demands an offset
        raise Rejected(f"{name}: timestamp has no offset")
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+08:00 is before year 1 in UTC
        raise Rejected(f"{name}: out of range") from None
    if not EARLIEST <= instant < END_OF_RANGE:
        raise Rejected(f"{name}: out of range (1970 to before 2200)")
    return instant


def upcast_v0(obj: dict[str, Any]) -> dict[str, Any]:
    """Legacy v0: ``time`` for ``occurred_at``, ``data.crew_id`` for ``data.crew``."""
    out = dict(obj)
    if "occurred_at" not in out and "time" in out:
        out["occurred_at"] = out.pop("time")
    data = out.get("data")
    if isinstance(data, dict) and "crew" not in data and "crew_id" in data:
        data = dict(data)
        data["crew"] = data.pop("crew_id")
        out["data"] = data
    out["schema_version"] = 1
    return out


@dataclass(frozen=True)
class OracleEvent:
    event_id: str
    type: str
    incident_id: str
    occurred_at: datetime  # aware, UTC
    data: dict[str, Any] = field(default_factory=dict, compare=False)


def validate(line: str | bytes) -> OracleEvent:
    """docs/events.md: the event in ``line``, or Rejected."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejected(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Rejected("not a JSON object")
    version = obj.get("schema_version", 1)
    if type(version) is not int:
        raise Rejected("schema_version: not an integer")
    if version == 0:
        obj = upcast_v0(obj)
    elif version != 1:
        raise Rejected(f"schema_version: unsupported {version}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise Rejected("type: missing")
    if kind not in EVENT_TYPES:
        raise Rejected(f"type: unknown event type {kind!r}")
    duty = kind.startswith("duty.")  # no incident: incident_id may be absent or null
    for name in ("event_id", "incident_id"):
        if (duty or kind in NO_INCIDENT_TYPES) and name == "incident_id" and obj.get(name) is None:
            continue
        if not isinstance(obj.get(name), str) or not obj[name]:
            raise Rejected(f"{name}: missing")
    if "occurred_at" not in obj:
        raise Rejected("occurred_at: missing")
    occurred = parse_instant(obj["occurred_at"], "occurred_at")
    if obj.get("recorded_at") is not None:
        parse_instant(obj["recorded_at"], "recorded_at")
    if "data" not in obj:
        raise Rejected("data: missing")
    data = obj["data"]
    if not isinstance(data, dict):
        raise Rejected("data: not an object")
    for name in REQUIRED_DATA[kind]:
        if not isinstance(data.get(name), str) or not data[name]:
            raise Rejected(f"data.{name}: missing")
    count = data.get(COUNT_FIELDS.get(kind, ""))
    if count is not None and (type(count) is not int or not 0 <= count <= MAX_COUNT):
        raise Rejected(f"data.{COUNT_FIELDS[kind]}: not a count")
    eta = data.get("eta_minutes") if kind == "crew.dispatched" else None
    if eta is not None and (type(eta) not in (int, float) or not 0 <= eta < math.inf):
        raise Rejected("data.eta_minutes: not a number of minutes")
    if kind == "incident.closed" and data.get("satisfied") not in (None, True, False):
        raise Rejected("data.satisfied: not a boolean")
    if kind == "call.received":
        if data["area"] not in AREAS:
            raise Rejected("data.area: not urban/rural/remote")
        if data.get("priority", "normal") not in PRIORITIES:
            raise Rejected("data.priority: not normal/vulnerable/important")
    if kind == "customer.callback":
        reached, satisfied = data.get("reached"), data.get("satisfied")
        if not isinstance(reached, bool) or not isinstance(satisfied, bool | None):
            raise Rejected("data.reached / data.satisfied: not booleans")
        if satisfied is not None and not reached:
            raise Rejected("data.satisfied: given without reached true")
    if kind == "duty.shift_started" and data.get("members") is not None and not (
            isinstance(data["members"], list)
            and all(isinstance(m, str) and m for m in data["members"])):
        raise Rejected("data.members: not a list of names")
    if kind == "crew.rostered":
        skills = data.get("skills", [])
        if not isinstance(skills, list) or not all(isinstance(x, str) and x for x in skills):
            raise Rejected("data.skills: not a list of names")
    return OracleEvent(obj["event_id"], kind, obj.get("incident_id") or "", occurred, data)


@dataclass
class OracleIncident:
    incident_id: str
    checkpoints: dict[int, datetime] = field(default_factory=dict)
    ended: bool = False  # rejected or merged: not an outage incident
    closed: bool = False
    calls: list[OracleEvent] = field(default_factory=list)
    arrivals: list[OracleEvent] = field(default_factory=list)
    dispatches: list[OracleEvent] = field(default_factory=list)

    def t(self, k: int) -> datetime | None:
        return self.checkpoints.get(k)

    def member(self, dimension: str) -> str:
        """The incident's grid, area or crew (see the module doc for the rules)."""
        if dimension in ("grid", "area"):
            first = min(self.calls, key=lambda e: (e.occurred_at, e.event_id))
            return str(first.data[dimension])
        for events in (self.arrivals, self.dispatches):
            if events:
                first = min(events, key=lambda e: (e.occurred_at, e.data["crew"]))
                return str(first.data["crew"])
        return NO_MEMBER


class Calendar:
    """Duty periods, computed the slow obvious way."""

    def __init__(self, timezone: str, duty_start: str) -> None:
        self.zone = ZoneInfo(timezone)
        hours, minutes = duty_start.split(":")
        self.start_time = time(int(hours), int(minutes))

    def start_of(self, duty_date: date) -> datetime:
        """The UTC instant at which the period of ``duty_date`` starts (fold=0)."""
        local = datetime.combine(duty_date, self.start_time).replace(tzinfo=self.zone)
        return local.astimezone(UTC)

    def end_of(self, duty_date: date) -> datetime:
        return self.start_of(duty_date + timedelta(days=1))

    def duty_date_of(self, instant: datetime) -> date:
        local_date = instant.astimezone(self.zone).date()
        for offset in (-2, -1, 0, 1):
            candidate = local_date + timedelta(days=offset)
            if self.start_of(candidate) <= instant < self.end_of(candidate):
                return candidate
        raise AssertionError(f"no duty period contains {instant}")  # pragma: no cover

    def local_text(self, instant: datetime) -> str:
        return instant.astimezone(self.zone).isoformat()


def minutes_between(earlier: datetime, later: datetime) -> float:
    return (later.astimezone(UTC) - earlier.astimezone(UTC)).total_seconds() / 60.0


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def content(event: OracleEvent) -> tuple[Any, ...]:
    """What happened: type, incident, instant and data (absent = null, the default
    priority filled in, 5 = 5.0 but true != 1)."""
    data = {k: v for k, v in event.data.items() if v is not None}
    if event.type == "call.received":
        data.setdefault("priority", "normal")
    return (event.type, event.incident_id, event.occurred_at, _plain(data))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(_plain(v) for v in value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    return ("text", value)


def fold(lines: list[str]) -> tuple[list[OracleEvent], int, int]:
    """(accepted events, rejected count, duplicate count): ``fold_all`` without the
    conflicting count."""
    accepted, rejected, duplicates, _ = fold_all(lines)
    return accepted, rejected, duplicates


def fold_all(lines: list[str]) -> tuple[list[OracleEvent], int, int, int]:
    """Validate and de-duplicate in file order: (accepted events, rejected count,
    duplicate count, conflicting count). A valid copy of an accepted ``event_id``
    is a duplicate when its content is the same, else a conflict (the first stands)."""
    accepted: list[OracleEvent] = []
    seen: dict[str, OracleEvent] = {}
    rejected = duplicates = conflicts = 0
    for line in lines:
        try:
            event = validate(line)
        except Rejected:
            rejected += 1
            continue
        first = seen.get(event.event_id)
        if first is not None:
            if content(first) == content(event):
                duplicates += 1
            else:
                conflicts += 1
            continue
        seen[event.event_id] = event
        accepted.append(event)
    return accepted, rejected, duplicates, conflicts


def incidents_of(events: list[OracleEvent]) -> dict[str, OracleIncident]:
    incidents: dict[str, OracleIncident] = {}
    for event in events:
        if event.type.startswith("duty.") or event.type in NO_INCIDENT_TYPES:
            continue  # belongs to no incident
        incident = incidents.setdefault(event.incident_id, OracleIncident(event.incident_id))
        if event.type in ENDING_TYPES:
            incident.ended = True
        elif event.type == "incident.closed":
            incident.closed = True
        elif event.type == "call.received":
            incident.calls.append(event)
        elif event.type == "crew.arrived":
            incident.arrivals.append(event)
        elif event.type == "crew.dispatched":
            incident.dispatches.append(event)
        k = CHECKPOINT_OF_TYPE.get(event.type)
        if k is None:
            continue
        current = incident.checkpoints.get(k)
        if current is None or event.occurred_at < current:
            incident.checkpoints[k] = event.occurred_at
    return incidents


def duration(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "mean_minutes": mean(values)}


def statistics(incidents: list[OracleIncident], calls: int,
               ends: list[datetime]) -> dict[str, Any]:
    """The fields of a period (or of overall, or of a breakdown member): ``ends[i]``
    is the end of the period that owns ``incidents[i]``."""
    stage_values: dict[str, list[float]] = {name: [] for name in STAGE_NAMES}
    restoration: list[float] = []
    arrival: list[float] = []
    after_arrival: list[float] = []
    anomalies = restored = open_at_handover = closed = restoration_anomalies = 0
    for incident, end in zip(incidents, ends, strict=True):
        for k, name in enumerate(STAGE_NAMES, start=1):
            before, after = incident.t(k - 1), incident.t(k)
            if before is None or after is None:
                continue
            minutes = minutes_between(before, after)
            if minutes < 0:
                anomalies += 1
            else:
                stage_values[name].append(minutes)
        t0, t3, t6 = incident.t(0), incident.t(3), incident.t(6)
        if t6 is not None:
            restored += 1
        if t6 is None or not t6 < end:
            open_at_handover += 1
        if incident.closed:
            closed += 1
        if t0 is not None and t6 is not None:
            minutes = minutes_between(t0, t6)
            if minutes >= 0:
                restoration.append(minutes)
            else:
                restoration_anomalies += 1
        for start, stop, values in ((t0, t3, arrival), (t3, t6, after_arrival)):
            if start is not None and stop is not None and stop >= start:
                values.append(minutes_between(start, stop))
    return {
        "calls": calls,
        "incidents": len(incidents),
        "restored": restored,
        "open_at_handover": open_at_handover,
        "stages": {name: duration(values) for name, values in stage_values.items()},
        "avg_restoration_minutes": mean(restoration),
        "anomalies": anomalies,
        "closed": closed,
        "restoration_anomalies": restoration_anomalies,
        "arrival": duration(arrival),
        "restore_after_arrival": duration(after_arrival),
    }


def breakdowns(incidents: list[OracleIncident], ends: list[datetime],
               calls: list[OracleEvent]) -> dict[str, dict[str, Any]]:
    """Per grid, area and crew: statistics over every attributed outage incident of
    the member, with calls counted under each call's own grid and area."""
    out: dict[str, dict[str, Any]] = {}
    for dimension in DIMENSIONS:
        owned: dict[str, list[tuple[OracleIncident, datetime]]] = {}
        for incident, end in zip(incidents, ends, strict=True):
            owned.setdefault(incident.member(dimension), []).append((incident, end))
        call_count: dict[str, int] = {}
        if dimension != "crew":
            for call in calls:
                name = str(call.data[dimension])
                call_count[name] = call_count.get(name, 0) + 1
        out[dimension] = {
            name: statistics([i for i, _ in owned.get(name, [])],
                             call_count.get(name, 0), [e for _, e in owned.get(name, [])])
            for name in sorted(set(owned) | set(call_count))
        }
    return out


def oracle_report(lines: list[str], duty_timezone: str = "Asia/Shanghai",
                  duty_start: str = "08:30") -> dict[str, Any]:
    """The docs/report.md report (contract keys only) of the JSON Lines ``lines``."""
    calendar = Calendar(duty_timezone, duty_start)
    events, rejected, duplicates, conflicts = fold_all(lines)
    incidents = incidents_of(events)

    calls_by_date: dict[date, int] = {}
    for event in events:
        if event.type == "call.received":
            when = calendar.duty_date_of(event.occurred_at)
            calls_by_date[when] = calls_by_date.get(when, 0) + 1

    outage = [i for i in incidents.values() if not i.ended]
    unattributed = sum(1 for i in outage if i.t(0) is None)
    by_date: dict[date, list[OracleIncident]] = {}
    for incident in outage:
        t0 = incident.t(0)
        if t0 is not None:
            by_date.setdefault(calendar.duty_date_of(t0), []).append(incident)

    periods = []
    all_incidents: list[OracleIncident] = []
    all_ends: list[datetime] = []
    for duty_date in sorted(set(calls_by_date) | set(by_date)):
        owned = by_date.get(duty_date, [])
        calls = calls_by_date.get(duty_date, 0)
        if not owned and not calls:  # pragma: no cover - both sets only hold non-empty
            continue
        end = calendar.end_of(duty_date)
        period = {
            "duty_date": duty_date.isoformat(),
            "start": calendar.local_text(calendar.start_of(duty_date)),
            "end": calendar.local_text(end),
            **statistics(owned, calls, [end] * len(owned)),
        }
        periods.append(period)
        all_incidents += owned
        all_ends += [end] * len(owned)

    overall = statistics(all_incidents, sum(calls_by_date.values()), all_ends)
    calls = [event for event in events if event.type == "call.received"]
    return {
        "duty_timezone": duty_timezone,
        "duty_start": duty_start,
        "duty_periods": periods,
        "overall": overall,
        "unattributed": unattributed,
        "rejected_events": rejected,
        "duplicate_events": duplicates,
        "conflicting_events": conflicts,
        "breakdowns": breakdowns(all_incidents, all_ends, calls),
    }


# -- comparing ---------------------------------------------------------------------

def _same_number(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _compare_stats(engine: dict[str, Any], oracle: dict[str, Any], keys: tuple[str, ...],
                   where: str, problems: list[str]) -> None:
    for key in keys:
        if key not in engine:
            problems.append(f"{where}.{key}: missing in engine report")
            continue
        mine, theirs = oracle[key], engine[key]
        if key == "avg_restoration_minutes":
            same = _same_number(theirs, mine)
        elif isinstance(mine, int):
            same = type(theirs) is int and theirs == mine
        else:
            same = theirs == mine
        if not same:
            problems.append(f"{where}.{key}: engine {theirs!r}, oracle {mine!r}")
    stages = engine.get("stages")
    if not isinstance(stages, dict):
        problems.append(f"{where}.stages: missing in engine report")
    else:
        for name in STAGE_NAMES:
            _compare_duration(stages.get(name), oracle["stages"][name],
                              f"{where}.stages.{name}", problems)
    for name in DURATION_KEYS:
        _compare_duration(engine.get(name), oracle[name], f"{where}.{name}", problems)


def _compare_duration(got: Any, want: dict[str, Any], where: str,
                      problems: list[str]) -> None:
    if not isinstance(got, dict):
        problems.append(f"{where}: missing in engine report")
        return
    if type(got.get("count")) is not int or got["count"] != want["count"]:
        problems.append(f"{where}.count: engine {got.get('count')!r}, "
                        f"oracle {want['count']!r}")
    if "mean_minutes" not in got or not _same_number(got["mean_minutes"],
                                                      want["mean_minutes"]):
        problems.append(f"{where}.mean_minutes: engine "
                        f"{got.get('mean_minutes', '<missing>')!r}, "
                        f"oracle {want['mean_minutes']!r}")


def compare_reports(engine: dict[str, Any], oracle: dict[str, Any]) -> list[str]:
    """Differences on the contract keys (empty when the engine agrees)."""
    problems: list[str] = []
    for key in TOP_KEYS:
        if engine.get(key, "<missing>") != oracle[key]:
            problems.append(f"{key}: engine {engine.get(key, '<missing>')!r}, "
                            f"oracle {oracle[key]!r}")
    got_dates = [p.get("duty_date") for p in engine.get("duty_periods", [])]
    want_dates = [p["duty_date"] for p in oracle["duty_periods"]]
    if got_dates != want_dates:
        problems.append(f"duty_periods dates: engine {got_dates}, oracle {want_dates}")
    else:
        for got, want in zip(engine["duty_periods"], oracle["duty_periods"], strict=True):
            _compare_stats(got, want, PERIOD_KEYS, f"duty_periods[{want['duty_date']}]",
                           problems)
    if "overall" not in engine:
        problems.append("overall: missing in engine report")
    else:
        _compare_stats(engine["overall"], oracle["overall"], OVERALL_KEYS, "overall",
                       problems)
    got_breakdowns = engine.get("breakdowns")
    if not isinstance(got_breakdowns, dict):
        problems.append("breakdowns: missing in engine report")
        return problems
    for dimension in DIMENSIONS:
        got_members = got_breakdowns.get(dimension)
        want_members = oracle["breakdowns"][dimension]
        if not isinstance(got_members, dict) or sorted(got_members) != sorted(want_members):
            problems.append(f"breakdowns.{dimension} members: engine "
                            f"{sorted(got_members or {})}, oracle {sorted(want_members)}")
            continue
        for member, want in want_members.items():
            _compare_stats(got_members[member], want, OVERALL_KEYS,
                           f"breakdowns.{dimension}[{member}]", problems)
    return problems
