"""The columnar batch engine: JSON Lines files validated and folded in DuckDB.

Same answers as the pure fold, faster on large files. Contract:
- every line is checked against the event contract, every type of it, by
  vectorised SQL over the values DuckDB's NDJSON reader parsed (kept as JSON
  text, so a number is never taken for a string). A line the check does not
  accept outright (invalid JSON, a missing or ill-typed field, a legacy version,
  an unusual timestamp, the escape of a NUL anywhere in it, a construct DuckDB's
  reader tolerates but JSON does not...) is decided by the contract
  (``projections.projector.facts_of``: the lean check, then pydantic), which
  also gives the reason and the line number of every rejected line. (DuckDB
  reads a JSON null and an absent key alike, so a line without
  ``schema_version`` is also left to the contract, which accepts it as version
  1.) So both accept the same lines, and the values of an accepted line are the
  same (``tests`` prove it by hypothesis);
- copies of an accepted event id are duplicates or conflicts by
  ``schemas.identity`` against the first copy, as in ``Projector``; ``facts``
  keeps the first copy only, known at the earliest record among its copies;
- the incident fold is ``projections.incident``'s, written in SQL: earliest
  checkpoint times, call attributes from the smallest (time, event id) call,
  first-arrived and first-dispatched crews, arrived crews, callback flags; so
  are the totals (``projections.columnar_totals``: ``projections.totals``'
  definitions written again, held to ``contributions`` by tests), and the calls,
  so ``build_report`` prints the same bytes;
- windows are applied as in ``projections.history``: ``as_of``/``known_at`` on the
  events before the fold, duty dates on the result.
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from projections.columnar_totals import OUTAGE, STILL_OPEN, TIMES, sql_totals
from projections.duty import DutyCalendar, from_micros
from projections.history import Window
from projections.incident import (
    CALLED_BACK,
    DISSATISFIED,
    DUTY_PREFIX,
    REACHED,
    SATISFIED,
    STAGES,
    Fact,
    Incident,
)
from projections.line_index import LineIndex, RecordRows, RowIndex
from projections.ports import Record, Rejected
from projections.projector import _conflict, facts_of
from projections.sla import SlaLimits
from projections.totals import (
    CALLS,
    DEFAULT_LIMITS,
    NO_MEMBER,
    Bucket,
    Totals,
    zeros,
)
from schemas.events import NO_INCIDENT_TYPES
from schemas.identity import difference

EVENT_TYPES = ("call.received", "call.verified", "call.rejected", "call.merged",
               "crew.dispatched", "crew.departed", "crew.arrived", "fault.diagnosed",
               "repair.completed", "power.restored", "incident.closed", "customer.callback",
               "duty.shift_started", "crew.rostered")
"""Every type of the contract (``schemas.events.EVENT_TYPES``; a test keeps them equal)."""
OPTIONAL_INCIDENT = ("duty.shift_started", "crew.rostered")
"""Types whose ``incident_id`` may be absent or null; their fact's incident id is ""."""
DATA_FIELDS = ("grid", "area", "priority", "customers_affected", "agent", "description",
               "verified_by", "reason", "into_incident_id", "crew", "dispatcher",
               "eta_minutes", "cause", "equipment", "customers_restored", "satisfied",
               "reached", "team", "leader", "members", "skills")
_TOP = ("event_id", "type", "incident_id", "occurred_at", "recorded_at", "schema_version",
        "source", "actor", "time", "data")
_AS_TEXT = frozenset({"type", "occurred_at", "recorded_at", "time"})
"""Read as VARCHAR: a non-string value becomes text that no check accepts anyway."""
_COLUMNS = "{" + ", ".join(f"{name}: '{'VARCHAR' if name in _AS_TEXT else 'JSON'}'"
                           for name in _TOP) + "}"
# Hours 00-23 only: DuckDB reads "T24:00:00" as the next midnight, the contract refuses it.
_STAMP = (r"^\d{4}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
          r"(Z|[+-]\d{2}:\d{2})$")
SHIFT = "duty.shift_started"
_YEAR_1971 = 31_536_000_000_000
_YEAR_2200 = 7_258_118_400_000_000 - 1
_COMPACT_INT = r"^(0|[1-9]\d{0,14})$"  # below 2^53, no sign, no exponent, no fraction
_PLAIN_NUMBER = r"^(0|[1-9]\d{0,14})(\.\d{1,15})?$"


class NotColumnar(Exception):
    """The input cannot be mapped line by line (the exact path must read it)."""


@dataclass(slots=True)
class ColumnarEvents:
    """Accepted events in a DuckDB table ``facts`` plus the input's counters."""

    db: duckdb.DuckDBPyConnection
    lines: int = 0
    rejected: int = 0
    duplicates: int = 0
    conflicts: int = 0
    stopped_at: Rejected | None = None
    shifts: dict[str, Fact] = field(default_factory=dict)
    """Event id -> the first copy of each ``duty.shift_started`` event, when the events
    came as facts (``columnar_from_facts``); from files they are read from ``facts``."""

    def counters(self) -> dict[str, int]:
        return {"rejected_events": self.rejected, "duplicate_events": self.duplicates,
                "conflicting_events": self.conflicts}


def _string(x: str) -> str:
    return f"starts_with({x}, '\"')"


def _decoded(x: str) -> str:
    """The decoded string of a JSON string text (NULL when it is not a string)."""
    return (f"(CASE WHEN NOT {_string(x)} THEN NULL WHEN contains({x}, '\\') "
            f"THEN json_extract_string({x}, '$') ELSE {x}[2:-2] END)")


def _optional_string(x: str) -> str:
    return f"({x} IS NULL OR {x} = 'null' OR {_string(x)})"


def _optional_id(x: str) -> str:
    """Absent, null or a non-empty string."""
    return f"({x} IS NULL OR {x} = 'null' OR {_required(x)})"


def _required(x: str) -> str:
    return f"coalesce({_string(x)} AND {x} <> '\"\"', false)"


def _names(x: str) -> str:
    """A JSON array of non-empty strings (``[]`` included)."""
    return (f"coalesce(json_type({x}) = 'ARRAY' AND list_bool_and(list_transform("
            f"json_extract({x}, '$[*]'), lambda v: coalesce({_string('v')} AND v <> '\"\"', false)"
            f") || [true]), false)")


def _stamp_ok(v: str, micros: str) -> str:
    """RFC 3339 with seconds, an offset below 24 h and at most 6 fraction digits, a real
    date and time; years 1971..2199 (other instants are left to the contract).
    ``micros`` is ``_stamp_micros(v)``, computed once."""
    return (f"(regexp_full_match({v}, '{_STAMP}') AND (ends_with({v}, 'Z') OR {v}[-5:-4] <= '23') "
            f"AND {micros} BETWEEN {_YEAR_1971} AND {_YEAR_2200})")


def _stamp_micros(v: str) -> str:
    return f"epoch_us(TRY_CAST({v} AS TIMESTAMPTZ))"


def _data_checks() -> str:
    d = {name: f"d[{i + 1}]" for i, name in enumerate(DATA_FIELDS)}
    opt = _optional_string
    def enum(x: str, values: tuple[str, ...]) -> str:
        listed = ", ".join(f"'\"{v}\"'" for v in values)
        return f"coalesce({x} IN ({listed}), false)"
    def flag(x: str) -> str:
        return f"({x} IS NULL OR {x} IN ('null', 'true', 'false'))"
    def int_or_null(x: str) -> str:
        return f"({x} IS NULL OR {x} = 'null' OR regexp_full_match({x}, '{_COMPACT_INT}'))"
    per_type = {
        "call.received": [_required(d["grid"]), enum(d["area"], ("urban", "rural", "remote")),
                          f"({d['priority']} IS NULL OR "
                          + enum(d["priority"], ("normal", "vulnerable", "important")) + ")",
                          int_or_null(d["customers_affected"]), opt(d["agent"]),
                          opt(d["description"])],
        "call.verified": [opt(d["verified_by"])],
        "call.rejected": [_required(d["reason"])],
        "call.merged": [_required(d["into_incident_id"])],
        "crew.dispatched": [_required(d["crew"]), opt(d["dispatcher"]),
                            f"({d['eta_minutes']} IS NULL OR {d['eta_minutes']} = 'null' OR "
                            f"regexp_full_match({d['eta_minutes']}, '{_PLAIN_NUMBER}'))"],
        "crew.departed": [_required(d["crew"])],
        "crew.arrived": [_required(d["crew"])],
        "fault.diagnosed": [opt(d["cause"]), opt(d["equipment"])],
        "repair.completed": [],
        "power.restored": [int_or_null(d["customers_restored"])],
        "incident.closed": [flag(d["satisfied"])],
        "customer.callback": [
            f"coalesce({d['reached']} IN ('true', 'false'), false)", flag(d["satisfied"]),
            f"({d['satisfied']} IS NULL OR {d['satisfied']} = 'null' OR {d['reached']} = 'true')",
            opt(d["agent"])],
        "duty.shift_started": [_required(d["team"]), _required(d["leader"]),
                               f"({d['members']} IS NULL OR {d['members']} = 'null' OR "
                               f"{_names(d['members'])})"],
        "crew.rostered": [_required(d["crew"]), _required(d["grid"]),
                          f"({d['skills']} IS NULL OR {_names(d['skills'])})"],
    }
    cases = " ".join(f"WHEN '{kind}' THEN {' AND '.join(checks) or 'true'}"
                     for kind, checks in per_type.items())
    return f"(CASE type {cases} ELSE false END)"


def _read_sql(path: str) -> str:
    """The file's rows, each field as JSON text (``_COLUMNS``), read on all threads.
    The table it fills keeps the file's order (``preserve_insertion_order``, set by
    ``load_columnar``), so its ``rowid`` numbers the rows: numbering them in the
    scan (``WITH ORDINALITY``) would run it on one thread."""
    return f"""
    SELECT * FROM read_json('{path}', format='newline_delimited', ignore_errors=true,
                            maximum_object_size=16777216, columns={_COLUMNS})"""


def _scan_sql(source: str, file_index: int, row_base: int) -> str:
    """Each row of ``source`` (``_read_sql``'s table) checked (``ok``) and, if it is
    accepted outright, its values (``FACT_COLUMNS``, ``EXTRA_COLUMNS``, ``known``)."""
    paths = ", ".join(f"'$.{name}'" for name in DATA_FIELDS)
    d = {name: f"d[{i + 1}]" for i, name in enumerate(DATA_FIELDS)}
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    optional = ", ".join(f"'{t}'" for t in OPTIONAL_INCIDENT)
    return f"""
    SELECT ordinality + {row_base} AS n, {file_index} AS file, ok,
           CASE WHEN ok THEN {_decoded('event_id')} END AS eid,
           CASE WHEN ok THEN type END AS typ,
           CASE WHEN ok THEN (CASE WHEN type IN ({optional}) THEN ''
                                   ELSE {_decoded('incident_id')} END) END AS iid,
           CASE WHEN ok THEN ts_us END AS ts,
           CASE WHEN ok THEN rec_us END AS rec,
           CASE WHEN ok AND type IN ('call.received', 'crew.rostered')
                THEN {_decoded(d['grid'])} END AS grid,
           CASE WHEN ok AND type = 'call.received' THEN {_decoded(d['area'])} END AS area,
           CASE WHEN ok AND type = 'call.received'
                THEN coalesce({_decoded(d['priority'])}, 'normal') END AS priority,
           CASE WHEN ok AND type = 'call.received' AND {d['customers_affected']} <> 'null'
                THEN CAST({d['customers_affected']} AS BIGINT) END AS customers,
           CASE WHEN ok AND type IN ('crew.dispatched', 'crew.departed', 'crew.arrived',
                                     'crew.rostered')
                THEN {_decoded(d['crew'])} END AS crew,
           CASE WHEN ok AND type = 'call.merged'
                THEN {_decoded(d['into_incident_id'])} END AS into_id,
           CASE WHEN ok AND type IN ('call.received', 'customer.callback')
                THEN nullif({_decoded(d['agent'])}, '') END AS agent,
           CASE WHEN ok AND type = 'customer.callback'
                THEN {d['reached']} = 'true' END AS reached,
           CASE WHEN ok AND type = 'customer.callback' AND {d['satisfied']} <> 'null'
                THEN {d['satisfied']} = 'true' END AS satisfied,
           CASE WHEN ok AND type = '{SHIFT}' THEN {_decoded(d['team'])} END AS team,
           CASE WHEN ok AND type = '{SHIFT}' THEN {_decoded(d['leader'])} END AS leader,
           CASE WHEN ok AND type = '{SHIFT}' AND {d['members']} <> 'null'
                THEN list_transform(json_extract({d['members']}, '$[*]'),
                                    lambda v: {_decoded('v')}) END AS members,
           CASE WHEN ok THEN coalesce(rec_us, ts_us) END AS known
    FROM (
        SELECT *, coalesce(
            starts_with(data, '{{') AND {_required('event_id')}
            AND CASE WHEN type IN ({optional}) THEN {_optional_id('incident_id')}
                     ELSE {_required('incident_id')} END
            AND type IN ({types})
            AND {_stamp_ok('occurred_at', 'ts_us')}
            AND (recorded_at IS NULL OR {_stamp_ok('recorded_at', 'rec_us')})
            AND schema_version = '1' AND time IS NULL
            AND {_optional_string('source')} AND {_optional_string('actor')}
            AND {_data_checks()}, false) AS ok
        FROM (
            SELECT *, json_extract(CASE WHEN starts_with(data, '{{') THEN data END, [{paths}]) AS d,
                   {_stamp_micros('occurred_at')} AS ts_us,
                   {_stamp_micros('recorded_at')} AS rec_us
            FROM (SELECT *, rowid + 1 AS ordinality FROM {source})))
    """


FACT_COLUMNS = ("n", "eid", "typ", "iid", "ts", "rec", "grid", "area", "priority",
                "customers", "crew", "into_id", "agent")
EXTRA_COLUMNS = ("reached", "satisfied", "team", "leader", "members")
"""``customer.callback`` answers and ``duty.shift_started`` teams (NULL for the other types)."""
_FACTS_TABLE = ("CREATE TEMP TABLE facts (n BIGINT, eid VARCHAR, typ VARCHAR, iid VARCHAR, "
                "ts BIGINT, rec BIGINT, grid VARCHAR, area VARCHAR, priority VARCHAR, "
                "customers BIGINT, crew VARCHAR, into_id VARCHAR, agent VARCHAR, "
                "reached BOOLEAN, satisfied BOOLEAN, team VARCHAR, leader VARCHAR, "
                "members VARCHAR[], known BIGINT)")


def load_columnar(paths: Sequence[Path], *, strict: bool = False,
                  on_rejected: Callable[[Rejected], None] | None = None,
                  threads: int | None = None) -> ColumnarEvents:
    """Validate ``paths`` and keep their valid events in ``facts``, one row per event
    id (its first accepted copy, ``known`` at the earliest record among its copies;
    module contract).

    Copies of an accepted event id are duplicates when they are the same event and
    conflicts (rejected, with the exact engine's reason) when their content differs
    (``schemas.identity``); ``on_rejected`` gets every rejected line in file order.
    Each file is also walked once as text (``LineIndex``, beside DuckDB's scan), for
    the lines the check leaves to the contract, the copies of repeated event ids and
    the lines that may hold a NUL.
    Raises ``NotColumnar`` when the reader's rows cannot be matched to the file's
    lines (then the exact path must be used)."""
    events = ColumnarEvents(_connect(threads))
    indexes: list[RowIndex] = []
    try:
        return _load(events, paths, indexes, strict, on_rejected)
    finally:
        for index in indexes:
            index.close()


def columnar_records() -> ColumnarEvents:
    """An empty ``ColumnarEvents`` for ``add_records``."""
    db = _connect(None)
    # The columns ``_scan_sql`` adds (``ok``, ``file``), as a table made from a scan has.
    db.execute(_FACTS_TABLE.removesuffix(")") + ", ok BOOLEAN, file INTEGER)")
    return ColumnarEvents(db)


def add_records(events: ColumnarEvents, rows: RecordRows, recorded: Sequence[int],
                earlier: Sequence[RecordRows]) -> tuple[list[Rejected], dict[str, int]]:
    """Validate the records of ``rows`` (records that are not lines of a file, e.g. the
    messages of a log in the order they were read; rows ``rows.row_base + 1`` on,
    following ``earlier``, whose rows are in ``events`` already) into ``facts``, as
    ``load_columnar`` validates lines: the copies of an event id are measured against
    its first copy, also one of an earlier call. An event without ``recorded_at`` is
    known at its ``recorded`` time (``recorded[0]`` is row ``rows.row_base + 1``'s,
    e.g. its message's log timestamp) instead of when it occurred. The records are
    written to a temporary JSON Lines file for DuckDB (``RecordRows.write``), removed
    before this returns.

    Returns the rejected records in row order, and the event ids whose first copy is
    among the earlier rows and is now known earlier (a copy recorded earlier came),
    with that time. Raises ``NotColumnar`` as ``load_columnar`` does."""
    if len(recorded) != rows.rows or rows.row_base != events.lines:
        raise ValueError("recorded times or row numbers do not follow the rows loaded")
    db, base = events.db, rows.row_base
    with tempfile.TemporaryDirectory(prefix="dispatch-columnar-") as folder:
        path = Path(folder) / "records.jsonl"
        rows.write(path)
        quoted = str(path).replace("'", "''")
        db.execute(f"CREATE OR REPLACE TEMP TABLE raw AS {_read_sql(quoted)}")
    db.execute(f"INSERT INTO facts BY NAME {_scan_sql('raw', 0, base)}")
    db.execute("DROP TABLE raw")
    total = db.execute("SELECT max(n) FROM facts").fetchall()[0][0] or base
    read = db.execute(f"SELECT count(*) FROM facts WHERE n > {base}").fetchall()[0][0]
    if read != rows.rows or total != base + rows.rows:
        raise NotColumnar(f"{read} rows read, {rows.rows} records")
    events.lines = base + rows.rows
    indexes: list[RowIndex] = [*earlier, rows]
    flagged = [n for (n,) in db.execute(
        f"SELECT n FROM facts WHERE NOT ok AND n > {base}").fetchall()]
    contract = sorted({*flagged, *rows.nul_rows})
    if contract:
        _drop_rows(db, contract)
    rejected: list[tuple[int, Rejected]] = []
    accepted_ids: list[str] = []
    if contract:
        _decide(events, [(n, _record(indexes, n)) for n in contract], False, rejected,
                accepted_ids)
    _known_by_default(db, recorded, base)
    repeated = [e for (e,) in db.execute(
        f"SELECT eid FROM facts WHERE eid IN (SELECT eid FROM facts WHERE n > {base}) "
        "GROUP BY eid HAVING count(*) > 1").fetchall()]
    moved = _copies(events, indexes, repeated, rejected)
    rejected.sort(key=lambda item: item[0])
    earlier_first = [n for n in moved if n <= base]
    updates: dict[str, int] = {}
    if earlier_first:
        ids = dict(db.execute(f"SELECT n, eid FROM facts WHERE n IN "
                              f"({', '.join(map(str, earlier_first))})").fetchall())
        updates = {ids[n]: moved[n] for n in earlier_first}
    return [item for _, item in rejected], updates


def _connect(threads: int | None) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    db.execute("SET enable_progress_bar = false")  # it would print into our stdout
    db.execute("SET preserve_insertion_order = true")  # row numbers are rowids (_read_sql)
    if threads:
        db.execute(f"SET threads = {int(threads)}")
    return db


def _load(events: ColumnarEvents, paths: Sequence[Path], indexes: list[RowIndex],
          strict: bool,
          on_rejected: Callable[[Rejected], None] | None) -> ColumnarEvents:
    db = events.db
    row_base = 0
    for file_index, path in enumerate(paths):
        quoted = str(path).replace("'", "''")
        index = LineIndex(path, row_base)
        indexes.append(index)
        index.start()  # the walk runs while DuckDB reads
        try:
            db.execute(f"CREATE OR REPLACE TEMP TABLE raw AS {_read_sql(quoted)}")
        finally:
            index.join()
        scan = _scan_sql("raw", file_index, row_base)
        db.execute(f"CREATE TEMP TABLE facts AS {scan}" if file_index == 0
                   else f"INSERT INTO facts {scan}")
        db.execute("DROP TABLE raw")
        total = db.execute("SELECT count(*) FROM facts").fetchall()[0][0]
        if total - row_base != index.rows:
            raise NotColumnar(f"{path}: {total - row_base} rows read, "
                              f"{index.rows} lines with content")
        row_base = total
    events.lines = row_base
    flagged = [n for (n,) in db.execute("SELECT n FROM facts WHERE NOT ok").fetchall()]
    repeated = db.execute("SELECT eid, list(n) FROM facts WHERE ok GROUP BY eid "
                          "HAVING count(*) > 1").fetchall()
    nul_rows = [n for index in indexes for n in index.nul_rows]
    contract = sorted({*flagged, *nul_rows})
    if contract:  # they leave the table; the contract's accepted ones come back
        _drop_rows(db, contract)
    rejected: list[tuple[int, Rejected]] = []
    accepted_ids: list[str] = []
    if contract and _decide(events, [(n, _record(indexes, n)) for n in contract], strict,
                            rejected, accepted_ids):
        _emit(rejected, on_rejected)
        return events
    _copies(events, indexes, [*(e for e, _ in repeated), *accepted_ids], rejected)
    _emit(rejected, on_rejected)
    return events


def _known_by_default(db: duckdb.DuckDBPyConnection, recorded: Sequence[int],
                      row_base: int) -> None:
    """Rows after ``row_base`` whose event has no ``recorded_at`` are known at their
    ``recorded`` time (``recorded[0]`` is row ``row_base + 1``'s)."""
    rows = [n for (n,) in db.execute(
        f"SELECT n FROM facts WHERE rec IS NULL AND n > {int(row_base)}").fetchall()]
    if rows:
        _run_with(db, "recorded_rows",
                  pa.table({"n": pa.array(rows, type=pa.int64()),
                            "at": pa.array([recorded[n - row_base - 1] for n in rows],
                                           type=pa.int64())}),
                  "UPDATE facts SET known = r.at FROM recorded_rows r WHERE facts.n = r.n")


def _record(indexes: Sequence[RowIndex], row: int) -> Record:
    """The record of ``row`` (rows run across the files)."""
    for index in reversed(indexes):
        if row > index.row_base:
            return index.record(row)
    raise IndexError(row)


@contextmanager
def _paused_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: the rows and incidents built here hold no
    cycles, and building a hundred thousand of them made it walk the young heap over
    and over (a third of the fold's Python time at 1M events)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_with(db: duckdb.DuckDBPyConnection, name: str, table: pa.Table, sql: str) -> None:
    """Run ``sql`` with the Arrow ``table`` visible to it as ``name``."""
    db.register(name, table)
    try:
        db.execute(sql)
    finally:
        db.unregister(name)


def _drop_rows(db: duckdb.DuckDBPyConnection, rows: Sequence[int]) -> None:
    _run_with(db, "dropped_rows", pa.table({"n": pa.array(rows, type=pa.int64())}),
              "DELETE FROM facts WHERE n IN (SELECT n FROM dropped_rows)")


def _emit(rejected: list[tuple[int, Rejected]],
          on_rejected: Callable[[Rejected], None] | None) -> None:
    """Rejected lines in input order (row numbers run across the files)."""
    rejected.sort(key=lambda item: item[0])
    if on_rejected is not None:
        for _, item in rejected:
            on_rejected(item)


def _copies(events: ColumnarEvents, indexes: Sequence[RowIndex], candidates: list[str],
            rejected: list[tuple[int, Rejected]]) -> dict[int, int]:
    """Of the copies of each event id among ``candidates`` (every id that may have
    more than one accepted copy), reject those whose content differs from the first
    copy's (conflicts, as ``Projector`` does) and count the others as duplicates;
    only the first copy stays, known at the earliest record among the copies it
    stands for. Returns the rows of the first copies whose known time this moved
    earlier, with that time."""
    if not candidates:
        return {}
    db = events.db
    db.register("candidate_ids", pa.table({"eid": pa.array(candidates, type=pa.string())}))
    groups = db.execute(
        "SELECT eid, list(n ORDER BY n), list(known ORDER BY n) FROM facts "
        "WHERE eid IN (SELECT eid FROM candidate_ids) GROUP BY eid HAVING count(*) > 1"
    ).fetchall()
    db.unregister("candidate_ids")
    dropped: list[int] = []
    firsts: list[int] = []
    knowns: list[int] = []
    for event_id, rows, known in groups:
        first = _record(indexes, rows[0]).raw
        earliest = known[0]
        for n, at in zip(rows[1:], known[1:], strict=True):
            record = _record(indexes, n)
            differs = difference(first, record.raw)
            dropped.append(n)
            if differs is not None:
                events.conflicts += 1
                rejected.append((n, Rejected(record, _conflict(event_id, differs))))
            else:
                events.duplicates += 1
                earliest = min(earliest, at)
        if earliest != known[0]:
            firsts.append(rows[0])
            knowns.append(earliest)
    if dropped:
        _drop_rows(db, dropped)
    if firsts:
        _run_with(db, "earliest_rows", pa.table({"n": pa.array(firsts, type=pa.int64()),
                                                  "known": pa.array(knowns, type=pa.int64())}),
                  "UPDATE facts SET known = e.known FROM earliest_rows e WHERE facts.n = e.n")
    return dict(zip(firsts, knowns, strict=True))


def columnar_from_facts(facts: Sequence[Fact], known: Mapping[str, int],
                        counters: Mapping[str, int] | None = None) -> ColumnarEvents:
    """The ``facts`` table of events already validated and deduplicated (a store's
    event log, a replayed topic): one row per fact, its known time as ``rec``."""
    db = duckdb.connect()
    db.execute("SET enable_progress_bar = false")
    db.execute(_FACTS_TABLE)
    events = ColumnarEvents(db, lines=len(facts))
    counters = counters or {}
    events.rejected = counters.get("rejected_events", 0)
    events.duplicates = counters.get("duplicate_events", 0)
    events.conflicts = counters.get("conflicting_events", 0)
    rows = []
    for n, fact in enumerate(facts, start=1):
        row = list(_fact(fact))
        row[4] = known.get(fact.event_id, fact.recorded)  # rec: when it was known
        rows.append((n, *row))
        if fact.type == SHIFT:
            events.shifts.setdefault(fact.event_id, fact)
    _insert(db, rows)
    return events


def _insert(db: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    names = (*FACT_COLUMNS, *EXTRA_COLUMNS, "known")
    types = {"n": pa.int64(), "ts": pa.int64(), "rec": pa.int64(), "customers": pa.int64(),
             "reached": pa.bool_(), "satisfied": pa.bool_(), "members": pa.list_(pa.string()),
             "known": pa.int64()}
    columns = list(zip(*rows, strict=True))
    columns.append(tuple(ts if rec is None else rec for ts, rec in zip(columns[4], columns[5],
                                                                         strict=True)))
    table = pa.table({name: pa.array(values, type=types.get(name, pa.string()))
                      for name, values in zip(names, columns, strict=True)})
    _run_with(db, "accepted_rows", table, f"INSERT INTO facts ({', '.join(names)}) "
              f"SELECT {', '.join(names)} FROM accepted_rows")


def _decide(events: ColumnarEvents, found: list[tuple[int, Record]], strict: bool,
            rejected: list[tuple[int, Rejected]], accepted_ids: list[str]) -> bool:
    """Run the contract (``facts_of``: the lean check, then pydantic) on the rows the
    check left to it, in row order, and add the accepted ones (their event ids to
    ``accepted_ids``); True when strict mode stopped."""
    accepted: list[tuple[Any, ...]] = []
    for (row, record), fact in zip(found, facts_of([r.raw for _, r in found]), strict=True):
        if isinstance(fact, str):
            refused = Rejected(record, fact)
            if strict:
                events.stopped_at = refused
                _insert(events.db, accepted)
                return True
            events.rejected += 1
            rejected.append((row, refused))
            continue
        accepted.append((row, *_fact(fact)))
        accepted_ids.append(fact.event_id)
    _insert(events.db, accepted)
    return False


def _fact(fact: Fact) -> tuple[Any, ...]:
    return (fact.event_id, fact.type, fact.incident_id, fact.at, fact.recorded, fact.grid,
            fact.area, fact.priority, fact.customers, fact.crew, fact.into, fact.agent,
            fact.reached, fact.satisfied, fact.team, fact.leader,
            None if fact.members is None else list(fact.members))


# -- the fold ---------------------------------------------------------------------------

def fold_columnar(events: ColumnarEvents, calendar: DutyCalendar, window: Window,
                  limits: SlaLimits = DEFAULT_LIMITS, handover: list[Incident] | None = None,
                  all_incidents: bool = True
                  ) -> tuple[dict[Bucket, Totals], list[Incident], list[Fact]]:
    """Bucket totals, incidents (none unless ``all_incidents``) and shift starts of the
    events ``window`` keeps; ``handover``, if given, receives the incidents open at the
    end of their period (``projections.totals.handover_end``'s rule).

    The incidents are folded in SQL (``projections.incident``'s rules, aggregate by
    aggregate), and so are their totals (``projections.columnar_totals``: the
    definitions of ``projections.totals`` written again, held to them by tests)."""
    db = events.db
    _fold_tables(db, window)
    span = db.execute("SELECT min(ts), max(ts) FROM kept WHERE typ = 'call.received'"
                      ).fetchall()[0]
    called = span is not None and span[0] is not None
    if called:
        _periods(db, calendar, span[0], span[1])
    else:  # no first call to place: every incident is unattributed
        db.execute("CREATE OR REPLACE TEMP TABLE periods "
                   "(day VARCHAR, start_us BIGINT, end_us BIGINT)")
    totals = sql_totals(db, limits)
    if called:
        _call_totals(db, totals)
    with _paused_gc():
        incidents = _incidents(db) if all_incidents else []
        if handover is not None:
            handover.extend(_incidents(db, open_at_handover=True))
    shifts = [events.shifts.get(eid) or Fact(
        eid, SHIFT, "", at, team=team, leader=leader,
        members=None if members is None else tuple(members), recorded=recorded)
        for eid, at, recorded, team, leader, members in db.execute(
            f"SELECT eid, ts, rec, team, leader, members FROM kept WHERE typ = '{SHIFT}' "
            "ORDER BY n").fetchall()]
    return totals, incidents, shifts


def _fold_tables(db: duckdb.DuckDBPyConnection, window: Window) -> None:
    """``kept``: the events ``window`` keeps; ``inc``: their incidents, folded."""
    conditions = ["true"]
    if window.as_of is not None:
        conditions.append(f"ts <= {int(window.as_of)}")
    if window.known_at is not None:
        conditions.append(f"known <= {int(window.known_at)}")
    # ``facts`` holds one row per event already (its first copy, known at the earliest record).
    db.execute(f"CREATE OR REPLACE TEMP VIEW kept AS SELECT * FROM facts "
               f"WHERE {' AND '.join(conditions)}")
    skipped = ", ".join(f"'{t}'" for t in sorted(NO_INCIDENT_TYPES))
    db.execute(f"""
        CREATE OR REPLACE TEMP TABLE inc AS
        SELECT iid,
          min(ts) FILTER (WHERE typ = 'call.received') AS t0,
          min(ts) FILTER (WHERE typ = 'call.verified') AS t1,
          min(ts) FILTER (WHERE typ = 'crew.departed') AS t2,
          min(ts) FILTER (WHERE typ = 'crew.arrived') AS t3,
          min(ts) FILTER (WHERE typ = 'fault.diagnosed') AS t4,
          min(ts) FILTER (WHERE typ = 'repair.completed') AS t5,
          min(ts) FILTER (WHERE typ = 'power.restored') AS t6,
          arg_min({{'grid': grid, 'area': area, 'priority': priority, 'customers': customers,
                   'owner': nullif(agent, ''), 'eid': eid}}, (ts, eid))
              FILTER (WHERE typ = 'call.received') AS call,
          min(ts) FILTER (WHERE typ = 'crew.dispatched') AS dispatched_at,
          arg_min(crew, (ts, crew)) FILTER (WHERE typ = 'crew.dispatched') AS dispatched_crew,
          arg_min(crew, (ts, crew)) FILTER (WHERE typ = 'crew.arrived') AS arrived_crew,
          list_sort(list(DISTINCT crew) FILTER (WHERE typ = 'crew.arrived')) AS arrived_crews,
          min(ts) FILTER (WHERE typ = 'call.rejected') AS rejected_at,
          min(ts) FILTER (WHERE typ = 'call.merged') AS merged_at,
          arg_min(into_id, (ts, into_id)) FILTER (WHERE typ = 'call.merged') AS merged_into,
          min(ts) FILTER (WHERE typ = 'incident.closed') AS closed_at,
          coalesce(bit_or(CASE WHEN NOT reached THEN {CALLED_BACK}
                               WHEN satisfied THEN {CALLED_BACK | REACHED | SATISFIED}
                               WHEN NOT satisfied THEN {CALLED_BACK | REACHED | DISSATISFIED}
                               ELSE {CALLED_BACK | REACHED} END)
                   FILTER (WHERE typ = 'customer.callback'), 0) AS callbacks
        FROM kept WHERE typ NOT IN ({skipped}) AND NOT (typ LIKE '{DUTY_PREFIX}%')
        GROUP BY iid""")


def _periods(db: duckdb.DuckDBPyConnection, calendar: DutyCalendar, low: int,
             high: int) -> None:
    first = from_micros(low, calendar.zone).date() - timedelta(days=2)
    last = from_micros(high, calendar.zone).date() + timedelta(days=2)
    days, starts = [], []
    day = first
    while day <= last + timedelta(days=1):
        days.append(day.isoformat())
        starts.append(calendar.period_start(day))
        day += timedelta(days=1)
    table = pa.table({"day": days[:-1], "start_us": starts[:-1], "end_us": starts[1:]})
    _run_with(db, "period_rows", table,
              "CREATE OR REPLACE TEMP TABLE periods AS SELECT * FROM period_rows")


def _call_totals(db: duckdb.DuckDBPyConnection, totals: dict[Bucket, Totals]) -> None:
    rows = db.execute(f"""
        WITH calls AS (
            SELECT p.day, coalesce(k.grid, '{NO_MEMBER}') AS grid_member,
                   coalesce(k.area, '{NO_MEMBER}') AS area_member
            FROM kept k ASOF JOIN periods p ON k.ts >= p.start_us
            WHERE k.typ = 'call.received')
        SELECT CASE WHEN grouping(grid_member) = 0 THEN 'grid'
                    WHEN grouping(area_member) = 0 THEN 'area' ELSE '' END,
               coalesce(grid_member, area_member, ''), day, count(*)
        FROM calls GROUP BY GROUPING SETS ((day), (day, grid_member), (day, area_member))
        """).fetchall()
    for dimension, member, day, count in rows:
        vector = totals.get((dimension, member, day))
        if vector is None:
            vector = totals[(dimension, member, day)] = zeros()
        vector[CALLS] += int(count)


def _incidents(db: duckdb.DuckDBPyConnection, open_at_handover: bool = False
               ) -> list[Incident]:
    """The incidents of ``inc``; or only the outage incidents still open at the end
    of the duty period of their first call (``projections.totals.handover_end``)."""
    placed = (f"ASOF JOIN periods ON t0 >= start_us WHERE {OUTAGE} AND {STILL_OPEN}"
              if open_at_handover else "")
    rows = db.execute(f"""
        SELECT iid, t0, t1, t2, t3, t4, t5, t6, call.grid, call.area, call.priority,
               call.customers, dispatched_at, dispatched_crew, arrived_crew, rejected_at,
               merged_at, merged_into, closed_at, call.owner, call.eid, callbacks,
               coalesce(arrived_crews, []) FROM inc {placed}""").fetchall()
    # Positional, in ``Incident``'s field order (keywords cost a dict per call).
    return [Incident(r[0], list(r[1:8]), r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15],
                     r[16], r[17], r[18], r[19], r[20], r[21], tuple(r[22])) for r in rows]


# -- export ---------------------------------------------------------------------------------

def export_parquet(events: ColumnarEvents, calendar: DutyCalendar, folder: Path) -> dict[str, int]:
    """Write the accepted events and the per-incident read model as Parquet under
    ``folder/events`` and ``folder/incidents``, partitioned by duty date (an event by
    its ``occurred_at``, an incident by its first call; ``duty_date=none`` for an
    incident without a call). Times are UTC timestamps; stage and restoration
    durations are minutes as floats (negative when the clocks disagree). Returns the
    row counts."""
    db = events.db
    _fold_tables(db, Window())
    low, high = db.execute("SELECT min(ts), max(ts) FROM kept").fetchall()[0]
    if low is None:
        return {"events": 0, "incidents": 0}
    _periods(db, calendar, low, high)
    target = str(folder).replace("'", "''")
    db.execute(f"""
        COPY (SELECT k.eid AS event_id, k.typ AS type, k.iid AS incident_id,
                     make_timestamp(k.ts) AS occurred_at, make_timestamp(k.known) AS known_at,
                     k.grid, k.area, k.priority, k.customers AS customers_affected, k.crew,
                     k.into_id AS into_incident_id, k.agent, p.day AS duty_date
              FROM kept k ASOF JOIN periods p ON k.ts >= p.start_us ORDER BY k.ts, k.eid)
        TO '{target}/events' (FORMAT PARQUET, PARTITION_BY (duty_date), OVERWRITE_OR_IGNORE)""")
    stages = ", ".join(
        f"({TIMES[k + 1]} - {TIMES[k]}) / 60e6 AS {stage}_minutes"
        for k, stage in enumerate(STAGES))
    db.execute(f"""
        COPY (SELECT i.iid AS incident_id, coalesce(p.day, 'none') AS duty_date,
                     {OUTAGE} AS is_outage,
                     i.call.grid AS grid, i.call.area AS area, i.call.priority AS priority,
                     i.call.customers AS customers_affected, i.call.owner AS owner,
                     coalesce(i.arrived_crew, i.dispatched_crew) AS crew,
                     {', '.join(f"make_timestamp({t}) AS {name}_at" for t, name in
                                zip(TIMES, ("call", "verify", "depart", "arrive",
                                                   "diagnose", "repair", "restore"),
                                    strict=True))},
                     {stages}, (t6 - t0) / 60e6 AS restoration_minutes,
                     make_timestamp(closed_at) AS closed_at, i.merged_into
              FROM inc i ASOF LEFT JOIN periods p ON i.t0 >= p.start_us ORDER BY i.t0, i.iid)
        TO '{target}/incidents' (FORMAT PARQUET, PARTITION_BY (duty_date), OVERWRITE_OR_IGNORE)""")
    counts = db.execute("SELECT (SELECT count(*) FROM kept), (SELECT count(*) FROM inc)"
                        ).fetchall()[0]
    return {"events": int(counts[0]), "incidents": int(counts[1])}
