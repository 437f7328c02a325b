"""Live SLA alerts: the stored state of each armed rule and the transitions to
publish, as a pure function of the incidents, the previous state and "now".

Contract of ``evaluate(incidents, prior, as_of_us, limits)``:
- for each incident and rule, the state is ``rule_state(..., as_of_us, ...)``;
- ``raised`` remembers the highest alert level already recorded (``warning`` <
  ``breach``); a transition is emitted when the state reaches a higher level
  than ``raised`` (a jump from ``ok`` straight to ``breach`` emits only the
  breach), when a raised alert's rule ends (``resolved``, with ``outcome``
  ``met``/``late``/``anomaly``), or when the incident of a raised alert is
  rejected or merged (``cancelled``, ``outcome`` ``rejected``/``merged``);
- the level never goes down: if a rule's limit grows after an alert was raised
  (an earlier call with another area or priority turns up), the alert stays as
  it was until the rule ends, so an ``alert_id`` (``incident/rule/level``) is
  emitted at most once, ever;
- a row is kept while the rule may still change without a new event (its
  ``due_us``) or an alert is raised; a settled rule (ended, or cancelled) is
  dropped: it can only change again through a new event, and then it has no
  raised alert left to end, so it emits nothing;
- ``at`` of a transition is when it took effect in event time: the warning
  threshold, the deadline, the stop checkpoint, or the rejection/merge;
- with a ``horizon_us``, a transition whose ``at`` is more than the horizon
  before ``as_of_us`` is ``withheld``: recorded like any other (its level is
  raised, it is never emitted again) but not to be published. That is what
  loading old events on the wall clock produces (a call from last year is past
  its deadline now); a transition found in time is never withheld.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from projections.incident import Incident
from projections.sla import (
    LEVELS,
    OUTCOMES,
    RULE_CHECKPOINTS,
    RULES,
    SlaLimits,
    alert_fields,
    next_change_us,
    rule_clock,
    rule_state,
    utc_text,
)

RESOLVED = "resolved"
CANCELLED = "cancelled"
TRANSITIONS: tuple[str, ...] = (*LEVELS, RESOLVED, CANCELLED)
_RANK = {None: 0, "warning": 1, "breach": 2}


class SlaRow(NamedTuple):
    """The stored SLA state of one (incident, rule)."""

    incident_id: str
    rule: str
    state: str | None
    raised: str | None
    due_us: int | None
    start_us: int | None
    deadline_us: int | None
    limit_minutes: float | None
    grid: str | None
    area: str | None
    priority: str | None
    owner: str | None


class Transition(NamedTuple):
    """One alert transition for the outbox: ``payload`` is the published JSON."""

    alert_id: str
    incident_id: str
    rule: str
    level: str
    at_us: int
    payload: bytes
    withheld: bool = False
    """Found more than the horizon after it took effect: recorded, not published."""


@dataclass(slots=True)
class SlaUpdate:
    rows: list[SlaRow] = field(default_factory=list)
    """Rows to insert or replace."""
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(incident, rule) rows to delete: settled."""
    transitions: list[Transition] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SlaPlan:
    """What a commit asks the store to evaluate, inside its transaction.

    ``clock`` ``wall``: evaluate as of ``as_of_us``; ``event``: as of the largest
    ``occurred_at`` committed so far, ``event_us`` included. ``event_us`` (the
    batch's largest ``occurred_at``) advances the stored event clock either way.
    ``due`` asks the store to (re)evaluate the incidents of rows due by then, in
    addition to ``incidents``.
    """

    limits: SlaLimits
    clock: str = "wall"
    as_of_us: int = 0
    event_us: int | None = None
    incidents: tuple[Incident, ...] = ()
    due: bool = False
    horizon_us: int | None = None
    """Transitions older than this before the evaluation instant are withheld."""


def alert_id(incident_id: str, rule: str, level: str) -> str:
    return f"{incident_id}/{rule}/{level}"


def _transition(incident: Incident, rule: str, level: str, at_us: int, as_of_us: int,
                limits: SlaLimits, outcome: str | None = None) -> Transition:
    clock = rule_clock(incident, rule, limits, as_of_us)
    assert clock is not None  # a raised or raisable rule has a start checkpoint
    body: dict[str, Any] = {"alert_id": alert_id(incident.incident_id, rule, level),
                            **alert_fields(incident, rule, level, clock, as_of_us),
                            "at": utc_text(at_us)}
    if outcome is not None:
        body["outcome"] = outcome
    return Transition(body["alert_id"], incident.incident_id, rule, level, at_us,
                      orjson.dumps(body))


def evaluate(incidents: Iterable[Incident], prior: Mapping[tuple[str, str], SlaRow],
             as_of_us: int, limits: SlaLimits, horizon_us: int | None = None) -> SlaUpdate:
    """New rows, dropped rows and transitions (module contract). Pure."""
    update = SlaUpdate()
    for incident in incidents:
        for rule in RULES:
            key = (incident.incident_id, rule)
            before = prior.get(key)
            raised = before.raised if before is not None else None
            state = rule_state(incident, rule, as_of_us, limits)
            clock = rule_clock(incident, rule, limits, as_of_us)
            ended = False
            if state in LEVELS and _RANK[state] > _RANK[raised]:
                assert clock is not None
                at = clock.warning if state == "warning" else clock.deadline
                update.transitions.append(
                    _transition(incident, rule, state, at, as_of_us, limits))
                raised = state
            elif raised is not None and state in OUTCOMES:
                stop = incident.times[RULE_CHECKPOINTS[rule][1]]
                assert stop is not None
                update.transitions.append(
                    _transition(incident, rule, RESOLVED, stop, as_of_us, limits, state))
                ended = True
            elif raised is not None and state is None:
                cancelled = _cancellation(incident, as_of_us)
                if cancelled is not None:
                    outcome, at = cancelled
                    update.transitions.append(
                        _transition(incident, rule, CANCELLED, at, as_of_us, limits, outcome))
                    ended = True
            due = next_change_us(incident, rule, as_of_us, limits)
            # An ended rule stays ended; a rule not armed may still arm by itself.
            settled = raised is None and (state in OUTCOMES or (state is None and due is None))
            if ended or settled or clock is None:
                if before is not None:
                    update.dropped.append(key)
                continue
            fields = alert_fields(incident, rule, state or "", clock, as_of_us)
            update.rows.append(SlaRow(
                incident.incident_id, rule, state, raised, due, clock.start, clock.deadline,
                clock.limit_minutes, fields["grid"], fields["area"], fields["priority"],
                fields["owner"]))
    if horizon_us is not None:
        oldest = as_of_us - horizon_us
        update.transitions = [t._replace(withheld=True) if t.at_us < oldest else t
                              for t in update.transitions]
    return update


def _cancellation(incident: Incident, as_of_us: int) -> tuple[str, int] | None:
    """Why and when a raised alert's incident stopped being an outage (None: it did not)."""
    ends = [(at, why) for at, why in ((incident.rejected_at, "rejected"),
                                      (incident.merged_at, "merged"))
            if at is not None and at <= as_of_us]
    if not ends:
        return None
    at, why = min(ends)
    return why, at


def plan_instant(plan: SlaPlan, stored_clock: int | None) -> tuple[int | None, int | None]:
    """``(as_of, event clock)`` for ``plan`` given the stored event clock: the clock
    is the largest ``occurred_at`` seen; ``as_of`` is None (nothing to evaluate)
    on the event clock before any event."""
    known = [at for at in (stored_clock, plan.event_us) if at is not None]
    clock = max(known) if known else None
    return (clock if plan.clock == "event" else plan.as_of_us), clock


def outbox_changes(transitions: Iterable[Transition]) -> list[tuple[str, str, bytes]]:
    """``(kind, key, data)`` change-log entries of the transitions written and not
    withheld (live subscribers get what the alert topic gets)."""
    return [("alert", t.alert_id, t.payload) for t in transitions if not t.withheld]


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """How a runner asks for SLA evaluation: the limits and what "now" is
    (``wall``: the caller's clock; ``event``: the largest ``occurred_at`` seen)."""

    limits: SlaLimits
    clock: str = "wall"
    horizon_us: int | None = None
    """On the wall clock, transitions found later than this after they took effect
    are withheld (None: never). The event clock never withholds: a replay
    publishes the alerts of the history it replays."""

    @property
    def _horizon(self) -> int | None:
        return self.horizon_us if self.clock == "wall" else None

    def for_batch(self, incidents: Iterable[Incident], latest_event_us: int | None,
                  now_us: int) -> SlaPlan:
        """The plan of a batch that touched ``incidents``; ``latest_event_us`` is
        the largest ``occurred_at`` among its new events."""
        return SlaPlan(self.limits, self.clock, now_us, latest_event_us, tuple(incidents),
                       horizon_us=self._horizon)

    def for_tick(self, now_us: int) -> SlaPlan:
        """The timer's plan: every stored rule due by now."""
        return SlaPlan(self.limits, self.clock, now_us, None, due=True,
                       horizon_us=self._horizon)
