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

Only the contract keys are produced; ``compare_reports`` compares an engine report
with an oracle report on exactly those keys.
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
               "open_at_handover", "avg_restoration_minutes", "anomalies")
OVERALL_KEYS = ("calls", "incidents", "restored", "open_at_handover",
                "avg_restoration_minutes", "anomalies")
TOP_KEYS = ("duty_timezone", "duty_start", "unattributed", "rejected_events",
            "duplicate_events")


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
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:  # pragma: no cover - the regex already demands an offset
        raise Rejected(f"{name}: timestamp has no offset")
    return parsed.astimezone(UTC)


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
    data = obj.get("data", {})
    if not isinstance(data, dict):
        raise Rejected("data: not an object")
    for name in REQUIRED_DATA[kind]:
        if not isinstance(data.get(name), str) or not data[name]:
            raise Rejected(f"data.{name}: missing")
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
    return OracleEvent(obj["event_id"], kind, obj.get("incident_id") or "", occurred)


@dataclass
class OracleIncident:
    incident_id: str
    checkpoints: dict[int, datetime] = field(default_factory=dict)
    ended: bool = False  # rejected or merged: not an outage incident

    def t(self, k: int) -> datetime | None:
        return self.checkpoints.get(k)


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


def fold(lines: list[str]) -> tuple[list[OracleEvent], int, int]:
    """Validate and de-duplicate: (accepted events, rejected count, duplicate count)."""
    accepted: list[OracleEvent] = []
    seen: set[str] = set()
    rejected = duplicates = 0
    for line in lines:
        try:
            event = validate(line)
        except Rejected:
            rejected += 1
            continue
        if event.event_id in seen:
            duplicates += 1
            continue
        seen.add(event.event_id)
        accepted.append(event)
    return accepted, rejected, duplicates


def incidents_of(events: list[OracleEvent]) -> dict[str, OracleIncident]:
    incidents: dict[str, OracleIncident] = {}
    for event in events:
        if event.type.startswith("duty.") or event.type in NO_INCIDENT_TYPES:
            continue  # belongs to no incident
        incident = incidents.setdefault(event.incident_id, OracleIncident(event.incident_id))
        if event.type in ENDING_TYPES:
            incident.ended = True
        k = CHECKPOINT_OF_TYPE.get(event.type)
        if k is None:
            continue
        current = incident.checkpoints.get(k)
        if current is None or event.occurred_at < current:
            incident.checkpoints[k] = event.occurred_at
    return incidents


def statistics(incidents: list[OracleIncident], calls: int,
               ends: list[datetime]) -> dict[str, Any]:
    """The contract fields of a period (or of overall): ``ends[i]`` is the end of
    the period that owns ``incidents[i]``."""
    stage_values: dict[str, list[float]] = {name: [] for name in STAGE_NAMES}
    restoration: list[float] = []
    anomalies = restored = open_at_handover = 0
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
        t0, t6 = incident.t(0), incident.t(6)
        if t6 is not None:
            restored += 1
        if t6 is None or not t6 < end:
            open_at_handover += 1
        if t0 is not None and t6 is not None:
            minutes = minutes_between(t0, t6)
            if minutes >= 0:
                restoration.append(minutes)
    return {
        "calls": calls,
        "incidents": len(incidents),
        "restored": restored,
        "open_at_handover": open_at_handover,
        "stages": {name: {"count": len(values), "mean_minutes": mean(values)}
                   for name, values in stage_values.items()},
        "avg_restoration_minutes": mean(restoration),
        "anomalies": anomalies,
    }


def oracle_report(lines: list[str], duty_timezone: str = "Asia/Shanghai",
                  duty_start: str = "08:30") -> dict[str, Any]:
    """The docs/report.md report (contract keys only) of the JSON Lines ``lines``."""
    calendar = Calendar(duty_timezone, duty_start)
    events, rejected, duplicates = fold(lines)
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
    return {
        "duty_timezone": duty_timezone,
        "duty_start": duty_start,
        "duty_periods": periods,
        "overall": overall,
        "unattributed": unattributed,
        "rejected_events": rejected,
        "duplicate_events": duplicates,
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
        return
    for name in STAGE_NAMES:
        got = stages.get(name)
        want = oracle["stages"][name]
        if not isinstance(got, dict):
            problems.append(f"{where}.stages.{name}: missing in engine report")
            continue
        if got.get("count") != want["count"]:
            problems.append(f"{where}.stages.{name}.count: engine {got.get('count')!r}, "
                            f"oracle {want['count']!r}")
        if "mean_minutes" not in got or not _same_number(got["mean_minutes"],
                                                          want["mean_minutes"]):
            problems.append(f"{where}.stages.{name}.mean_minutes: engine "
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
    return problems
