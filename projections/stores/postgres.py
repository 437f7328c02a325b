"""PostgreSQL store (asyncpg): the production read models.

One ``commit`` is one transaction: COPY for the append-only rows (event log,
calls), ``unnest`` upserts for incidents and additive totals, and the consumer
positions, checked against the expected ones under ``FOR UPDATE`` so a zombie
worker that lost its partitions cannot commit over the new owner.

``writing()`` opens a transaction before the reads and takes a
transaction-level advisory lock: exclusive for embedded ingests (they may touch
any incident), shared for the partitioned Kafka workers (each owns the
incidents of its partitions), so an ingest never interleaves with anyone while
workers still run side by side. The block's ``commit`` runs in a savepoint of
that transaction and then commits it.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, NamedTuple

import asyncpg

from projections.changes import (
    incident_changes,
    period_changes,
    prune_due,
    retention_cutoff,
    service_days,
)
from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.ports import (
    ALERT_RELAY,
    DEFAULT_CHANGE_RETENTION_DAYS,
    EVENT_RELAY,
    AlertEntry,
    Change,
    ChangeWindow,
    CommandAnswer,
    Commit,
    IncidentQuery,
    LoggedEvent,
    NewChange,
    OutboxEntry,
    PeriodContext,
    PositionKey,
    ProjectionStore,
    StalePosition,
)
from projections.sla import SlaLimits
from projections.sla_live import SlaPlan, SlaRow, evaluate, outbox_changes, plan_instant
from projections.stores.driver_errors import described, masked, translate_errors
from projections.stores.migrate import migrations
from projections.stores.postgres_bulk import indexes_set_aside
from projections.stores.rows import (
    COUNTERS,
    INCIDENT_COLUMNS,
    INCIDENT_WRITE_COLUMNS,
    POSITION_COLUMNS,
    SHIFT_COLUMNS,
    TOTALS_COLUMNS,
    TOTALS_KEY,
    calendar_from_meta,
    calendar_meta,
    incident_from_row,
    incident_row,
    limits_from_meta,
    limits_meta,
    period_context,
    period_rows,
    shift_from_row,
    shift_row,
)
from projections.totals import AGENT, FIELDS, Bucket, Totals


class _Staged(NamedTuple):
    """A bulk upsert through a session temporary table: the rows are COPYed into
    ``stage`` (binary COPY encodes a row far cheaper than ``unnest`` arrays, whose
    driver checks every element) and moved with one INSERT ... SELECT; the stage
    empties itself at commit, so each is used at most once per transaction."""

    table: str
    stage: str
    columns: tuple[str, ...]
    create: str
    upsert: str


def _staged(table: str, columns: Sequence[str], key: Sequence[str], update: str) -> _Staged:
    stage = f"stage_{table}"
    names = ", ".join(columns)
    return _Staged(
        table, stage, tuple(columns),
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
        f"SELECT {names} FROM {table} WITH NO DATA",
        # ORDER BY: concurrent writers lock shared rows (totals) in one order.
        f"INSERT INTO {table} AS t ({names}) SELECT {names} FROM {stage} "
        f"ORDER BY {', '.join(key)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {update}")


_INCIDENT_UPSERT = _staged(
    "incidents", INCIDENT_WRITE_COLUMNS, ("incident_id",),
    ", ".join(f"{c} = excluded.{c}" for c in INCIDENT_WRITE_COLUMNS[1:]))
_TOTALS_UPSERT = _staged(
    "totals", TOTALS_COLUMNS, TOTALS_KEY, ", ".join(f"{c} = t.{c} + excluded.{c}" for c in FIELDS))
_MIGRATION_LOCK = 7_343_001  # advisory lock id: one migrator at a time
_WRITE_LOCK = 7_343_002  # advisory lock id of writing(): exclusive or shared
_SLA_LOCK = 7_343_003
"""Transaction lock around the SLA part of a commit: the timer of one worker and the
batches of another never evaluate the same rows at once (and never deadlock: it is
taken after the totals rows and before the change-log head, by everyone)."""
_RELAY_LOCK = 7_343_004
"""Session lock: one alert relay per database."""
_EVENT_RELAY_LOCK = 7_343_005
"""Session lock: one relay of the command outbox's events per database."""
_SLA_COLUMNS = ", ".join(SlaRow._fields)
_SLA_UPSERT = _staged(
    "sla_state", SlaRow._fields, ("incident_id", "rule"),
    ", ".join(f"{c} = excluded.{c}" for c in SlaRow._fields[2:]))
_STAGED = (_INCIDENT_UPSERT, _TOTALS_UPSERT, _SLA_UPSERT)
_OUTBOX_COLUMNS = "seq, alert_id, incident_id, payload, sent_us, withheld"
CHANGES_CHANNEL = "dispatch_changes"
"""NOTIFY channel: the payload is the new head sequence of the change log."""
_OPEN_INCIDENT = "rejected_at IS NULL AND merged_at IS NULL AND t6 IS NULL AND closed_at IS NULL"


def _describe(store: PostgresStore, exc: BaseException) -> str:
    return f"PostgreSQL at {masked(store.dsn)}: {described(exc)}"


# InternalClientError: the connection's protocol state is broken (an operation was
# cut off mid-way, e.g. by a server shutdown); only a new connection helps.
@translate_errors((OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                   asyncpg.exceptions._base.InternalClientError), _describe)
class PostgresStore(ProjectionStore):
    """Driver errors (connection, credentials, server shutdown, failed transaction)
    leave every public method as ``StoreUnavailable``.

    ``idle_transaction_timeout`` (seconds): PostgreSQL ends a session whose open
    transaction waits that long for its client, so a worker frozen mid-commit
    (stopped, paused VM) releases its position locks instead of blocking the
    worker that took its partitions over. The session is named
    ``SESSION_NAME[PID]`` in ``pg_stat_activity`` (``dispatch[PID]`` by default)."""

    def __init__(self, dsn: str, calendar: DutyCalendar | None = None, *,
                 sla_limits: SlaLimits | None = None,
                 change_log: bool = True,
                 change_retention_days: float = DEFAULT_CHANGE_RETENTION_DAYS,
                 idle_transaction_timeout: float | None = None,
                 session_name: str = "dispatch") -> None:
        self.dsn = dsn
        self.calendar = calendar or DutyCalendar()
        self.sla_limits = sla_limits or SlaLimits()
        self.change_log = change_log
        self.change_retention_days = change_retention_days
        self.idle_transaction_timeout = idle_transaction_timeout
        self.session_name = session_name
        self._conn: Any = None
        self._block: Any = None
        """The transaction of the open ``writing()`` block, until its commit."""
        self._in_block = False
        self._staging = False
        """Inside a writing() block written with ``stage``: notify at ``finish``."""
        self._notify_head: int | None = None
        self._pruned_at = 0
        self._staged: set[str] = set()
        """Stages filled in the transaction of the current ``_write``."""

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def open(self) -> None:
        if self._conn is not None:
            return
        settings = {
            "application_name": f"{self.session_name}[{os.getpid()}]",
            # Plan every statement for its own values. asyncpg prepares each statement once,
            # and after five runs PostgreSQL may keep a generic plan made while a table was
            # still empty: a sequential scan testing ``= ANY($1)`` element by element, which
            # took 0.6-1.1 s per batch on 45,000 SLA rows (and held the SLA lock so long that
            # the alert timer fell a second behind). A custom plan costs well under a
            # millisecond per statement, and a batch runs a few dozen.
            "plan_cache_mode": "force_custom_plan",
        }
        if self.idle_transaction_timeout is not None:
            settings["idle_in_transaction_session_timeout"] = \
                str(max(1, round(self.idle_transaction_timeout * 1000)))
        self._conn = await asyncpg.connect(self.dsn, server_settings=settings)
        async with self.conn.transaction():
            await self.conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            applied = {r[0] for r in await self.conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations("postgres"):
                if version not in applied:
                    await self.conn.execute(sql)
                    await self.conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version, name)
            meta = dict(await self.conn.fetch("SELECT key, value FROM meta"))
            stored = calendar_from_meta(meta)
            limits = limits_from_meta(meta)
            if stored is not None:
                self.calendar = stored
            if limits is not None:
                self.sla_limits = limits
            if stored is None or limits is None:
                await self.conn.executemany(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    calendar_meta(self.calendar) + limits_meta(self.sla_limits))
            for staged in _STAGED:
                await self.conn.execute(staged.create)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def sibling(self) -> PostgresStore:
        return PostgresStore(self.dsn, self.calendar, sla_limits=self.sla_limits,
                             change_log=self.change_log,
                             change_retention_days=self.change_retention_days,
                             idle_transaction_timeout=self.idle_transaction_timeout,
                             session_name=self.session_name)

    async def still_writing(self, other: ProjectionStore) -> bool:
        if not isinstance(other, PostgresStore) or other._conn is None or not other._in_block:
            return False
        # The lock is the block's: held from its start to its transaction's end.
        return bool(await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = $1 AND classid = $2 AND objid = $3 AND objsubid = 1 AND granted)",
            other._conn.get_server_pid(), _WRITE_LOCK >> 32, _WRITE_LOCK & 0xFFFFFFFF))

    async def positions(self, consumer: str) -> dict[PositionKey, int]:
        rows = await self.conn.fetch(
            "SELECT source, partition, next_position FROM positions WHERE consumer = $1",
            consumer)
        return {(r[0], r[1]): r[2] for r in rows}

    async def fingerprints(self, consumer: str) -> dict[PositionKey, str]:
        rows = await self.conn.fetch(
            "SELECT source, partition, fingerprint FROM fingerprints WHERE consumer = $1",
            consumer)
        return {(r[0], r[1]): r[2] for r in rows}

    async def known_events(self, event_ids: Sequence[str]) -> dict[str, bytes]:
        rows = await self.conn.fetch(
            "SELECT event_id, raw FROM event_log WHERE event_id = ANY($1::text[])",
            list(event_ids))
        return {r[0]: bytes(r[1]) for r in rows}

    async def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT event_id FROM event_log WHERE event_id = ANY($1::text[])", list(event_ids))
        return {r[0] for r in rows}

    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        if not incident_ids:
            return {}
        rows = await self.conn.fetch(
            f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents "
            "WHERE incident_id = ANY($1::text[])", list(incident_ids))
        return {r[0]: incident_from_row(tuple(r)) for r in rows}

    @asynccontextmanager
    async def writing(self, *, partitioned: bool = False) -> AsyncIterator[None]:
        if self._in_block:
            raise RuntimeError("writing() blocks do not nest")
        transaction = self.conn.transaction()
        await transaction.start()
        self._block, self._in_block = transaction, True
        try:
            lock = "pg_advisory_xact_lock_shared" if partitioned else "pg_advisory_xact_lock"
            await self.conn.execute(f"SELECT {lock}($1)", _WRITE_LOCK)
            yield
        finally:
            self._in_block = self._staging = False
            self._notify_head = None
            if self._block is not None:
                self._block = None
                # If the connection is gone, the transaction went with it.
                with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await transaction.rollback()

    async def commit(self, commit: Commit) -> None:
        if self._in_block and self._block is None:
            raise RuntimeError("one commit per writing() block")
        await self._write(commit)
        if self._block is not None:
            block, self._block = self._block, None
            await block.commit()

    async def stage(self, commit: Commit) -> None:
        if self._block is None:
            raise RuntimeError("stage() needs an open writing() block")
        if self._staging:
            # The staging tables keep their rows until the commit: empty those the
            # previous stage of this block filled, or its rows would be upserted again.
            for table in sorted(self._staged):
                await self.conn.execute(f"DELETE FROM {table}")
        self._staging = True
        await self._write(commit)

    async def finish(self, *, let_others_run: bool = False) -> None:
        if self._block is None:
            raise RuntimeError("finish() needs an open writing() block")
        head, self._notify_head = self._notify_head, None
        if head is not None:  # delivered to listeners at the commit, like the others
            await self.conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, str(head))
        block, self._block = self._block, None
        await block.commit()

    def bulk_loading(self) -> AbstractAsyncContextManager[None]:
        if self._block is None:
            raise RuntimeError("bulk_loading() needs an open writing() block")
        return indexes_set_aside(self.conn, "event_log")

    async def _write(self, commit: Commit) -> None:
        conn = self.conn
        self._staged.clear()
        async with conn.transaction():
            if commit.expected:
                # Rows must exist before FOR UPDATE can lock them: two workers that both
                # believe they own a fresh partition then serialise here.
                await conn.executemany(
                    f"INSERT INTO positions ({', '.join(POSITION_COLUMNS)}) "
                    "VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                    [(commit.consumer, s, p) for s, p in sorted(commit.expected)])
                rows = await conn.fetch(
                    "SELECT source, partition, next_position FROM positions "
                    "WHERE consumer = $1 AND source = ANY($2::text[]) FOR UPDATE",
                    commit.consumer, sorted({s for s, _ in commit.expected}))
                stored = {(r[0], r[1]): r[2] for r in rows}
                for key, expected in commit.expected.items():
                    if stored.get(key, 0) != expected:
                        raise StalePosition(f"{key[0]}[{key[1]}] is at {stored.get(key)}, "
                                            f"expected {expected}")
            if commit.events:
                await conn.copy_records_to_table(
                    "event_log", records=commit.events,
                    columns=("event_id", "incident_id", "type", "occurred_us", "raw",
                             "recorded_us"))
            if commit.recorded_updates:
                await conn.execute(
                    "UPDATE event_log AS e SET recorded_us = LEAST(e.recorded_us, u.at) "
                    "FROM unnest($1::text[], $2::bigint[]) AS u(event_id, at) "
                    "WHERE e.event_id = u.event_id",
                    list(commit.recorded_updates), list(commit.recorded_updates.values()))
            if commit.incidents:
                await self._upsert(_INCIDENT_UPSERT,
                                   [incident_row(i, self.calendar) for i in commit.incidents],
                                   new=commit.new_rows)
            if commit.calls:
                await conn.copy_records_to_table(
                    "calls", records=[(c.event_id, c.incident_id, c.at, c.grid, c.area)
                                      for c in commit.calls],
                    columns=("event_id", "incident_id", "occurred_us", "grid", "area"))
            if commit.shifts:
                await conn.copy_records_to_table(
                    "shifts", records=[shift_row(f) for f in commit.shifts],
                    columns=SHIFT_COLUMNS)
            if commit.deltas:
                await self._upsert(_TOTALS_UPSERT, [(*b, *v) for b, v in commit.deltas.items()],
                                   new=commit.new_rows)
            if commit.rejected or commit.duplicates or commit.conflicts:
                await conn.executemany(
                    "INSERT INTO counters AS c (name, value) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO UPDATE SET value = c.value + excluded.value",
                    [("rejected_events", commit.rejected),
                     ("duplicate_events", commit.duplicates),
                     ("conflicting_events", commit.conflicts)])
            await conn.executemany(
                f"INSERT INTO positions ({', '.join(POSITION_COLUMNS)}) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT "
                "(consumer, source, partition) DO UPDATE "
                "SET next_position = excluded.next_position",
                [(commit.consumer, s, p, v) for (s, p), v in sorted(commit.positions.items())])
            if commit.fingerprints:
                await conn.executemany(
                    "INSERT INTO fingerprints (consumer, source, partition, fingerprint) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT "
                    "(consumer, source, partition) DO UPDATE "
                    "SET fingerprint = excluded.fingerprint",
                    [(commit.consumer, s, p, v)
                     for (s, p), v in sorted(commit.fingerprints.items())])
            if commit.outbox:
                await conn.executemany(
                    "INSERT INTO outbox (event_id, kafka_key, raw) VALUES ($1, $2, $3)",
                    commit.outbox)
            if commit.answer is not None:
                await conn.execute("INSERT INTO command_answers (idempotency_key, status, body) "
                                   "VALUES ($1, $2, $3)", *commit.answer)
            alerts = await self._commit_sla(commit, commit.sla) if commit.sla else []
            if self.change_log:
                # Last, so the change_head row lock is held only for the end of the batch.
                await self._append_changes(commit, alerts)

    async def _upsert(self, staged: _Staged, rows: Sequence[Sequence[Any]], *,
                      new: bool = False) -> None:
        """Inside a transaction: upsert ``rows`` (in ``staged.columns`` order); ``new``
        rows (none of their keys stored: ``Commit.new_rows``) are copied straight in."""
        if new:
            await self.conn.copy_records_to_table(staged.table, records=rows,
                                                  columns=staged.columns)
            return
        if staged.stage in self._staged:
            raise RuntimeError(f"{staged.stage} used twice in one transaction")
        self._staged.add(staged.stage)
        await self.conn.copy_records_to_table(staged.stage, records=rows,
                                              columns=staged.columns)
        await self.conn.execute(staged.upsert)

    async def _commit_sla(self, commit: Commit, plan: SlaPlan) -> list[NewChange]:
        """Inside the commit's transaction: evaluate, write rows and outbox entries."""
        conn = self.conn
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SLA_LOCK)
        stored = await conn.fetchval("SELECT event_us FROM sla_clock WHERE id = 1")
        as_of, clock = plan_instant(plan, stored)
        if clock is not None and clock != stored:
            await conn.execute("INSERT INTO sla_clock VALUES (1, $1) ON CONFLICT (id) "
                               "DO UPDATE SET event_us = excluded.event_us", clock)
        if as_of is None:
            return []
        incidents = {i.incident_id: i for i in plan.incidents}
        if plan.due:
            due = await conn.fetch(
                "SELECT DISTINCT incident_id FROM sla_state WHERE due_us <= $1", as_of)
            missing = [r[0] for r in due if r[0] not in incidents]
            if missing:
                rows = await conn.fetch(
                    f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents "
                    "WHERE incident_id = ANY($1::text[])", missing)
                incidents.update({r[0]: incident_from_row(tuple(r)) for r in rows})
        if not incidents:
            commit.sla_update = evaluate((), {}, as_of, plan.limits)
            return []
        prior = {(r[0], r[1]): SlaRow(*r) for r in await conn.fetch(
            f"SELECT {_SLA_COLUMNS} FROM sla_state WHERE incident_id = ANY($1::text[])",
            list(incidents))}
        update = evaluate(incidents.values(), prior, as_of, plan.limits, plan.horizon_us)
        if update.dropped:
            await conn.execute(
                "DELETE FROM sla_state WHERE (incident_id, rule) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[]))",
                [k[0] for k in update.dropped], [k[1] for k in update.dropped])
        if update.rows:
            await self._upsert(_SLA_UPSERT, update.rows)
        if update.transitions:
            now = time.time_ns() // 1000
            inserted = await conn.fetch(
                "INSERT INTO sla_outbox (alert_id, incident_id, payload, sent_us, withheld) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[], "
                "$5::boolean[]) ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id",
                [t.alert_id for t in update.transitions],
                [t.incident_id for t in update.transitions],
                [t.payload for t in update.transitions],
                [now if t.withheld else None for t in update.transitions],
                [t.withheld for t in update.transitions])
            new = {r[0] for r in inserted}
            update.transitions = [t for t in update.transitions if t.alert_id in new]
        commit.sla_update = update
        return [NewChange(*c) for c in outbox_changes(update.transitions)]

    async def sla_rows(self, states: Collection[str] | None = None) -> list[SlaRow]:
        if states is None:
            rows = await self.conn.fetch(
                f"SELECT {_SLA_COLUMNS} FROM sla_state ORDER BY incident_id, rule")
        else:
            rows = await self.conn.fetch(
                f"SELECT {_SLA_COLUMNS} FROM sla_state WHERE state = ANY($1::text[]) "
                "ORDER BY incident_id, rule", sorted(states))
        return [SlaRow(*r) for r in rows]

    async def sla_event_clock(self) -> int | None:
        value = await self.conn.fetchval("SELECT event_us FROM sla_clock WHERE id = 1")
        return None if value is None else int(value)

    async def unsent_alerts(self, limit: int = 1000) -> list[AlertEntry]:
        rows = await self.conn.fetch(
            f"SELECT {_OUTBOX_COLUMNS} FROM sla_outbox WHERE sent_us IS NULL ORDER BY seq "
            "LIMIT $1", limit)
        return [AlertEntry(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    async def mark_alerts_sent(self, alert_ids: Collection[str], sent_us: int,
                               positions: dict[PositionKey, int]) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                "UPDATE sla_outbox SET sent_us = $1 WHERE alert_id = ANY($2::text[]) "
                "AND sent_us IS NULL", sent_us, list(alert_ids))
            await self.conn.executemany(
                "INSERT INTO positions AS p VALUES ($1, $2, $3, $4) ON CONFLICT "
                "(consumer, source, partition) DO UPDATE "
                "SET next_position = greatest(p.next_position, excluded.next_position)",
                [(ALERT_RELAY, s, p, v) for (s, p), v in sorted(positions.items())])

    async def alert_outbox(self) -> list[AlertEntry]:
        rows = await self.conn.fetch(f"SELECT {_OUTBOX_COLUMNS} FROM sla_outbox ORDER BY seq")
        return [AlertEntry(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    async def prune_alert_outbox(self, sent_before_us: int) -> int:
        status = await self.conn.execute("DELETE FROM sla_outbox WHERE sent_us < $1",
                                          sent_before_us)
        return int(status.split()[-1])

    async def claim_alert_relay(self) -> bool:
        return bool(await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK))

    async def _append_changes(self, commit: Commit, extra: Sequence[NewChange] = ()) -> None:
        conn = self.conn
        days = service_days(commit.deltas, commit.shifts, self.calendar)
        rows = await conn.fetch(
            f"SELECT duty_date, {', '.join(FIELDS)} FROM totals WHERE dimension = '' "
            "AND member = '' AND duty_date = ANY($1::text[])", days) if days else []
        changes = [*incident_changes(commit.incidents),
                   *period_changes({r[0]: list(r[1:]) for r in rows}), *commit.changes, *extra]
        if not changes:
            return
        head = await conn.fetchval(
            "UPDATE change_head SET seq = seq + $1 WHERE id = 1 RETURNING seq", len(changes))
        first = head - len(changes) + 1
        now = time.time_ns() // 1000
        await conn.copy_records_to_table(
            "changes", records=[(first + i, c.kind, c.key, c.data, now)
                                for i, c in enumerate(changes)],
            columns=("seq", "kind", "key", "data", "committed_us"))
        if self._staging:
            self._notify_head = head  # one notification when the block commits
        else:
            await conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, str(head))
        if prune_due(now, self._pruned_at, self.change_retention_days):
            await self._prune(now)

    async def _prune(self, now_us: int) -> int:
        cutoff = retention_cutoff(now_us, self.change_retention_days)
        # Sequence order is commit order, so the old rows are a prefix: the sub-query
        # walks the primary key only as far as the first row to keep.
        status = await self.conn.execute(
            "DELETE FROM changes WHERE seq < coalesce((SELECT seq FROM changes "
            "WHERE committed_us >= $1 ORDER BY seq LIMIT 1), "
            "(SELECT max(seq) + 1 FROM changes))", cutoff)
        self._pruned_at = now_us
        return int(status.split()[-1])

    async def prune_changes(self, now_us: int) -> int:
        async with self.conn.transaction():
            return await self._prune(now_us)

    async def changes_after(self, seq: int, limit: int = 1000) -> list[Change]:
        rows = await self.conn.fetch(
            "SELECT seq, kind, key, data, committed_us FROM changes WHERE seq > $1 "
            "ORDER BY seq LIMIT $2", seq, limit)
        return [Change(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def change_window(self) -> ChangeWindow:
        row = await self.conn.fetchrow(
            "SELECT (SELECT min(seq) FROM changes), (SELECT seq FROM change_head WHERE id = 1)")
        head = int(row[1])
        return ChangeWindow(head if row[0] is None else int(row[0]) - 1, head)

    async def listen_changes(self, wake: Callable[[], None]) -> bool:
        await self.conn.add_listener(CHANGES_CHANNEL, lambda *_: wake())
        return True

    async def find_incidents(self, query: IncidentQuery) -> tuple[list[Incident], int]:
        clauses = [_OPEN_INCIDENT] if query.state == "open" else ["true"]
        params: list[Any] = []
        for column in ("grid", "area"):
            value = getattr(query, column)
            if value is not None:
                params.append(value)
                clauses.append(f"{column} = ${len(params)}")
        where = " AND ".join(clauses)
        total = await self.conn.fetchval(f"SELECT count(*) FROM incidents WHERE {where}", *params)
        rows = await self.conn.fetch(
            f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents WHERE {where} "
            f"ORDER BY t0 NULLS LAST, incident_id LIMIT ${len(params) + 1} "
            f"OFFSET ${len(params) + 2}", *params, query.limit, query.offset)
        return [incident_from_row(tuple(r)) for r in rows], int(total)

    async def totals(self) -> dict[Bucket, Totals]:
        rows = await self.conn.fetch(f"SELECT {', '.join(TOTALS_COLUMNS)} FROM totals")
        return {(r[0], r[1], r[2]): list(r[3:]) for r in rows if any(r[3:])}

    async def counters(self) -> dict[str, int]:
        stored = dict(await self.conn.fetch("SELECT name, value FROM counters"))
        return {name: int(stored.get(name, 0)) for name in COUNTERS}

    async def all_incidents(self) -> AsyncIterator[Incident]:
        async with self.conn.transaction():
            async for row in self.conn.cursor(
                    f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents", prefetch=5000):
                yield incident_from_row(tuple(row))

    async def all_calls(self) -> AsyncIterator[Fact]:
        async with self.conn.transaction():
            async for r in self.conn.cursor(
                    "SELECT event_id, incident_id, occurred_us, grid, area FROM calls",
                    prefetch=5000):
                yield Fact(r[0], "call.received", r[1], r[2], r[3], r[4])

    async def shifts(self) -> list[Fact]:
        rows = await self.conn.fetch(f"SELECT {', '.join(SHIFT_COLUMNS)} FROM shifts")
        return [shift_from_row(tuple(r)) for r in rows]

    async def handover_incidents(self) -> list[Incident]:
        rows = await self.conn.fetch(f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents "
                                     "WHERE handover_end IS NOT NULL")
        return [incident_from_row(tuple(r)) for r in rows]

    async def period_context(self, days: Collection[str]) -> PeriodContext:
        where = period_rows(days, self.calendar)
        if where is None:
            return PeriodContext({}, [], [])
        conn = self.conn
        return period_context(
            where, self.calendar,
            await conn.fetch(f"SELECT member, duty_date, {', '.join(FIELDS)} FROM totals "
                             "WHERE dimension = $1 AND duty_date = ANY($2::text[])",
                             AGENT, where.days),
            await conn.fetch(f"SELECT {', '.join(SHIFT_COLUMNS)} FROM shifts "
                             "WHERE occurred_us >= $1 AND occurred_us < $2",
                             where.start, where.end),
            await conn.fetch(f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents "
                             "WHERE handover_end = ANY($1::bigint[])", where.ends))

    async def incident_events(self, incident_id: str) -> list[LoggedEvent]:
        rows = await self.conn.fetch(
            "SELECT event_id, incident_id, type, occurred_us, raw, recorded_us FROM event_log "
            "WHERE incident_id = $1 ORDER BY occurred_us, event_id", incident_id)
        return [LoggedEvent(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    async def history_events(self) -> AsyncIterator[LoggedEvent]:
        async with self.conn.transaction():
            async for r in self.conn.cursor(
                    "SELECT event_id, incident_id, type, occurred_us, raw, recorded_us "
                    "FROM event_log ORDER BY seq", prefetch=10_000):
                yield LoggedEvent(r[0], r[1], r[2], r[3], bytes(r[4]), r[5])

    async def event_count(self) -> int:
        return int(await self.conn.fetchval("SELECT count(*) FROM event_log"))

    async def events_of_types(self, types: Collection[str]) -> list[bytes]:
        rows = await self.conn.fetch("SELECT raw FROM event_log WHERE type = ANY($1::text[])",
                                     sorted(types))
        return [bytes(row[0]) for row in rows]

    async def command_answer(self, idempotency_key: str) -> CommandAnswer | None:
        row = await self.conn.fetchrow(
            "SELECT idempotency_key, status, body FROM command_answers "
            "WHERE idempotency_key = $1", idempotency_key)
        return None if row is None else CommandAnswer(row[0], int(row[1]), bytes(row[2]))

    async def unpublished(self, limit: int = 500) -> list[tuple[int, OutboxEntry]]:
        rows = await self.conn.fetch(
            "SELECT seq, event_id, kafka_key, raw FROM outbox WHERE published_us IS NULL "
            "ORDER BY seq LIMIT $1", limit)
        return [(int(r[0]), OutboxEntry(r[1], r[2], bytes(r[3]))) for r in rows]

    async def mark_published(self, seqs: Sequence[int],
                             positions: Mapping[PositionKey, int] | None = None) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                "UPDATE outbox SET published_us = $1 WHERE seq = ANY($2::bigint[]) "
                "AND published_us IS NULL", time.time_ns() // 1000, list(seqs))
            await self.conn.executemany(
                "INSERT INTO positions AS p VALUES ($1, $2, $3, $4) ON CONFLICT "
                "(consumer, source, partition) DO UPDATE "
                "SET next_position = greatest(p.next_position, excluded.next_position)",
                [(EVENT_RELAY, s, p, v) for (s, p), v in sorted((positions or {}).items())])

    async def claim_event_relay(self) -> bool:
        return bool(await self.conn.fetchval("SELECT pg_try_advisory_lock($1)",
                                             _EVENT_RELAY_LOCK))
