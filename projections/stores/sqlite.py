"""SQLite store: the embedded engine's event log and read models in one file.

Every ``commit`` is one ``BEGIN IMMEDIATE`` transaction in WAL mode with
``synchronous=FULL``, so a kill at any point leaves either the whole batch (rows
and positions) or none of it. ``writing()`` opens that transaction before the
reads of a read-modify-write, so SQLite's write lock serialises whole cycles
between processes. Creating and migrating a store happen under the same lock,
after re-reading which migrations are applied, so processes may create one at once.

Each applied migration is a row of ``schema_migrations``, and every shipped
migration without a row is applied, whatever its number: a migration numbered
below one already applied is not skipped. A store made before that table
existed only has ``PRAGMA user_version``; every version up to it counts as
applied, and the table is written at the next migration. ``user_version`` is
still kept at the highest applied version for tools that read it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

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
    StoreError,
)
from projections.sla import SlaLimits
from projections.sla_live import SlaPlan, SlaRow, evaluate, outbox_changes, plan_instant
from projections.stores.migrate import migrations
from projections.stores.rows import (
    CALL_COLUMNS,
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

_INCIDENTS = ", ".join(INCIDENT_COLUMNS)
_CALLS = ", ".join(CALL_COLUMNS)
_SHIFTS = ", ".join(SHIFT_COLUMNS)
_INCIDENT_UPSERT = (
    f"INSERT INTO incidents ({', '.join(INCIDENT_WRITE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(INCIDENT_WRITE_COLUMNS))}) "
    "ON CONFLICT (incident_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in INCIDENT_WRITE_COLUMNS[1:])
)
_TOTALS_UPSERT = (
    f"INSERT INTO totals ({', '.join(TOTALS_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(TOTALS_COLUMNS))}) "
    f"ON CONFLICT ({', '.join(TOTALS_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in FIELDS)
)

BUSY_TIMEOUT_MS = 30_000
"""How long a statement waits for a lock held by another process."""
WRITE_LOCK_PATIENCE_S = 600.0
"""How long ``writing()`` keeps trying for the write lock before giving up."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds a lock ``exc`` met: ``SQLITE_BUSY`` or one of its
    extended codes (``SQLITE_BUSY_RECOVERY``: another process rebuilding the WAL
    index after a killed writer)."""
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def _alert_entry(row: Sequence[Any]) -> AlertEntry:
    seq, alert_id, incident_id, payload, sent_us, withheld = row
    return AlertEntry(seq, alert_id, incident_id, payload, sent_us, bool(withheld))


def statements(script: str) -> list[str]:
    """The complete SQL statements of ``script``, in order (SQLite's own tokenizer
    decides where one ends, so semicolons in strings, comments and trigger bodies
    are handled)."""
    found: list[str] = []
    start = 0
    for i, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start:i + 1]):
            found.append(script[start:i + 1])
            start = i + 1
    if script[start:].strip() and sqlite3.complete_statement(script[start:] + ";"):
        found.append(script[start:])
    return found


_SLA_COLUMNS = ", ".join(SlaRow._fields)
_SLA_UPSERT = (f"INSERT OR REPLACE INTO sla_state ({_SLA_COLUMNS}) "
               f"VALUES ({', '.join('?' * len(SlaRow._fields))})")
_OUTBOX_COLUMNS = "seq, alert_id, incident_id, payload, sent_us, withheld"

_OPEN_INCIDENT = "rejected_at IS NULL AND merged_at IS NULL AND t6 IS NULL AND closed_at IS NULL"


class SqliteStore(ProjectionStore):
    def __init__(self, path: str | Path, calendar: DutyCalendar | None = None, *,
                 sla_limits: SlaLimits | None = None,
                 change_log: bool = True,
                 change_retention_days: float = DEFAULT_CHANGE_RETENTION_DAYS) -> None:
        self.path = Path(path)
        self.calendar = calendar or DutyCalendar()
        self.sla_limits = sla_limits or SlaLimits()
        self.change_log = change_log
        self.change_retention_days = change_retention_days
        self._db: sqlite3.Connection | None = None
        self._writing = False
        self._pruned_at = 0
        self._relay_lock: int | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        if self._db is not None:
            return
        if self.path.parent and not self.path.parent.exists():
            raise FileNotFoundError(f"folder {self.path.parent} does not exist")
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        self._db = db
        try:
            # The busy timeout first: the other pragmas may wait for another process.
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._use_wal()
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache: big batches stay hot
            self._migrate()
        except sqlite3.Error as exc:
            self._db = None
            db.close()
            raise self._error(exc) from None

    def _use_wal(self) -> None:
        """Put the file in WAL mode, waiting for other processes that have it open.

        While another connection writes a file that is still in rollback-journal
        mode (another process creating the same new store), ``PRAGMA
        journal_mode=WAL`` fails at once with ``SQLITE_BUSY``: SQLite does not call
        the busy handler there. So this retries for up to the busy timeout, looking
        again each time whether the other process has switched the file already.
        """
        db = self.db
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.005)

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """One line for people: which store, and what is wrong with it."""
        message = str(exc)
        if self.path.is_dir():
            message = "is a directory, not a store file"
        elif "not a database" in message:
            message = "is not a dispatch store (not an SQLite database)"
        elif "readonly" in message or "read-only" in message:
            message = "is read-only (the store's file and its folder must be writable)"
        elif "unable to open" in message:
            message = "cannot be opened (check the path and the folder's permissions)"
        return StoreError(f"store {self.path}: {message}")

    def _applied(self) -> set[int] | None:
        """Versions recorded in ``schema_migrations``; None if the store predates it."""
        db = self.db
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'schema_migrations'").fetchone() is None:
            return None
        return {row[0] for row in db.execute("SELECT version FROM schema_migrations")}

    def _pending(self) -> tuple[list[tuple[int, str, str]], bool]:
        """Migrations not yet applied, and whether the duty calendar is missing."""
        current = self.db.execute("PRAGMA user_version").fetchone()[0]
        applied = self._applied()
        if applied is None:
            applied = {version for version in range(1, current + 1)}
        pending = [m for m in migrations("sqlite") if m[0] not in applied]
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                           "AND name = 'meta'").fetchone() is None:
            return pending, True
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        stored = calendar_from_meta(meta)
        limits = limits_from_meta(meta)
        if stored is not None:
            self.calendar = stored
        if limits is not None:
            self.sla_limits = limits
        return pending, stored is None or limits is None

    def _record_applied(self) -> None:
        """Create ``schema_migrations`` if missing, filling it from ``user_version``
        (inside the caller's write transaction)."""
        db = self.db
        if self._applied() is not None:
            return
        current = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                   "name TEXT NOT NULL, applied_at TEXT NOT NULL "
                   "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))")
        db.executemany("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                       [(version, name) for version, name, _sql in migrations("sqlite")
                        if version <= current])

    def _migrate(self) -> None:
        pending, unstamped = self._pending()
        if not pending and not unstamped:
            return  # the usual case: no write, so read-only use never takes the write lock
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock: look again.
            pending, _ = self._pending()
            if pending:
                self._record_applied()
            for version, name, sql in pending:
                for statement in statements(sql):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                           (version, name))
            if pending:
                highest = db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
                db.execute(f"PRAGMA user_version = {int(highest)}")
            meta = dict(db.execute("SELECT key, value FROM meta"))
            stored = calendar_from_meta(meta)
            if stored is None:
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                               calendar_meta(self.calendar))
            else:
                self.calendar = stored
            limits = limits_from_meta(meta)
            if limits is None:
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                               limits_meta(self.sla_limits))
            else:
                self.sla_limits = limits
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def close(self) -> None:
        if self._relay_lock is not None:
            os.close(self._relay_lock)
            self._relay_lock = None
        if self._db is not None:
            self._db.close()
            self._db = None

    async def positions(self, consumer: str) -> dict[PositionKey, int]:
        rows = self.db.execute(
            "SELECT source, partition, next_position FROM positions WHERE consumer = ?",
            (consumer,))
        return {(source, partition): position for source, partition, position in rows}

    async def fingerprints(self, consumer: str) -> dict[PositionKey, str]:
        rows = self.db.execute(
            "SELECT source, partition, fingerprint FROM fingerprints WHERE consumer = ?",
            (consumer,))
        return {(source, partition): value for source, partition, value in rows}

    async def known_events(self, event_ids: Sequence[str]) -> dict[str, bytes]:
        rows = self.db.execute(
            "SELECT event_id, raw FROM event_log "
            "WHERE event_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(event_ids)),))
        return {row[0]: bytes(row[1]) for row in rows}

    async def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        # One statement per batch: the ids travel as one JSON array parameter.
        rows = self.db.execute(
            "SELECT event_id FROM event_log WHERE event_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(event_ids)),))
        return {row[0] for row in rows}

    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        rows = self.db.execute(
            f"SELECT {_INCIDENTS} FROM incidents "
            "WHERE incident_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(list(incident_ids)),))
        return {row[0]: incident_from_row(row) for row in rows}

    @asynccontextmanager
    async def writing(self, *, partitioned: bool = False) -> AsyncIterator[None]:
        if self._writing:
            raise RuntimeError("writing() blocks do not nest")
        db = self.db
        await self._begin_immediate()
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
            if db.in_transaction:
                db.execute("ROLLBACK")

    async def _begin_immediate(self) -> None:
        """Take the write lock, polling so that this task (and Ctrl-C) stays responsive
        and a process that commits batch after batch cannot starve this one."""
        db = self.db
        db.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + WRITE_LOCK_PATIENCE_S
        try:
            while True:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise self._error(exc) from None
                if time.monotonic() > deadline:
                    raise StoreError(f"store {self.path}: another process held the write "
                                     f"lock for over {WRITE_LOCK_PATIENCE_S:.0f}s")
                await asyncio.sleep(0.001)
        finally:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    async def commit(self, commit: Commit) -> None:
        db = self.db
        if self._writing:
            if not db.in_transaction:
                raise RuntimeError("one commit per writing() block")
        else:
            await self._begin_immediate()
        self._write(commit)
        self._commit_now()

    async def stage(self, commit: Commit) -> None:
        if not (self._writing and self.db.in_transaction):
            raise RuntimeError("stage() needs an open writing() block")
        self._write(commit)

    async def finish(self, *, let_others_run: bool = False) -> None:
        if not (self._writing and self.db.in_transaction):
            raise RuntimeError("finish() needs an open writing() block")
        if not let_others_run:
            self._commit_now()
            return
        # The COMMIT (its fsync) runs in a thread: the event loop serves other requests
        # meanwhile, and commands arriving then are committed together in the next block.
        committing = asyncio.ensure_future(asyncio.to_thread(self._commit_now))
        try:
            await asyncio.shield(committing)
        except asyncio.CancelledError:
            # Nothing may touch the connection (a rollback) while the COMMIT runs.
            await asyncio.wait([committing])
            raise

    def _commit_now(self) -> None:
        db = self.db
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error(exc) from None

    def _write(self, commit: Commit) -> None:
        """Write ``commit`` in the open transaction; on error, roll it all back."""
        db = self.db
        try:
            for (source, partition), expected in commit.expected.items():
                row = db.execute(
                    "SELECT next_position FROM positions "
                    "WHERE consumer = ? AND source = ? AND partition = ?",
                    (commit.consumer, source, partition)).fetchone()
                if (row[0] if row else 0) != expected:
                    raise StalePosition(f"{source}[{partition}] moved to {row}")
            db.executemany(
                "INSERT INTO event_log (event_id, incident_id, type, occurred_us, raw, "
                "recorded_us) VALUES (?, ?, ?, ?, ?, ?)", commit.events)
            if commit.recorded_updates:
                db.executemany(
                    "UPDATE event_log SET recorded_us = min(coalesce(recorded_us, ?2), ?2) "
                    "WHERE event_id = ?1", list(commit.recorded_updates.items()))
            calendar = self.calendar
            db.executemany(_INCIDENT_UPSERT, [incident_row(i, calendar) for i in commit.incidents])
            db.executemany(
                f"INSERT INTO calls ({_CALLS}) VALUES (?, ?, ?, ?, ?)",
                [(c.event_id, c.incident_id, c.at, c.grid, c.area) for c in commit.calls])
            if commit.shifts:
                db.executemany(
                    f"INSERT INTO shifts ({_SHIFTS}) VALUES (?, ?, ?, ?, ?)",
                    map(shift_row, commit.shifts))
            db.executemany(_TOTALS_UPSERT, [(*b, *v) for b, v in commit.deltas.items()])
            db.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                [("rejected_events", commit.rejected), ("duplicate_events", commit.duplicates),
                 ("conflicting_events", commit.conflicts)])
            db.executemany(
                f"INSERT INTO positions ({', '.join(POSITION_COLUMNS)}) VALUES (?, ?, ?, ?) "
                "ON CONFLICT "
                "(consumer, source, partition) DO UPDATE "
                "SET next_position = excluded.next_position",
                [(commit.consumer, s, p, v) for (s, p), v in commit.positions.items()])
            if commit.fingerprints:
                db.executemany(
                    "INSERT INTO fingerprints (consumer, source, partition, fingerprint) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT "
                    "(consumer, source, partition) DO UPDATE "
                    "SET fingerprint = excluded.fingerprint",
                    [(commit.consumer, s, p, v) for (s, p), v in commit.fingerprints.items()])
            if commit.outbox:
                db.executemany("INSERT INTO outbox (event_id, kafka_key, raw) VALUES (?, ?, ?)",
                               commit.outbox)
            if commit.answer is not None:
                db.execute("INSERT INTO command_answers (idempotency_key, status, body) "
                           "VALUES (?, ?, ?)", commit.answer)
            alerts = self._commit_sla(commit, commit.sla) if commit.sla is not None else []
            if self.change_log:
                self._append_changes(commit, alerts)
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _commit_sla(self, commit: Commit, plan: SlaPlan) -> list[NewChange]:
        """Inside the commit's transaction: evaluate, write rows and outbox entries."""
        db = self.db
        row = db.execute("SELECT event_us FROM sla_clock WHERE id = 1").fetchone()
        as_of, clock = plan_instant(plan, row[0] if row else None)
        if clock is not None:
            db.execute("INSERT OR REPLACE INTO sla_clock VALUES (1, ?)", (clock,))
        if as_of is None:
            return []
        incidents = {i.incident_id: i for i in plan.incidents}
        if plan.due:
            due = [r[0] for r in db.execute(
                "SELECT DISTINCT incident_id FROM sla_state WHERE due_us <= ?", (as_of,))]
            missing = [i for i in due if i not in incidents]
            if missing:
                incidents.update(self._load(missing))
        ids = orjson.dumps(list(incidents))
        prior = {(r[0], r[1]): SlaRow(*r) for r in db.execute(
            f"SELECT {_SLA_COLUMNS} FROM sla_state "
            "WHERE incident_id IN (SELECT value FROM json_each(?))", (ids,))}
        update = evaluate(incidents.values(), prior, as_of, plan.limits, plan.horizon_us)
        db.executemany("DELETE FROM sla_state WHERE incident_id = ? AND rule = ?", update.dropped)
        db.executemany(_SLA_UPSERT, update.rows)
        now = time.time_ns() // 1000
        written = [t for t in update.transitions if db.execute(
            "INSERT OR IGNORE INTO sla_outbox (alert_id, incident_id, payload, sent_us, withheld) "
            "VALUES (?, ?, ?, ?, ?)",
            (t.alert_id, t.incident_id, t.payload, now if t.withheld else None,
             int(t.withheld))).rowcount]
        update.transitions = written
        commit.sla_update = update
        return [NewChange(*c) for c in outbox_changes(written)]

    def _load(self, incident_ids: list[str]) -> dict[str, Incident]:
        rows = self.db.execute(
            f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents "
            "WHERE incident_id IN (SELECT value FROM json_each(?))", (orjson.dumps(incident_ids),))
        return {row[0]: incident_from_row(row) for row in rows}

    async def sla_rows(self, states: Collection[str] | None = None) -> list[SlaRow]:
        if states is None:
            return [SlaRow(*r) for r in self.db.execute(
                f"SELECT {_SLA_COLUMNS} FROM sla_state ORDER BY incident_id, rule")]
        wanted = sorted(states)
        return [SlaRow(*r) for r in self.db.execute(
            f"SELECT {_SLA_COLUMNS} FROM sla_state WHERE state IN "
            f"({', '.join('?' * len(wanted))}) ORDER BY incident_id, rule", wanted)]

    async def sla_event_clock(self) -> int | None:
        row = self.db.execute("SELECT event_us FROM sla_clock WHERE id = 1").fetchone()
        return None if row is None else int(row[0])

    async def unsent_alerts(self, limit: int = 1000) -> list[AlertEntry]:
        return [_alert_entry(r) for r in self.db.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM sla_outbox WHERE sent_us IS NULL ORDER BY seq "
            "LIMIT ?", (limit,))]

    async def mark_alerts_sent(self, alert_ids: Collection[str], sent_us: int,
                               positions: dict[PositionKey, int]) -> None:
        db = self.db
        await self._begin_immediate()
        try:
            db.executemany("UPDATE sla_outbox SET sent_us = ? WHERE alert_id = ? "
                           "AND sent_us IS NULL", [(sent_us, a) for a in alert_ids])
            db.executemany(
                "INSERT INTO positions (consumer, source, partition, next_position) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (consumer, source, partition) DO UPDATE "
                "SET next_position = max(next_position, excluded.next_position)",
                [(ALERT_RELAY, s, p, v) for (s, p), v in positions.items()])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def alert_outbox(self) -> list[AlertEntry]:
        return [_alert_entry(r) for r in self.db.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM sla_outbox ORDER BY seq")]

    async def prune_alert_outbox(self, sent_before_us: int) -> int:
        db = self.db
        await self._begin_immediate()
        try:
            deleted = db.execute("DELETE FROM sla_outbox WHERE sent_us < ?",
                                 (sent_before_us,)).rowcount
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return int(deleted)

    def _append_changes(self, commit: Commit, extra: Sequence[NewChange] = ()) -> None:
        """Inside the commit's transaction: its incident, period and extra changes."""
        db = self.db
        days = service_days(commit.deltas, commit.shifts, self.calendar)
        rows = db.execute(
            f"SELECT duty_date, {', '.join(FIELDS)} FROM totals WHERE dimension = '' "
            "AND member = '' AND duty_date IN (SELECT value FROM json_each(?))",
            (orjson.dumps(days),)) if days else []
        changes = [*incident_changes(commit.incidents),
                   *period_changes({r[0]: list(r[1:]) for r in rows}), *commit.changes,
                   *extra]
        now = time.time_ns() // 1000
        db.executemany("INSERT INTO changes (kind, key, data, committed_us) VALUES (?, ?, ?, ?)",
                       [(c.kind, c.key, c.data, now) for c in changes])
        if prune_due(now, self._pruned_at, self.change_retention_days):
            self._prune(now)

    def _prune(self, now_us: int) -> int:
        cutoff = retention_cutoff(now_us, self.change_retention_days)
        # Sequence order is commit order, so the old rows are a prefix: the sub-query
        # walks the primary key only as far as the first row to keep.
        deleted = self.db.execute(
            "DELETE FROM changes WHERE seq < coalesce((SELECT seq FROM changes "
            "WHERE committed_us >= ? ORDER BY seq LIMIT 1), "
            "(SELECT max(seq) + 1 FROM changes))", (cutoff,)).rowcount
        self._pruned_at = now_us
        return int(deleted)

    async def prune_changes(self, now_us: int) -> int:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._prune(now_us)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return deleted

    async def changes_after(self, seq: int, limit: int = 1000) -> list[Change]:
        rows = self.db.execute(
            "SELECT seq, kind, key, data, committed_us FROM changes WHERE seq > ? "
            "ORDER BY seq LIMIT ?", (seq, limit))
        return [Change(*row) for row in rows]

    async def change_window(self) -> ChangeWindow:
        # One read transaction, so the oldest row and the head agree.
        self.db.execute("BEGIN")
        try:
            oldest = self.db.execute("SELECT min(seq) FROM changes").fetchone()[0]
            head = self.db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        finally:
            self.db.execute("COMMIT")
        top = int(head[0]) if head else 0
        return ChangeWindow(top if oldest is None else int(oldest) - 1, top)

    async def find_incidents(self, query: IncidentQuery) -> tuple[list[Incident], int]:
        where, params = _incident_filter(query)
        total = self.db.execute(f"SELECT count(*) FROM incidents WHERE {where}",
                                params).fetchone()[0]
        rows = self.db.execute(
            f"SELECT {_INCIDENTS} FROM incidents WHERE {where} "
            "ORDER BY t0 IS NULL, t0, incident_id "
            "LIMIT ? OFFSET ?", (*params, query.limit, query.offset))
        return [incident_from_row(row) for row in rows], int(total)

    async def totals(self) -> dict[Bucket, Totals]:
        rows = self.db.execute(f"SELECT {', '.join(TOTALS_COLUMNS)} FROM totals")
        return {(r[0], r[1], r[2]): list(r[3:]) for r in rows if any(r[3:])}

    async def counters(self) -> dict[str, int]:
        stored = dict(self.db.execute("SELECT name, value FROM counters").fetchall())
        return {name: int(stored.get(name, 0)) for name in COUNTERS}

    async def all_incidents(self) -> AsyncIterator[Incident]:
        for row in self.db.execute(f"SELECT {_INCIDENTS} FROM incidents"):
            yield incident_from_row(row)

    async def all_calls(self) -> AsyncIterator[Fact]:
        for event_id, incident_id, at, grid, area in self.db.execute(
                f"SELECT {_CALLS} FROM calls"):
            yield Fact(event_id, "call.received", incident_id, at, grid, area)

    async def shifts(self) -> list[Fact]:
        rows = self.db.execute(f"SELECT {_SHIFTS} FROM shifts")
        return [shift_from_row(row) for row in rows]

    async def handover_incidents(self) -> list[Incident]:
        rows = self.db.execute(f"SELECT {_INCIDENTS} FROM incidents WHERE handover_end IS NOT NULL")
        return [incident_from_row(row) for row in rows]

    async def period_context(self, days: Collection[str]) -> PeriodContext:
        where = period_rows(days, self.calendar)
        if where is None:
            return PeriodContext({}, [], [])
        db = self.db
        return period_context(
            where, self.calendar,
            db.execute(f"SELECT member, duty_date, {', '.join(FIELDS)} FROM totals "
                       "WHERE dimension = ? AND duty_date IN (SELECT value FROM json_each(?))",
                       (AGENT, orjson.dumps(where.days))),
            db.execute(f"SELECT {_SHIFTS} FROM shifts WHERE occurred_us >= ? "
                       "AND occurred_us < ?", (where.start, where.end)),
            db.execute(f"SELECT {_INCIDENTS} FROM incidents WHERE handover_end IN "
                       "(SELECT value FROM json_each(?))", (orjson.dumps(where.ends),)))

    async def incident_events(self, incident_id: str) -> list[LoggedEvent]:
        rows: Any = self.db.execute(
            "SELECT event_id, incident_id, type, occurred_us, raw, recorded_us FROM event_log "
            "WHERE incident_id = ? ORDER BY occurred_us, event_id", (incident_id,))
        return [LoggedEvent(*row) for row in rows]

    async def history_events(self) -> AsyncIterator[LoggedEvent]:
        rows = self.db.execute(
            "SELECT event_id, incident_id, type, occurred_us, raw, recorded_us FROM event_log "
            "ORDER BY seq")
        while chunk := rows.fetchmany(10_000):
            for row in chunk:
                yield LoggedEvent(*row)

    async def event_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM event_log").fetchone()[0])

    async def events_of_types(self, types: Collection[str]) -> list[bytes]:
        rows = self.db.execute(
            "SELECT raw FROM event_log WHERE type IN (SELECT value FROM json_each(?))",
            (orjson.dumps(sorted(types)),))
        return [bytes(row[0]) for row in rows]

    async def command_answer(self, idempotency_key: str) -> CommandAnswer | None:
        row = self.db.execute(
            "SELECT idempotency_key, status, body FROM command_answers "
            "WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        return None if row is None else CommandAnswer(row[0], int(row[1]), bytes(row[2]))

    async def unpublished(self, limit: int = 500) -> list[tuple[int, OutboxEntry]]:
        rows = self.db.execute(
            "SELECT seq, event_id, kafka_key, raw FROM outbox WHERE published_us IS NULL "
            "ORDER BY seq LIMIT ?", (limit,))
        return [(int(r[0]), OutboxEntry(r[1], r[2], bytes(r[3]))) for r in rows]

    async def mark_published(self, seqs: Sequence[int],
                             positions: Mapping[PositionKey, int] | None = None) -> None:
        db = self.db
        await self._begin_immediate()
        try:
            db.execute(
                "UPDATE outbox SET published_us = ? "
                "WHERE seq IN (SELECT value FROM json_each(?)) AND published_us IS NULL",
                (time.time_ns() // 1000, orjson.dumps(list(seqs))))
            db.executemany(
                "INSERT INTO positions (consumer, source, partition, next_position) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (consumer, source, partition) DO UPDATE "
                "SET next_position = max(next_position, excluded.next_position)",
                [(EVENT_RELAY, s, p, v) for (s, p), v in (positions or {}).items()])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def claim_event_relay(self) -> bool:
        # SQLite has no session locks: an exclusive lock on a file beside the store,
        # which the operating system releases when this connection closes or the
        # process dies.
        if self._relay_lock is not None:
            return True
        lock = os.open(f"{self.path}.relay-lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            return False
        self._relay_lock = lock
        return True


def _incident_filter(query: IncidentQuery) -> tuple[str, tuple[Any, ...]]:
    clauses = [_OPEN_INCIDENT] if query.state == "open" else ["1 = 1"]
    params: list[Any] = []
    for column in ("grid", "area"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), tuple(params)
