"""Emission: turning laid-out outages into the delivered event stream.

Contract: :class:`Simulator` yields the plan's items in delivery order (see the
package documentation of :mod:`dispatch.simulation` for ids, envelopes, the
horizon, delivery faults and memory). It is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from heapq import heappop, heappush
from typing import Final
from zoneinfo import ZoneInfo

from dispatch.simulation.model import (
    AGENTS,
    HOUR,
    MINUTE,
    CrewBoard,
    Outage,
    Timeline,
    draw_outages,
    lay_out,
)
from dispatch.simulation.output import dumps
from dispatch.simulation.plan import (
    Event,
    MalformedLine,
    SimItem,
    SimulationPlan,
    SimulationStats,
)
from projections.duty import DutyCalendar

_MALFORMED_KINDS: Final = ("bad_json", "missing_field", "naive_timestamp", "unknown_type")
TEAMS: Final = (
    ("Team A", "LEAD-01", ("AG-001", "AG-002", "DSP-01")),
    ("Team B", "LEAD-02", ("AG-003", "AG-004", "DSP-02")),
    ("Team C", "LEAD-03", ("AG-005", "AG-006", "DSP-03")),
)
"""The repair teams that take the 24-hour duty in turn (team, leader, members)."""
TEAM_CHANGE_RATE: Final = (0.15, 0.6)
"""Chance (normal day, storm day) that a relief team takes over mid-period."""
NO_CALLBACK_RATE: Final = 0.12
UNREACHED_RATE: Final = 0.18
"""Share of first callback attempts that do not reach the customer."""
GIVE_UP_RATE: Final = 0.25
"""Share of unreached customers who are not tried again."""
_UNKNOWN_TYPES: Final = ("call.recieved", "crew.teleported", "power.restore", "etr.updated")


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
        self._r_duty = _rng(seed, "duty")
        self._r_callback = _rng(seed, "callback")
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
        self._crews = CrewBoard.of(plan.grids)
        self._calendar = DutyCalendar(plan.duty_timezone, plan.duty_start)

    # -- public

    def __iter__(self) -> Iterator[SimItem]:
        if self._started:
            raise RuntimeError("a Simulator can be iterated only once; make a new one")
        self._started = True
        return self._run()

    # -- periods

    def period(self, day: int) -> tuple[float, float]:
        """Start and end (epoch seconds) of duty period ``day`` (0 = plan.start)."""
        begin, end = self._calendar.bounds(self.plan.start + timedelta(days=day))
        return begin / 1_000_000, end / 1_000_000

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

    def _simulate_day(
        self, day: int, duty_date: date, begin: float, end: float, storm: bool
    ) -> None:
        self._emit_shifts(day, begin, end, storm)
        rng = self._world
        outages = draw_outages(self.plan, rng, begin, end, storm)

        # Lay out every outage's timeline (crew assignment in call order).
        timelines = [lay_out(o, day, storm, rng, self._crews) for o in outages]

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

        target = self.plan.target_events
        for oi, (o, tl) in enumerate(zip(outages, timelines, strict=True)):
            self._emit_outage(o, tl, oi, merged_ids, day, storm)
            if target is not None and self._produced >= target:
                return

    # -- events

    def _emit_shifts(self, day: int, begin: float, end: float, storm: bool) -> None:
        """The duty team's shift start at the beginning of the period and, now and
        then (more often in a storm), a relief team taking over mid-period. Drawn
        from their own random stream, so the incidents do not change."""
        r = self._r_duty
        team, leader, members = TEAMS[day % len(TEAMS)]
        at = begin + r.uniform(0.0, 120.0)
        self.stats.shift_starts += self._emit(
            None, "duty.shift_started", at, at, "dispatcher", leader,
            {"team": team, "leader": leader, "members": list(members)}, True)
        if r.random() < TEAM_CHANGE_RATE[storm]:
            relief, relief_leader, relief_members = TEAMS[(day + 1) % len(TEAMS)]
            at = begin + r.uniform(0.35, 0.8) * (end - begin)
            if self._emit(None, "duty.shift_started", at, at, "dispatcher", relief_leader,
                          {"team": relief, "leader": relief_leader,
                           "members": list(relief_members)}, True):
                self.stats.shift_starts += 1
                self.stats.team_changes += 1

    def _emit_callbacks(self, inc: str, tl: Timeline) -> None:
        """Callbacks (回访) between restoration and closure, by the incident's owner:
        some never made, some first attempts unreached (then maybe retried), the
        reached customer satisfied or not as at closure. Own random stream."""
        r = self._r_callback
        if r.random() < NO_CALLBACK_RATE:
            return
        window = tl.closed - tl.restored
        at = tl.restored + r.uniform(0.2, 0.6) * window
        if r.random() < UNREACHED_RATE:
            self.stats.callbacks += self._emit(inc, "customer.callback", at, at, "hotline",
                                               tl.agent, {"reached": False, "agent": tl.agent},
                                               True)
            if r.random() < GIVE_UP_RATE:
                return
            at += r.uniform(0.3, 0.8) * (tl.closed - at)
        data: dict[str, object] = {"reached": True, "agent": tl.agent}
        if r.random() >= 0.03:  # a few reached customers give no verdict
            data["satisfied"] = tl.satisfied
        self.stats.callbacks += self._emit(inc, "customer.callback", at, at, "hotline", tl.agent,
                                           data, True)

    def _emit_outage(
        self,
        o: Outage,
        tl: Timeline,
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
                skew = -(tl.arrived - tl.departed) - r.triangular(1.0, 25.0, 5.0) * MINUTE
            else:  # ahead: repair "completed" after power was restored
                skew = (tl.restored - tl.repaired) + r.triangular(1.0, 30.0, 5.0) * MINUTE
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
        self._emit_callbacks(inc, tl)
        emit(inc, "incident.closed", tl.closed, tl.closed, "hotline", tl.agent,
             {"satisfied": tl.satisfied}, True)  # fmt: skip
        # Repeat calls: on this incident, or their own ticket merged into it.
        world = self._world
        for ri, (tc, merged) in enumerate(zip(o.repeat_times, o.repeat_merged, strict=True)):
            agent = f"AG-{world.randrange(1, AGENTS + 1):03d}"
            data = dict(base_data)
            data["agent"] = agent
            data["description"] = "another customer reports the same outage"
            if merged:
                mid = merged_ids[(oi, ri)]
                got = emit(mid, "call.received", tc, tc, "hotline", agent, data, True)
                tm = tc + world.triangular(1.0, 20.0, 4.0) * MINUTE
                emit(mid, "call.merged", tm, tm, "dispatcher", disp,
                     {"into_incident_id": inc}, True)  # fmt: skip
                stats.incidents += got
                stats.merged_incidents += got
                stats.calls += got
            else:
                stats.calls += emit(inc, "call.received", tc, tc, "hotline", agent, data, True)

    def _emit(
        self,
        incident_id: str | None,
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
        ``incident_id`` is None for duty events (they belong to no incident).
        """
        n = self._next_event
        self._next_event = n + 1
        u_lat = self._u_latency()
        late = self._u_late() < self._late_rate
        late_delay = self._r_late.uniform(1.0, 18.0) * HOUR if late else 0.0
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
            # A duty event needs no incident_id: dropping it would leave a valid event.
            needed = ("event_id", "type", "occurred_at", "data") if event["incident_id"] is None \
                else ("event_id", "type", "incident_id", "occurred_at", "data")
            del bad[r.choice(needed)]
        elif kind == "naive_timestamp":
            stamp = str(bad["occurred_at"])
            bad["occurred_at"] = stamp[:-6]  # drop "+08:00"
        else:
            bad["type"] = r.choice(_UNKNOWN_TYPES)
        return MalformedLine(dumps(bad).decode(), kind)



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
