"""Bucket totals of the columnar engine, in SQL: ``projections.totals`` written again
over the ``inc`` table of ``projections.columnar`` (one row per incident).

Contract: the same ``dict[Bucket, Totals]`` as summing
``projections.totals.contributions`` over the incidents, column for column:
- outage incidents only (neither rejected nor merged); an incident counts in the
  buckets of the duty date of its first call (``periods``: each duty date's
  ``[start_us, end_us)``), as the whole service and by grid, area, crew (the
  crew that arrived first, else the one dispatched first) and agent (the first
  call's owner); one without a call counts in the unattributed bucket only;
- a duration counts when both instants exist and it is not negative; a negative
  stage is an anomaly, a negative restoration a restoration anomaly;
- callbacks and first-visit fix count over restored incidents;
- ``open_at_handover`` and the SLA states are as of the end of the incident's
  duty period; each rule's limit and warning come from ``projections.sla.rule_clock``
  itself (one call per rule, area and priority present), so only the comparisons
  are written here.
``tests/unit/test_columnar.py`` holds it to the exact engine by hypothesis (random
histories, DST zones, windows, as-of and known-at; byte-identical reports), and
``tests/unit/test_columnar_totals.py`` to ``contributions`` on random incidents.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from projections.incident import CALLED_BACK, DISSATISFIED, REACHED, SATISFIED, STAGES, Incident
from projections.sla import RULE_CHECKPOINTS, RULES, STATES, SlaLimits, rule_clock
from projections.totals import (
    AGENT,
    FIELDS,
    NO_AGENT,
    NO_MEMBER,
    UNATTRIBUTED,
    Bucket,
    Totals,
)

TIMES = ("t0", "t1", "t2", "t3", "t4", "t5", "t6")
"""The checkpoint columns of ``inc``, in ``projections.incident.CHECKPOINTS`` order."""
OUTAGE = "rejected_at IS NULL AND merged_at IS NULL"
"""An ``inc`` row that is an outage incident (``Incident.is_outage``)."""
STILL_OPEN = "(t6 IS NULL OR t6 >= end_us)"
"""Not restored before ``end_us``, the end of its duty period (``handover_end``)."""


def _duration(start: str, end: str) -> tuple[str, str]:
    """Count and sum of ``end - start`` when both exist and it is not negative."""
    return (f"coalesce(({end} >= {start})::BIGINT, 0)",
            f"CASE WHEN {end} >= {start} THEN {end} - {start} ELSE 0 END")


def _negative(start: str, end: str) -> str:
    return f"coalesce(({end} < {start})::BIGINT, 0)"


def _state(rule: str) -> str:
    """The state of ``rule`` as of ``end_us`` (``projections.sla.rule_state``)."""
    start, stop = (TIMES[k] for k in RULE_CHECKPOINTS[rule])
    span, warning = f"{rule}_span", f"{rule}_warning"
    return f"""CASE WHEN end_us IS NULL OR {start} IS NULL OR {start} > end_us THEN NULL
        WHEN {stop} IS NOT NULL AND {stop} <= end_us THEN
            CASE WHEN {stop} < {start} THEN 'anomaly'
                 WHEN {stop} <= {start} + {span} THEN 'met' ELSE 'late' END
        WHEN end_us >= {start} + {span} THEN 'breach'
        WHEN end_us >= {start} + {warning} THEN 'warning'
        ELSE 'ok' END"""


def _vector() -> list[str]:
    """One SQL expression per ``FIELDS`` column but ``calls`` (added from the calls)."""
    restored = "t6 IS NOT NULL"
    called = f"({restored} AND callbacks & {CALLED_BACK} <> 0)"
    columns: dict[str, str] = {
        "incidents": "1",
        "restored": f"({restored})::BIGINT",
        "open_at_handover": f"(end_us IS NOT NULL AND {STILL_OPEN})::BIGINT",
        "closed": "(closed_at IS NOT NULL)::BIGINT",
        "anomalies": " + ".join(_negative(TIMES[k - 1], TIMES[k]) for k in range(1, len(TIMES))),
        "restoration_anomalies": _negative("t0", "t6"),
        "callback_called": f"({called})::BIGINT",
        "callback_reached": f"({called} AND callbacks & {REACHED} <> 0)::BIGINT",
        "callback_satisfied": f"({called} AND callbacks & {DISSATISFIED} = 0 "
                              f"AND callbacks & {SATISFIED} <> 0)::BIGINT",
        "callback_dissatisfied": f"({called} AND callbacks & {DISSATISFIED} <> 0)::BIGINT",
        "first_visit_count": f"({restored} AND t3 IS NOT NULL)::BIGINT",
        "first_visit_fixed": f"({restored} AND t3 IS NOT NULL "
                             "AND coalesce(len(arrived_crews), 0) = 1)::BIGINT",
    }
    spans = {"restoration": ("t0", "t6"), "arrival": ("t0", "t3"), "after_arrival": ("t3", "t6"),
             **{stage: (TIMES[k], TIMES[k + 1]) for k, stage in enumerate(STAGES)}}
    for name, (start, end) in spans.items():
        columns[f"{name}_count"], columns[f"{name}_sum_us"] = _duration(start, end)
    for rule in RULES:
        for state in STATES:
            columns[f"sla_{rule}_{state}"] = f"coalesce((sla_{rule} = '{state}')::BIGINT, 0)"
    return [columns[name] for name in FIELDS[1:]]


def _limits(db: duckdb.DuckDBPyConnection, limits: SlaLimits) -> None:
    """``spans``: each rule's limit and warning offset (µs) for every (area, priority)
    of a first call, from ``rule_clock``."""
    pairs = db.execute("SELECT DISTINCT call.area, call.priority FROM inc "
                       "WHERE t0 IS NOT NULL").fetchall()
    table: dict[str, list[object]] = {"area": [], "priority": []}
    for rule in RULES:
        table[f"{rule}_span"], table[f"{rule}_warning"] = [], []
    for area, priority in pairs:
        table["area"].append(area)
        table["priority"].append(priority)
        probe = Incident("", [0] * len(TIMES), area=area, priority=priority)
        for rule in RULES:
            clock = rule_clock(probe, rule, limits)
            assert clock is not None  # every start checkpoint of the probe is set
            table[f"{rule}_span"].append(clock.deadline - clock.start)
            table[f"{rule}_warning"].append(clock.warning - clock.start)
    arrow = pa.table({name: pa.array(values, type=pa.string() if name in ("area", "priority")
                                     else pa.int64()) for name, values in table.items()})
    db.register("span_rows", arrow)
    try:
        db.execute("CREATE OR REPLACE TEMP TABLE spans AS SELECT * FROM span_rows")
    finally:
        db.unregister("span_rows")


def sql_totals(db: duckdb.DuckDBPyConnection, limits: SlaLimits) -> dict[Bucket, Totals]:
    """The bucket totals of ``inc`` (module contract); ``periods`` must cover every
    first call (``projections.columnar._periods``), or be empty when there is none."""
    _limits(db, limits)
    names = FIELDS[1:]
    rules = ", ".join(f"{_state(rule)} AS sla_{rule}" for rule in RULES)
    vector = ", ".join(f"{sql} AS {name}" for sql, name in zip(_vector(), names, strict=True))
    members = {
        "grid": f"coalesce(nullif(call.grid, ''), '{NO_MEMBER}')",
        "area": f"coalesce(nullif(call.area, ''), '{NO_MEMBER}')",
        "crew": f"coalesce(nullif(coalesce(arrived_crew, dispatched_crew), ''), '{NO_MEMBER}')",
        AGENT: f"coalesce(nullif(call.owner, ''), '{NO_AGENT}')",
    }
    member_columns = ", ".join(f"{sql} AS m_{k}" for k, sql in enumerate(members.values()))
    grouped = ", ".join(f"m_{k}" for k in range(len(members)))
    # grouping(m_0, ...) has a bit set for each member column a set leaves out: the
    # whole service leaves out all of them; dimension k's set, all but m_k.
    whole = (1 << len(members)) - 1
    dimension = " ".join(f"WHEN {whole ^ (1 << (len(members) - 1 - k))} THEN '{name}'"
                         for k, name in enumerate(members))
    sets = ", ".join(["(day)", *(f"(day, m_{k})" for k in range(len(members)))])

    def query(sum_type: str) -> str:
        sums = ", ".join(f"sum({name}){sum_type}" for name in names)
        return f"""
        WITH placed AS (
            SELECT i.*, p.day AS duty_day, p.end_us, s.* EXCLUDE (area, priority)
            FROM inc i ASOF LEFT JOIN periods p ON i.t0 >= p.start_us
                 LEFT JOIN spans s ON s.area IS NOT DISTINCT FROM i.call.area
                                  AND s.priority IS NOT DISTINCT FROM i.call.priority
            WHERE {OUTAGE}),
        ruled AS (SELECT *, {rules} FROM placed),
        v AS (SELECT coalesce(duty_day, '{UNATTRIBUTED}') AS day, {member_columns}, {vector}
              FROM ruled)
        SELECT CASE grouping({grouped}) {dimension} ELSE '' END,
               coalesce({grouped}, ''), day, {sums}
        FROM v GROUP BY GROUPING SETS ({sets})
        HAVING day <> '{UNATTRIBUTED}' OR grouping({grouped}) = {whole}"""
    try:
        # Sums come as 128-bit integers, which cost ten times more to hand to Python:
        # as 64-bit ones unless one does not fit (then DuckDB refuses the cast).
        rows = db.execute(query("::BIGINT")).fetchall()
    except duckdb.ConversionException:
        rows = db.execute(query("")).fetchall()
    return {(r[0], r[1], r[2]): [0, *r[3:]] for r in rows}
