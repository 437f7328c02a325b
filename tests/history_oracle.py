"""A naive reference for the analysts' history: windows, compare, IEEE 1366.

Written from the contract text, on top of the naive report oracle
(``tests/oracle.py``: validation, incidents, duty calendar, statistics), never
from ``projections``:
- ``--as-of T`` keeps the events whose ``occurred_at`` <= T; ``--known-at T`` keeps
  the events whose earliest ``recorded_at`` among their copies (``occurred_at``
  when no copy has one) is <= T; both choose events before anything is computed;
- ``--from/--to`` report the duty periods whose date is in the range, with all
  their incidents' events; ``overall`` is over those periods only; the
  ``unattributed``/``rejected_events``/``duplicate_events`` counts are the input's;
- compare: overall means of two such ranges, change = (against - base) / base x 100;
- reliability: sustained interruptions (restoration >= 5 min) of outage incidents
  with a call and a restoration; customers from the earliest call (1 if absent);
  SAIFI/SAIDI per duty date and overall; T_MED = exp(mean + 2.5 x sample std) of
  ln(daily SAIDI > 0); a day above it is a major event day.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from typing import Any

from tests.oracle import (
    Calendar,
    OracleIncident,
    Rejected,
    breakdowns,
    fold,
    fold_all,
    incidents_of,
    parse_instant,
    statistics,
    upcast_v0,
    validate,
)


def _object(line: str) -> dict[str, Any]:
    obj = json.loads(line)
    return upcast_v0(obj) if obj.get("schema_version", 1) == 0 else obj


def known_times(lines: list[str]) -> dict[str, datetime]:
    """Event id -> earliest recorded_at among its valid copies, else occurred_at."""
    known: dict[str, datetime] = {}
    for line in lines:
        try:
            event = validate(line)
        except Rejected:
            continue
        recorded = _object(line).get("recorded_at")
        when = parse_instant(recorded, "recorded_at") if recorded is not None \
            else event.occurred_at
        if event.event_id not in known or when < known[event.event_id]:
            known[event.event_id] = when
    return known


def first_calls(lines: list[str]) -> dict[str, tuple[datetime, int]]:
    """Incident -> (time, customers) of its earliest call (customers 1 if absent)."""
    calls: dict[str, tuple[datetime, str, int]] = {}
    seen: set[str] = set()
    for line in lines:
        try:
            event = validate(line)
        except Rejected:
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if event.type != "call.received":
            continue
        customers = _object(line)["data"].get("customers_affected")
        # Calls at the same instant: the one with the smaller event_id is the earliest.
        entry = (event.occurred_at, event.event_id, 1 if customers is None else customers)
        current = calls.get(event.incident_id)
        if current is None or entry[:2] < current[:2]:
            calls[event.incident_id] = entry
    return {i: (at, n) for i, (at, _, n) in calls.items()}


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def kept_events(lines: list[str], as_of: str | None, known_at: str | None) -> list[Any]:
    events, _, _ = fold(lines)
    known = known_times(lines)
    limit_occurred, limit_known = _instant(as_of), _instant(known_at)
    return [e for e in events
            if (limit_occurred is None or e.occurred_at <= limit_occurred)
            and (limit_known is None or known[e.event_id] <= limit_known)]


def history_report(lines: list[str], duty_timezone: str, duty_start: str, *,
                   first: date | None = None, last: date | None = None,
                   as_of: str | None = None, known_at: str | None = None) -> dict[str, Any]:
    """The report's contract keys for one window (module doc)."""
    calendar = Calendar(duty_timezone, duty_start)
    _, rejected, duplicates, conflicts = fold_all(lines)
    events = kept_events(lines, as_of, known_at)

    def in_range(day: date) -> bool:
        return (first is None or day >= first) and (last is None or day <= last)

    calls: dict[date, int] = {}
    for event in events:
        if event.type == "call.received":
            day = calendar.duty_date_of(event.occurred_at)
            calls[day] = calls.get(day, 0) + 1
    outage = [i for i in incidents_of(events).values() if not i.ended]
    owned: dict[date, list[OracleIncident]] = {}
    for incident in outage:
        t0 = incident.t(0)
        if t0 is not None:
            owned.setdefault(calendar.duty_date_of(t0), []).append(incident)
    periods, everyone, ends, total_calls = [], [], [], 0
    for day in sorted(d for d in set(calls) | set(owned) if in_range(d)):
        mine, end = owned.get(day, []), calendar.end_of(day)
        periods.append({"duty_date": day.isoformat(),
                        "start": calendar.local_text(calendar.start_of(day)),
                        "end": calendar.local_text(end),
                        **statistics(mine, calls.get(day, 0), [end] * len(mine))})
        everyone += mine
        ends += [end] * len(mine)
        total_calls += calls.get(day, 0)
    return {
        "duty_timezone": duty_timezone, "duty_start": duty_start,
        "duty_periods": periods,
        "overall": statistics(everyone, total_calls, ends),
        "unattributed": sum(1 for i in outage if i.t(0) is None),
        "rejected_events": rejected, "duplicate_events": duplicates,
        "conflicting_events": conflicts,
        "breakdowns": breakdowns(everyone, ends, [
            e for e in events if e.type == "call.received"
            and in_range(calendar.duty_date_of(e.occurred_at))]),
    }


def change(base: float | None, against: float | None) -> float | None:
    if base is None or against is None or base == 0:
        return None
    return (against - base) / base * 100


def compare(lines: list[str], duty_timezone: str, duty_start: str,
            base: tuple[date, date], against: tuple[date, date]) -> dict[str, Any]:
    reports = [history_report(lines, duty_timezone, duty_start, first=a, last=b)["overall"]
               for a, b in (base, against)]
    stages = {name: {"base": reports[0]["stages"][name]["mean_minutes"],
                     "against": reports[1]["stages"][name]["mean_minutes"]}
              for name in reports[0]["stages"]}
    for pair in stages.values():
        pair["change_percent"] = change(pair["base"], pair["against"])
    restoration = {"base": reports[0]["avg_restoration_minutes"],
                   "against": reports[1]["avg_restoration_minutes"]}
    restoration["change_percent"] = change(restoration["base"], restoration["against"])
    return {"stages": stages, "avg_restoration_minutes": restoration}


def reliability(lines: list[str], duty_timezone: str, duty_start: str, served: int, *,
                first: date | None = None, last: date | None = None,
                as_of: str | None = None, known_at: str | None = None) -> dict[str, Any]:
    calendar = Calendar(duty_timezone, duty_start)
    events = kept_events(lines, as_of, known_at)
    kept_ids = {e.event_id for e in events}
    calls = first_calls([line for line in lines if _event_id(line) in kept_ids])
    per_day: dict[date, list[tuple[int, float]]] = {}
    for incident in incidents_of(events).values():
        t0, t6 = incident.t(0), incident.t(6)
        if incident.ended or t0 is None or t6 is None:
            continue
        minutes = (t6 - t0).total_seconds() / 60
        if minutes < 5:
            continue
        day = calendar.duty_date_of(t0)
        if (first is not None and day < first) or (last is not None and day > last):
            continue
        per_day.setdefault(day, []).append((calls[incident.incident_id][1], minutes))

    def indices(items: list[tuple[int, float]]) -> dict[str, float | None]:
        customers = sum(c for c, _ in items)
        saidi = sum(c * m for c, m in items) / served
        saifi = customers / served
        return {"saifi": saifi, "saidi": saidi, "caidi": saidi / saifi if saifi else None}

    daily = {day.isoformat(): indices(items) for day, items in sorted(per_day.items())}
    logs = [math.log(v["saidi"]) for v in daily.values() if v["saidi"] > 0]
    t_med = None
    if len(logs) >= 2:
        alpha = sum(logs) / len(logs)
        beta = math.sqrt(sum((x - alpha) ** 2 for x in logs) / (len(logs) - 1))
        t_med = math.exp(alpha + 2.5 * beta)
    major = [d for d, v in daily.items() if t_med is not None and v["saidi"] > t_med]
    everything = [x for items in per_day.values() for x in items]
    normal = [x for day, items in per_day.items() if day.isoformat() not in major
              for x in items]
    return {"customers_served": served, "t_med": t_med, "major_event_days": major,
            "overall": indices(everything), "excluding_major_events": indices(normal),
            "daily": {d: {"saifi": v["saifi"], "saidi": v["saidi"]} for d, v in daily.items()}}


def _event_id(line: str) -> str | None:
    try:
        return validate(line).event_id
    except Rejected:
        return None


def close(a: Any, b: Any, where: str = "") -> list[str]:
    """Differences between two JSON values, numbers compared to 1e-9 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        problems = [f"{where}.{k}: missing" for k in b if k not in a]
        for key in b:
            if key in a:
                problems += close(a[key], b[key], f"{where}.{key}")
        return problems
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {a!r} != {b!r}"]
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True))
                for p in close(x, y, f"{where}[{i}]")]
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) else \
            [f"{where}: engine {a!r}, oracle {b!r}"]
    return [] if a == b else [f"{where}: engine {a!r}, oracle {b!r}"]
