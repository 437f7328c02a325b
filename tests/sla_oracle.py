"""A naive, independent reference for the SLA rules and the ``dispatch alerts`` document.

Written from the contract text (docs/sla.md), not from ``projections``: it keeps
the raw events, throws away those that occurred after the as-of instant, and
answers each question with ``datetime``/``timedelta`` arithmetic on what is left.
No stored earliest-times, no microsecond integers.

Interpretations it shares with the engine (they are the contract's):
- an event id seen before is a duplicate and ignored (first occurrence wins);
- an incident's area, priority, grid and owner come from its earliest call
  among the visible events (the test data never ties two calls of one incident);
- an armed rule whose incident has no visible call (restoration armed by an
  arrival without a call) has no area: its limit is the most lenient area
  limit, with no priority cap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CHECKPOINT = {"call.received": "t0", "crew.arrived": "t3", "power.restored": "t6"}
RULE_SPANS = {"arrival": ("t0", "t3"), "restoration": ("t3", "t6")}
ALL_STATES = ("ok", "warning", "breach", "met", "late", "anomaly")


@dataclass(frozen=True)
class Limits:
    by_area: dict[str, dict[str, float]]
    caps: dict[str, float | None]
    capped_priorities: tuple[str, ...] = ("vulnerable", "important")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)


def distinct_events(lines: list[str]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for line in lines:
        event = json.loads(line)
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        event["_at"] = _instant(event["occurred_at"])
        out.append(event)
    return out


def rule_states(lines: list[str], as_of: datetime,
                limits: Limits) -> dict[tuple[str, str], dict[str, Any]]:
    """(incident, rule) -> {"state", "start", "deadline", "limit", attributes...}
    for every armed rule as of ``as_of``."""
    visible: dict[str, list[dict[str, Any]]] = {}
    for event in distinct_events(lines):
        if event["_at"] <= as_of:
            visible.setdefault(event["incident_id"], []).append(event)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for incident_id, events in visible.items():
        if any(e["type"] in ("call.rejected", "call.merged") for e in events):
            continue
        times: dict[str, datetime] = {}
        for e in events:
            name = CHECKPOINT.get(e["type"])
            if name is not None and (name not in times or e["_at"] < times[name]):
                times[name] = e["_at"]
        calls = sorted((e for e in events if e["type"] == "call.received"),
                       key=lambda e: e["_at"])
        first = calls[0]["data"] if calls else {}
        area = first.get("area")
        priority = first.get("priority", "normal") if calls else None
        for rule, (begin, end) in RULE_SPANS.items():
            if begin not in times:
                continue
            by_area = limits.by_area[rule]
            limit = by_area[area] if area in by_area else max(by_area.values())
            cap = limits.caps.get(rule)
            if cap is not None and priority in limits.capped_priorities:
                limit = min(limit, cap)
            start = times[begin]
            deadline = start + timedelta(minutes=limit)
            if end in times:
                took = times[end] - start
                if took < timedelta(0):
                    state = "anomaly"
                elif took <= timedelta(minutes=limit):
                    state = "met"
                else:
                    state = "late"
            elif as_of >= deadline:
                state = "breach"
            elif as_of >= start + timedelta(minutes=limit) * 0.75:
                state = "warning"
            else:
                state = "ok"
            found[(incident_id, rule)] = {
                "state": state, "start": start, "deadline": deadline, "limit": limit,
                "grid": first.get("grid"), "area": area, "priority": priority,
                "owner": first.get("agent"),
            }
    return found


def oracle_alerts(lines: list[str], as_of: datetime, limits: Limits) -> dict[str, Any]:
    """The alerts document, with instants as aware datetimes (compare them as such)."""
    states = rule_states(lines, as_of, limits)
    counts = {rule: dict.fromkeys(ALL_STATES, 0) for rule in RULE_SPANS}
    active = []
    for (incident_id, rule), s in states.items():
        counts[rule][s["state"]] += 1
        if s["state"] in ("warning", "breach"):
            active.append({"incident_id": incident_id, "rule": rule, "level": s["state"],
                           "start": s["start"], "deadline": s["deadline"],
                           "limit_minutes": s["limit"], "grid": s["grid"], "area": s["area"],
                           "priority": s["priority"], "owner": s["owner"]})
    rule_order = list(RULE_SPANS)
    active.sort(key=lambda a: (a["deadline"], a["incident_id"], rule_order.index(a["rule"])))
    return {"as_of": as_of, "active": active, "counts": counts}


def raised_not_ended(alerts: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(incident, rule) -> level of the alerts a sequence of alert messages leaves
    raised; fails if a message ends an alert that was never raised."""
    raised: dict[tuple[str, str], str] = {}
    for body in alerts:
        key = (body["incident_id"], body["rule"])
        if body["level"] in ("resolved", "cancelled"):
            assert key in raised, f"{body['alert_id']} ends an alert never raised"
            del raised[key]
        else:
            raised[key] = body["level"]
    return raised
