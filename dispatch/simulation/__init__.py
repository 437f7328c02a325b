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

Modules: :mod:`~dispatch.simulation.plan` (what to simulate),
:mod:`~dispatch.simulation.model` (outages, calls, crews),
:mod:`~dispatch.simulation.emission` (events, delivery faults, stream order)
and :mod:`~dispatch.simulation.output` (JSON Lines).
"""

from dispatch.simulation.emission import Simulator, simulate, simulate_lines
from dispatch.simulation.output import dumps, write_jsonl
from dispatch.simulation.plan import (
    AREAS,
    DEFAULT_GRIDS,
    Event,
    Grid,
    MalformedLine,
    SimItem,
    SimulationPlan,
    SimulationStats,
)

__all__ = [
    "AREAS",
    "DEFAULT_GRIDS",
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
