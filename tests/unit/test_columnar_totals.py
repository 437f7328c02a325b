"""The columnar engine's SQL totals against ``projections.totals.contributions``.

Random incidents (any mix of checkpoints, out-of-order clocks, callbacks, crews,
rejected and merged ones, incidents without a call) under random duty calendars
(zones with DST, odd duty starts) and SLA limits: ``sql_totals`` must give every
bucket ``contributions`` gives, with the same integers, and the handover query
the incidents ``handover_end`` keeps. End to end, the report bytes are compared
with the exact engine's in ``tests/unit/test_columnar.py``.
"""

from __future__ import annotations

from datetime import time

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.columnar import _incidents, _periods
from projections.columnar_totals import sql_totals
from projections.duty import DutyCalendar
from projections.incident import CHECKPOINTS, Incident
from projections.sla import AREAS, SlaLimits
from projections.totals import Bucket, Totals, accumulate, contributions, handover_end

BASE = 1_773_999_000_000_000  # March 2026 (DST starts in the northern zones below), on
HOUR = 3_600_000_000           # a quarter hour: so are duty starts, limits and warnings
QUARTER = HOUR // 4
ZONES = ["Asia/Shanghai", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
         "America/St_Johns", "UTC"]

# Mostly on a quarter-hour grid over a few days, so that instants meet period ends,
# deadlines and warning thresholds exactly; some anywhere in a month.
grid = st.integers(-8, 2 * 96).map(lambda k: BASE + k * QUARTER)
instants = st.one_of(st.none(), grid, grid, st.integers(BASE - 30 * HOUR, BASE + 30 * 24 * HOUR))
LIMITS = [60.0, 120.0, 180.0, 20.0, 0.5, 7.3]
"""Minutes: most with a deadline and a warning (three quarters) on the quarter hour."""
names = st.sampled_from(["", "a", "b", "crew-1", "\u00e9quipe"])


@st.composite
def incidents(draw: st.DrawFn, number: int) -> Incident:
    times = [draw(instants) for _ in CHECKPOINTS]
    has_call = times[0] is not None
    arrived = tuple(sorted(set(draw(st.lists(names.filter(bool), max_size=3)))))
    return Incident(
        f"i{number}", times,
        grid=draw(names) if has_call else None,
        area=draw(st.sampled_from(["urban", "rural", "remote"])) if has_call else None,
        priority=draw(st.sampled_from(["normal", "vulnerable", "important"]))
        if has_call else None,
        customers=draw(st.one_of(st.none(), st.integers(0, 10**6))) if has_call else None,
        dispatched_at=draw(instants), dispatched_crew=draw(st.one_of(st.none(), names)),
        arrived_crew=arrived[0] if arrived else None,
        rejected_at=draw(st.one_of(st.none(), st.none(), instants)),
        merged_at=draw(st.one_of(st.none(), st.none(), instants)),
        merged_into=None, closed_at=draw(instants),
        owner=draw(st.one_of(st.none(), names)) if has_call else None,
        call_event_id=f"e{number}" if has_call else None,
        callbacks=draw(st.integers(0, 15)), arrived_crews=arrived)


def _inc_table(db: duckdb.DuckDBPyConnection, rows: list[Incident]) -> None:
    """``inc`` as ``projections.columnar.fold_columnar`` builds it."""
    call = pa.struct([("grid", pa.string()), ("area", pa.string()), ("priority", pa.string()),
                      ("customers", pa.int64()), ("owner", pa.string()), ("eid", pa.string())])
    columns = {
        "iid": pa.array([i.incident_id for i in rows], pa.string()),
        **{f"t{k}": pa.array([i.times[k] for i in rows], pa.int64()) for k in range(7)},
        "call": pa.array([None if i.times[0] is None else {
            "grid": i.grid, "area": i.area, "priority": i.priority, "customers": i.customers,
            "owner": i.owner, "eid": i.call_event_id} for i in rows], call),
        "dispatched_at": pa.array([i.dispatched_at for i in rows], pa.int64()),
        "dispatched_crew": pa.array([i.dispatched_crew for i in rows], pa.string()),
        "arrived_crew": pa.array([i.arrived_crew for i in rows], pa.string()),
        "arrived_crews": pa.array([list(i.arrived_crews) or None for i in rows],
                                  pa.list_(pa.string())),
        "rejected_at": pa.array([i.rejected_at for i in rows], pa.int64()),
        "merged_at": pa.array([i.merged_at for i in rows], pa.int64()),
        "merged_into": pa.array([i.merged_into for i in rows], pa.string()),
        "closed_at": pa.array([i.closed_at for i in rows], pa.int64()),
        "callbacks": pa.array([i.callbacks for i in rows], pa.int64()),
    }
    db.register("rows", pa.table(columns))
    db.execute("CREATE TABLE inc AS SELECT * FROM rows")
    db.unregister("rows")


def _expected(rows: list[Incident], calendar: DutyCalendar,
              limits: SlaLimits) -> dict[Bucket, Totals]:
    totals: dict[Bucket, Totals] = {}
    for incident in rows:
        accumulate(totals, contributions(incident, calendar, limits))
    return totals


def _sql(rows: list[Incident], calendar: DutyCalendar, limits: SlaLimits
         ) -> tuple[dict[Bucket, Totals], set[str]]:
    with duckdb.connect() as db:
        _inc_table(db, rows)
        calls = [i.times[0] for i in rows if i.times[0] is not None]
        if calls:
            _periods(db, calendar, min(calls), max(calls))
        else:
            db.execute("CREATE TABLE periods (day VARCHAR, start_us BIGINT, end_us BIGINT)")
        totals = sql_totals(db, limits)
        handover = {i.incident_id for i in _incidents(db, open_at_handover=True)} if calls \
            else set()
    return totals, handover


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(ZONES), st.integers(0, 23), st.sampled_from([0, 15, 30, 45]),
       st.sampled_from([None, *LIMITS]), st.lists(st.sampled_from(LIMITS), min_size=6,
                                                  max_size=6))
def test_sql_totals_are_the_contributions(data: st.DataObject, zone: str, hour: int,
                                          minute: int, cap: float | None,
                                          limit: list[float]) -> None:
    count = data.draw(st.integers(0, 25))
    rows = [data.draw(incidents(k)) for k in range(count)]
    calendar = DutyCalendar(zone, time(hour, minute))
    limits = SlaLimits(by_area={"arrival": dict(zip(AREAS, limit[:3], strict=True)),
                                "restoration": dict(zip(AREAS, limit[3:],
                                                                 strict=True))},
                       priority={"arrival": cap, "restoration": limit[0]})
    totals, handover = _sql(rows, calendar, limits)
    assert totals == _expected(rows, calendar, limits)
    assert handover == {i.incident_id for i in rows if handover_end(i, calendar) is not None}


def test_each_boundary_is_decided_as_the_contributions() -> None:
    """Instants exactly at a deadline, a warning threshold and a period's end."""
    calendar, limits = DutyCalendar("UTC", time(8, 0)), SlaLimits()
    start = 1_773_993_600_000_000  # 2026-03-20T08:00Z: a period starts
    end = start + 24 * HOUR
    hour = HOUR
    rows = [
        # arrival met exactly at its 45-minute deadline (urban), restored at the period end
        Incident("met", [start, None, None, start + 45 * hour // 60, None, None, end],
                 area="urban", priority="normal", call_event_id="a"),
        # arrival a microsecond late, restored a microsecond before the end
        Incident("late", [start, None, None, start + 45 * hour // 60 + 1, None, None, end - 1],
                 area="urban", priority="normal", call_event_id="b"),
        # no arrival: the period ends exactly at the deadline / the warning of a clock
        Incident("breach", [end - 45 * hour // 60, None, None, None, None, None, None],
                 area="urban", priority="normal", call_event_id="c"),
        Incident("warning", [end - 45 * hour // 60 * 3 // 4, None, None, None, None, None, None],
                 area="urban", priority="normal", call_event_id="d"),
        Incident("ok", [end - 45 * hour // 60 * 3 // 4 + 1, None, None, None, None, None, None],
                 area="urban", priority="normal", call_event_id="e"),
    ]
    totals, handover = _sql(rows, calendar, limits)
    assert totals == _expected(rows, calendar, limits)
    assert handover == {"met", "breach", "warning", "ok"}


def test_sums_beyond_64_bits_stay_exact() -> None:
    """Restoration sums that overflow a 64-bit integer fall back to 128-bit sums."""
    year = 365 * 24 * HOUR
    rows = [Incident(f"i{k}", [BASE, None, None, None, None, None, BASE + 200 * year],
                     grid="g", area="urban", priority="normal", call_event_id=f"e{k}")
            for k in range(2_000)]
    calendar, limits = DutyCalendar(), SlaLimits()
    totals, _ = _sql(rows, calendar, limits)
    expected = _expected(rows, calendar, limits)
    assert totals == expected
    assert max(max(vector) for vector in expected.values()) > 2**63  # the fault happened


@pytest.mark.parametrize("zone", ZONES)
def test_no_incident_no_bucket(zone: str) -> None:
    assert _sql([], DutyCalendar(zone), SlaLimits()) == ({}, set())
