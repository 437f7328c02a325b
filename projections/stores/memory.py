"""In-memory store: the fake for unit tests and the engine behind ``--input``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Sequence

from projections.changes import (
    incident_changes,
    period_changes,
    retention_cutoff,
    service_days,
)
from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.ports import (
    ALERT_RELAY,
    DEFAULT_CHANGE_RETENTION_DAYS,
    AlertEntry,
    Change,
    ChangeWindow,
    CommandAnswer,
    Commit,
    LoggedEvent,
    NewChange,
    PositionKey,
    ProjectionStore,
    StalePosition,
)
from projections.sla import SlaLimits
from projections.sla_live import SlaPlan, SlaRow, evaluate, outbox_changes, plan_instant
from projections.totals import Bucket, Totals, accumulate, handover_end


class MemoryStore(ProjectionStore):
    """``change_log`` is off by default: ``report --input`` has no subscribers."""

    def __init__(self, calendar: DutyCalendar | None = None, *,
                 sla_limits: SlaLimits | None = None, change_log: bool = False,
                 change_retention_days: float = DEFAULT_CHANGE_RETENTION_DAYS) -> None:
        self.calendar = calendar or DutyCalendar()
        self.sla_limits = sla_limits or SlaLimits()
        self.change_log = change_log
        self.change_retention_days = change_retention_days
        self._changes: list[Change] = []
        self._head = 0
        self._events: dict[str, LoggedEvent] = {}
        self._answers: dict[str, CommandAnswer] = {}
        self._incidents: dict[str, Incident] = {}
        self._calls: list[Fact] = []
        self._shifts: list[Fact] = []
        self._totals: dict[Bucket, Totals] = {}
        self._counters = {"rejected_events": 0, "duplicate_events": 0, "conflicting_events": 0}
        self._positions: dict[tuple[str, str, int], int] = {}
        self._fingerprints: dict[tuple[str, str, int], str] = {}
        self._sla: dict[tuple[str, str], SlaRow] = {}
        self._alerts: dict[str, AlertEntry] = {}
        self._alert_seq = 0
        self._sla_clock: int | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def positions(self, consumer: str) -> dict[PositionKey, int]:
        return {(s, p): v for (c, s, p), v in self._positions.items() if c == consumer}

    async def fingerprints(self, consumer: str) -> dict[PositionKey, str]:
        return {(s, p): v for (c, s, p), v in self._fingerprints.items() if c == consumer}

    async def known_events(self, event_ids: Sequence[str]) -> dict[str, bytes]:
        return {i: self._events[i].raw for i in event_ids if i in self._events}

    async def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        return {i for i in event_ids if i in self._events}

    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        return {i: self._incidents[i].copy() for i in incident_ids if i in self._incidents}

    async def commit(self, commit: Commit) -> None:
        for (source, partition), expected in commit.expected.items():
            if self._positions.get((commit.consumer, source, partition), 0) != expected:
                raise StalePosition(f"{source}[{partition}] moved")
        for event in commit.events:
            self._events[event.event_id] = event
        for event_id, at in commit.recorded_updates.items():
            stored = self._events[event_id]
            if stored.recorded is None or at < stored.recorded:
                self._events[event_id] = stored._replace(recorded=at)
        if commit.answer is not None:
            self._answers[commit.answer.idempotency_key] = commit.answer
        for incident in commit.incidents:
            self._incidents[incident.incident_id] = incident.copy()
        self._calls.extend(commit.calls)
        self._shifts.extend(commit.shifts)
        accumulate(self._totals, commit.deltas.items())
        self._counters["rejected_events"] += commit.rejected
        self._counters["duplicate_events"] += commit.duplicates
        self._counters["conflicting_events"] += commit.conflicts
        for (source, partition), position in commit.positions.items():
            self._positions[(commit.consumer, source, partition)] = position
        for (source, partition), fingerprint in commit.fingerprints.items():
            self._fingerprints[(commit.consumer, source, partition)] = fingerprint
        alerts = self._commit_sla(commit, commit.sla) if commit.sla is not None else []
        if self.change_log:
            days = service_days(commit.deltas, commit.shifts, self.calendar)
            rows = {day: list(self._totals[("", "", day)]) for day in days
                    if ("", "", day) in self._totals}
            now = time.time_ns() // 1000
            for new in [*incident_changes(commit.incidents), *period_changes(rows),
                        *commit.changes, *alerts]:
                self._head += 1
                self._changes.append(Change(self._head, *new, now))

    def _commit_sla(self, commit: Commit, plan: SlaPlan) -> list[NewChange]:
        as_of, self._sla_clock = plan_instant(plan, self._sla_clock)
        if as_of is None:
            return []
        incidents = {i.incident_id: i for i in plan.incidents}
        if plan.due:
            for incident_id, _rule in [k for k, r in self._sla.items()
                                       if r.due_us is not None and r.due_us <= as_of]:
                if incident_id not in incidents and incident_id in self._incidents:
                    incidents[incident_id] = self._incidents[incident_id]
        prior = {k: r for k, r in self._sla.items() if k[0] in incidents}
        update = evaluate(incidents.values(), prior, as_of, plan.limits, plan.horizon_us)
        for key in update.dropped:
            self._sla.pop(key, None)
        self._sla.update({(r.incident_id, r.rule): r for r in update.rows})
        written = [t for t in update.transitions if t.alert_id not in self._alerts]
        now = time.time_ns() // 1000
        for t in written:
            self._alert_seq += 1
            self._alerts[t.alert_id] = AlertEntry(self._alert_seq, t.alert_id, t.incident_id,
                                                   t.payload, now if t.withheld else None,
                                                   t.withheld)
        update.transitions = written
        commit.sla_update = update
        return [NewChange(*c) for c in outbox_changes(written)]

    async def sla_rows(self, states: Collection[str] | None = None) -> list[SlaRow]:
        return [self._sla[k] for k in sorted(self._sla)
                if states is None or self._sla[k].state in states]

    async def sla_event_clock(self) -> int | None:
        return self._sla_clock

    async def unsent_alerts(self, limit: int = 1000) -> list[AlertEntry]:
        return [e for e in self._alerts.values() if e.sent_us is None][:limit]

    async def mark_alerts_sent(self, alert_ids: Collection[str], sent_us: int,
                               positions: dict[PositionKey, int]) -> None:
        for alert_id in alert_ids:
            entry = self._alerts[alert_id]
            if entry.sent_us is None:
                self._alerts[alert_id] = entry._replace(sent_us=sent_us)
        for (source, partition), position in positions.items():
            key = (ALERT_RELAY, source, partition)
            self._positions[key] = max(position, self._positions.get(key, 0))

    async def alert_outbox(self) -> list[AlertEntry]:
        return list(self._alerts.values())

    async def prune_alert_outbox(self, sent_before_us: int) -> int:
        old = [a for a, e in self._alerts.items()
               if e.sent_us is not None and e.sent_us < sent_before_us]
        for alert_id in old:
            del self._alerts[alert_id]
        return len(old)

    async def changes_after(self, seq: int, limit: int = 1000) -> list[Change]:
        return [c for c in self._changes if c.seq > seq][:limit]

    async def change_window(self) -> ChangeWindow:
        oldest = self._changes[0].seq - 1 if self._changes else self._head
        return ChangeWindow(oldest, self._head)

    async def prune_changes(self, now_us: int) -> int:
        cutoff = retention_cutoff(now_us, self.change_retention_days)
        kept = [c for c in self._changes if c.committed_us >= cutoff]
        # A prefix only, as in the SQL stores.
        first = self._changes.index(kept[0]) if kept else len(self._changes)
        self._changes = self._changes[first:]
        return first

    async def totals(self) -> dict[Bucket, Totals]:
        return {b: list(v) for b, v in self._totals.items() if any(v)}

    async def counters(self) -> dict[str, int]:
        return dict(self._counters)

    async def all_incidents(self) -> AsyncIterator[Incident]:
        for incident in list(self._incidents.values()):
            yield incident.copy()

    async def all_calls(self) -> AsyncIterator[Fact]:
        for fact in list(self._calls):
            yield fact

    async def shifts(self) -> list[Fact]:
        return list(self._shifts)

    async def handover_incidents(self) -> list[Incident]:
        return [i.copy() for i in self._incidents.values()
                if handover_end(i, self.calendar) is not None]

    async def incident_events(self, incident_id: str) -> list[LoggedEvent]:
        found = [e for e in self._events.values() if e.incident_id == incident_id]
        return sorted(found, key=lambda e: (e.at, e.event_id))

    async def history_events(self) -> AsyncIterator[LoggedEvent]:
        for event in list(self._events.values()):
            yield event

    async def event_count(self) -> int:
        return len(self._events)

    async def events_of_types(self, types: Collection[str]) -> list[bytes]:
        return [e.raw for e in self._events.values() if e.type in types]

    async def command_answer(self, idempotency_key: str) -> CommandAnswer | None:
        return self._answers.get(idempotency_key)
