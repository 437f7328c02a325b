"""A naive, independent reference implementation of duty accountability.

Written from the contract text alone, like ``tests/oracle.py`` (whose event
validation and duty calendar it reuses): per duty period, who was on duty, who
owns each incident (the first-contact agent of its earliest call, ties by the
smallest event id), what was handed over still open, the SLA state of each
rule as of the period end, callbacks and first-visit fix. It keeps every event
and answers each question by looking at the events again, in the slowest
obvious way: no running state, no integer microseconds, plain ``datetime``.

Interpretations it shares with the engine (documented in docs/accountability.md):
- ``agents`` lists owners sorted by name, then the incidents whose earliest call
  named no agent (``"agent": null``) last; an empty agent counts as none;
- ``avg_restoration_minutes`` per agent leaves negative restorations out, as the
  period's average does;
- SLA limits are the published defaults; the warning threshold is three quarters
  of the limit;
- ``overall.accountability`` sums the periods' counts, merges their agents, lists
  every period's handover entries in period order, and has no team or leader.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tests.oracle import Calendar, OracleEvent, Rejected, upcast_v0, validate

CHECKPOINT_TYPES = ("call.received", "call.verified", "crew.departed", "crew.arrived",
                    "fault.diagnosed", "repair.completed", "power.restored")
CHECKPOINT_NAMES = ("call", "verify", "depart", "arrive", "diagnose", "repair", "restore")
LIMITS = {"arrival": {"urban": 45, "rural": 90, "remote": 120},
          "restoration": {"urban": 180, "rural": 240, "remote": 240}}
PRIORITY_CAP = {"arrival": 30, "restoration": None}
RULE_TYPES = {"arrival": ("call.received", "crew.arrived"),
              "restoration": ("crew.arrived", "power.restored")}
STATE_NAMES = ("ok", "warning", "breach", "met", "late", "anomaly")


@dataclass(frozen=True)
class Accepted:
    event: OracleEvent
    data: dict[str, Any]


def accepted(lines: list[str]) -> list[Accepted]:
    """The valid, first-seen events with their ``data`` (v0 upcast)."""
    out: list[Accepted] = []
    seen: set[str] = set()
    for line in lines:
        try:
            event = validate(line)
        except Rejected:
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        obj = json.loads(line)
        if obj.get("schema_version", 1) == 0:
            obj = upcast_v0(obj)
        out.append(Accepted(event, obj.get("data") or {}))
    return out


def earliest(events: list[Accepted], kind: str,
             until: datetime | None = None) -> datetime | None:
    times = [a.event.occurred_at for a in events if a.event.type == kind
             and (until is None or a.event.occurred_at <= until)]
    return min(times) if times else None


def first_call(events: list[Accepted]) -> Accepted | None:
    calls = [a for a in events if a.event.type == "call.received"]
    if not calls:
        return None
    return min(calls, key=lambda a: (a.event.occurred_at, a.event.event_id))


def sla_state(events: list[Accepted], rule: str, as_of: datetime) -> str | None:
    """Section 8, as of ``as_of``, from the events known then."""
    known = [a for a in events if a.event.occurred_at <= as_of]
    if any(a.event.type in ("call.rejected", "call.merged") for a in known):
        return None
    start_type, stop_type = RULE_TYPES[rule]
    start = earliest(known, start_type)
    if start is None:
        return None
    call = first_call(known)
    assert call is not None  # the period's incidents have a call before the period end
    area = call.data["area"]
    priority = call.data.get("priority", "normal")
    limit_minutes: float = LIMITS[rule][area]
    cap = PRIORITY_CAP[rule]
    if cap is not None and priority in ("vulnerable", "important"):
        limit_minutes = min(limit_minutes, cap)
    limit = timedelta(minutes=limit_minutes)
    stop = earliest(known, stop_type)
    if stop is not None:
        if stop < start:
            return "anomaly"
        return "met" if stop - start <= limit else "late"
    if as_of >= start + limit:
        return "breach"
    if as_of >= start + limit * 3 / 4:
        return "warning"
    return "ok"


def minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60.0


def agents_of(incidents: dict[str, list[Accepted]], owned: list[str]) -> list[dict[str, Any]]:
    """The ``agents`` list over the incidents ``owned``."""
    by_agent: dict[str | None, list[str]] = {}
    for incident_id in owned:
        call = first_call(incidents[incident_id])
        assert call is not None
        by_agent.setdefault(call.data.get("agent") or None, []).append(incident_id)
    agents = []
    for agent in sorted(by_agent, key=lambda a: (a is None, a or "")):
        restored = []
        for incident_id in by_agent[agent]:
            events = incidents[incident_id]
            t0, t6 = earliest(events, "call.received"), earliest(events, "power.restored")
            if t6 is not None:
                restored.append(minutes(t6 - t0) if t0 is not None else None)
        values = [m for m in restored if m is not None and m >= 0]
        agents.append({"agent": agent, "incidents_owned": len(by_agent[agent]),
                       "restored": len(restored),
                       "avg_restoration_minutes": sum(values) / len(values) if values
                       else None})
    return agents


def period_accountability(incidents: dict[str, list[Accepted]], owned: list[str],
                          shifts: list[Accepted], end: datetime) -> dict[str, Any]:
    """Section 9 for one period whose incidents are ``owned`` and which ends at ``end``."""
    latest = max(shifts, key=lambda a: (a.event.occurred_at, a.event.event_id), default=None)
    agents = agents_of(incidents, owned)
    handover = []
    for incident_id in owned:
        events = incidents[incident_id]
        t6 = earliest(events, "power.restored")
        if t6 is not None and t6 < end:
            continue
        t0 = earliest(events, "call.received")
        assert t0 is not None
        last = "call"
        for kind, name in zip(CHECKPOINT_TYPES[:-1], CHECKPOINT_NAMES[:-1], strict=True):
            at = earliest(events, kind)
            if at is not None and at < end:
                last = name
        call = first_call(events)
        assert call is not None
        handover.append((t0, incident_id, {
            "incident_id": incident_id, "owner": call.data.get("agent") or None,
            "grid": call.data["grid"], "area": call.data["area"],
            "priority": call.data.get("priority", "normal"), "last_checkpoint": last,
            "minutes_open": minutes(end - t0)}))
    handover.sort(key=lambda h: (h[0], h[1]))
    sla = {rule: dict.fromkeys(STATE_NAMES, 0) for rule in LIMITS}
    for incident_id in owned:
        for rule in LIMITS:
            state = sla_state(incidents[incident_id], rule, end)
            if state is not None:
                sla[rule][state] += 1
    callbacks = dict.fromkeys(("restored", "called_back", "reached", "satisfied",
                               "dissatisfied"), 0)
    with_arrival = fixed = 0
    for incident_id in owned:
        events = incidents[incident_id]
        if earliest(events, "power.restored") is None:
            continue
        callbacks["restored"] += 1
        calls = [a.data for a in events if a.event.type == "customer.callback"]
        callbacks["called_back"] += bool(calls)
        callbacks["reached"] += any(c["reached"] for c in calls)
        unhappy = any(c["reached"] and c.get("satisfied") is False for c in calls)
        happy = any(c["reached"] and c.get("satisfied") is True for c in calls)
        callbacks["dissatisfied"] += unhappy
        callbacks["satisfied"] += happy and not unhappy
        crews = {a.data["crew"] for a in events if a.event.type == "crew.arrived"}
        if crews:
            with_arrival += 1
            fixed += len(crews) == 1
    return {
        "team": latest.data["team"] if latest else None,
        "leader": latest.data["leader"] if latest else None,
        "agents": agents,
        "handover": [h[2] for h in handover],
        "sla": sla,
        "callbacks": callbacks,
        "first_visit_fix": fixed / with_arrival if with_arrival else None,
    }


def oracle_accountability(lines: list[str], duty_timezone: str = "Asia/Shanghai",
                          duty_start: str = "08:30") -> dict[str, Any]:
    """``{"periods": {duty_date: accountability}, "overall": accountability}`` for the
    periods the report lists (those with calls or incidents)."""
    calendar = Calendar(duty_timezone, duty_start)
    events = accepted(lines)
    incidents: dict[str, list[Accepted]] = {}
    shifts: dict[date, list[Accepted]] = {}
    calls: set[date] = set()
    for item in events:
        if item.event.type.startswith("duty."):
            shifts.setdefault(calendar.duty_date_of(item.event.occurred_at), []).append(item)
            continue
        incidents.setdefault(item.event.incident_id, []).append(item)
        if item.event.type == "call.received":
            calls.add(calendar.duty_date_of(item.event.occurred_at))
    owned: dict[date, list[str]] = {}
    for incident_id, its in incidents.items():
        if any(a.event.type in ("call.rejected", "call.merged") for a in its):
            continue
        t0 = earliest(its, "call.received")
        if t0 is not None:
            owned.setdefault(calendar.duty_date_of(t0), []).append(incident_id)
    periods = {}
    for day in sorted(calls | set(owned)):
        periods[day.isoformat()] = period_accountability(
            incidents, owned.get(day, []), shifts.get(day, []), calendar.end_of(day))
    return {"periods": periods, "overall": overall(incidents, periods, owned)}


def overall(incidents: dict[str, list[Accepted]], periods: dict[str, dict[str, Any]],
            owned: dict[date, list[str]]) -> dict[str, Any]:
    """Counts summed; agents recomputed over all periods' incidents."""
    everything = [i for day in sorted(owned) for i in owned[day]]
    sla = {rule: {s: sum(p["sla"][rule][s] for p in periods.values()) for s in STATE_NAMES}
           for rule in LIMITS}
    callbacks = {k: sum(p["callbacks"][k] for p in periods.values())
                 for k in ("restored", "called_back", "reached", "satisfied", "dissatisfied")}
    with_arrival = fixed = 0
    for incident_id in everything:
        events = incidents[incident_id]
        crews = {a.data["crew"] for a in events if a.event.type == "crew.arrived"}
        if earliest(events, "power.restored") is not None and crews:
            with_arrival += 1
            fixed += len(crews) == 1
    return {
        "team": None, "leader": None, "agents": agents_of(incidents, everything),
        "handover": [h for day in sorted(periods) for h in periods[day]["handover"]],
        "sla": sla, "callbacks": callbacks,
        "first_visit_fix": fixed / with_arrival if with_arrival else None,
    }


# -- comparing ---------------------------------------------------------------------

def _same(a: Any, b: Any, where: str, problems: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            problems.append(f"{where}: keys engine {list(a)}, oracle {list(b)}")
            return
        for key in a:
            _same(a[key], b[key], f"{where}.{key}", problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{where}: engine has {len(a)} items, oracle {len(b)}: "
                            f"engine {a!r}, oracle {b!r}")
            return
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{n}]", problems)
    elif isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, bool) or isinstance(b, bool) \
                or not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"{where}: engine {a!r}, oracle {b!r}")
    elif type(a) is not type(b) or a != b:
        problems.append(f"{where}: engine {a!r}, oracle {b!r}")


def compare_accountability(engine: dict[str, Any], oracle: dict[str, Any]) -> list[str]:
    """Differences between an engine report's accountability sections and the oracle's."""
    problems: list[str] = []
    got = {p["duty_date"]: p.get("accountability") for p in engine["duty_periods"]}
    if list(got) != list(oracle["periods"]):
        return [f"periods: engine {list(got)}, oracle {list(oracle['periods'])}"]
    for day, want in oracle["periods"].items():
        _same(got[day], want, f"duty_periods[{day}].accountability", problems)
    _same(engine["overall"].get("accountability"), oracle["overall"],
          "overall.accountability", problems)
    return problems
