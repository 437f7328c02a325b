"""The read-model store port: what every backend (memory, SQLite, PostgreSQL) must do.

Contract of ``ProjectionStore`` (checked by ``tests/contract``):
- ``commit(c)`` is atomic: the new events (the dedup record, keyed by event id),
  the incident rows, the call rows, the shift rows, the totals deltas, the
  counters and the consumer's next positions are all written, or none is;
- ``commit`` refuses (``StalePosition``, nothing written) when, for a position
  key in ``c.expected``, the stored position (0 if none was stored) differs
  from the expected one: another consumer has moved it (a rebalance or a
  zombie worker);
- ``known_event_ids`` returns exactly those ids already committed;
- ``load_incidents`` returns the committed state of the ids that exist;
- ``totals`` returns the running sum of every committed delta, per bucket,
  maintained for ``calendar`` and ``sla_limits`` (both fixed when the store is
  first created);
- ``shifts`` returns every committed shift fact; ``handover_incidents`` the
  outage incidents open at the end of their duty period under ``calendar``
  (t0 in the period, t6 missing or not before its end);
- reads reflect every commit that returned before them;
- with ``c.sla`` (an ``SlaPlan``), the same transaction evaluates the SLA rules
  of the plan's incidents (and, for ``due``, of every stored rule due by the
  plan's instant) against the stored SLA rows, writes the new rows and appends
  each transition to the alert outbox, at most once per ``alert_id``
  (``projections.sla_live``); ``c.sla_update`` is then what it wrote;
- ``writing()`` serialises read-modify-write cycles between writers, also
  between processes: inside ``async with store.writing():`` the reads
  (``positions``, ``known_event_ids``, ``known_events``, ``load_incidents``) see
  every commit of every other writer, and no other writer commits until the
  block ends. The block holds at most one ``commit``, which makes it durable
  when it returns; leaving the block without a commit (or by an exception)
  writes nothing. A commit outside ``writing()`` is still atomic but its reads
  may be stale: use that only when nobody else writes the same incidents.
  ``writing(partitioned=True)`` is for writers that own disjoint sets of
  incidents (Kafka partitions keyed by incident id): they need not exclude
  each other, only the other writers;
- opening a store is safe while other processes open, create or migrate it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from projections.duty import DutyCalendar
from projections.incident import CALL, RESTORE, Fact, Incident
from projections.sla import SlaLimits
from projections.sla_live import SlaPlan, SlaRow, SlaUpdate
from projections.totals import AGENT, Bucket, Totals

DEFAULT_CHANGE_RETENTION_DAYS = 7.0

PositionKey = tuple[str, int]
"""``(source, partition)``: a Kafka topic and partition, or an input file and 0."""


class Record(NamedTuple):
    """One raw input message and where the consumer resumes after it."""

    source: str
    partition: int
    next_position: int
    raw: bytes
    line: int = 0
    """1-based line number for file records; 0 for log messages."""

    @property
    def label(self) -> str:
        """Where it came from, for people: ``file.jsonl:42`` or ``topic[3]@1200``."""
        if self.line:
            name = self.source.split("#", 1)[0].rsplit("/", 1)[-1]
            return f"{name}:{self.line}"
        return f"{self.source}[{self.partition}]@{self.next_position - 1}"


class Rejected(NamedTuple):
    """An input message that is not a valid event, and the one-line reason why."""

    record: Record
    reason: str


class LoggedEvent(NamedTuple):
    """An accepted event as kept in the store's event log (original bytes)."""

    event_id: str
    incident_id: str
    type: str
    at: int
    raw: bytes
    recorded: int | None = None
    """When the event was recorded (µs): the earliest ``recorded_at`` among its copies,
    or the time it was ingested when it carries none. None only in rows written
    before stores kept it."""


class Change(NamedTuple):
    """One committed change of the change log (``projections.changes``): ``kind``
    is ``incident``, ``period`` or ``alert``; ``data`` is its stored JSON."""

    seq: int
    kind: str
    key: str
    data: bytes
    committed_us: int


class NewChange(NamedTuple):
    """A change about to be appended (the store assigns its sequence)."""

    kind: str
    key: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    """The retained part of the change log: ``pruned_through < seq <= head``."""

    pruned_through: int
    head: int


class PeriodContext(NamedTuple):
    """What the accountability block of some duty periods needs besides their
    service-wide totals (``period_context``)."""

    agents: dict[str, dict[str, Totals]]
    """Duty date -> owner -> the ``agent`` bucket's totals."""
    shifts: list[Fact]
    """The shift starts in those periods."""
    handover: list[Incident]
    """The incidents on those periods' handover lists."""


class IncidentQuery(NamedTuple):
    """Filters and page of ``find_incidents``; ``state`` is ``open`` or ``all``."""

    state: str = "all"
    grid: str | None = None
    area: str | None = None
    limit: int = 100
    offset: int = 0


class StalePosition(RuntimeError):
    """The stored position moved under this consumer; re-read positions and retry."""


class StoreError(RuntimeError):
    """The store cannot be used (not a store, unreadable, read-only, locked, full).

    ``str(exc)`` is one line for people, naming the store."""


class StoreUnavailable(StoreError):
    """A server behind a store or an adapter (PostgreSQL, Kafka) is unreachable, refused
    the connection or its credentials, or failed the operation.

    Adapters raise it in place of their driver's errors (kept as ``__cause__``), so
    callers never need to know the driver. Nothing of the failed operation was
    committed; the same call may succeed once the server answers again. ``str(exc)``
    is one line for people naming the server, never a password."""


@dataclass(slots=True)
class Commit:
    consumer: str
    positions: dict[PositionKey, int]
    expected: dict[PositionKey, int] = field(default_factory=dict)
    events: list[LoggedEvent] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    calls: list[Fact] = field(default_factory=list)
    deltas: dict[Bucket, Totals] = field(default_factory=dict)
    rejected: int = 0
    duplicates: int = 0
    recorded_updates: dict[str, int] = field(default_factory=dict)
    """Stored event id -> the recorded time (µs) of a copy seen again; the store keeps
    the earlier of it and the stored one (what the control room knew, and when)."""
    shifts: list[Fact] = field(default_factory=list)
    """``duty.shift_started`` facts (no incident): team, leader, members."""
    conflicts: int = 0
    """Copies of an accepted ``event_id`` with different content (rejected)."""
    fingerprints: dict[PositionKey, str] = field(default_factory=dict)
    """For file sources: a digest of the bytes before the new position, stored
    with it (so a rewritten file can be told from an appended one)."""
    changes: list[NewChange] = field(default_factory=list)
    """Extra change-log entries (e.g. alert transitions); the store adds the
    incident and period changes of the batch itself."""
    outbox: list[OutboxEntry] = field(default_factory=list)
    """Events written by commands, to publish after the commit (same transaction)."""
    answer: CommandAnswer | None = None
    """A command's answer kept under its idempotency key (same transaction)."""
    sla: SlaPlan | None = None
    """SLA rules to evaluate in the same transaction (module contract)."""
    sla_update: SlaUpdate | None = None
    """Filled in by ``commit`` when ``sla`` is given: rows and transitions written."""
    new_rows: bool = False
    """The caller's word that no incident and no totals bucket of this commit is stored
    yet (a replay into a fresh store): a store may then add their rows without merging
    them into stored ones. If one is stored after all, the commit fails (PostgreSQL:
    the unique key) or merges it."""


class OutboxEntry(NamedTuple):
    event_id: str
    key: str
    """The Kafka message key."""
    raw: bytes


class CommandAnswer(NamedTuple):
    idempotency_key: str
    status: int
    body: bytes


class AlertEntry(NamedTuple):
    """An alert transition in the alert outbox; ``sent_us`` is None until published."""

    seq: int
    alert_id: str
    incident_id: str
    payload: bytes
    sent_us: int | None = None
    withheld: bool = False
    """Recorded and never to be published (found past the horizon; ``sent_us``
    is then when it was recorded)."""


ALERT_RELAY = "sla-relay"
"""The consumer name under which the relay stores the alert topic offsets it wrote."""
EVENT_RELAY = "outbox-relay"
"""The consumer name under which the command outbox relay stores the events topic
offsets it had reached when it last marked rows published."""


class ProjectionStore(ABC):
    """Read models plus the consumer positions that produced them (module contract)."""

    calendar: DutyCalendar
    sla_limits: SlaLimits
    """The limits the stored SLA counts of each duty period were computed with."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations. Idempotent."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def positions(self, consumer: str) -> dict[PositionKey, int]:
        """The next position per key committed by ``consumer``."""

    @abstractmethod
    async def fingerprints(self, consumer: str) -> dict[PositionKey, str]:
        """The fingerprint committed with each position of ``consumer`` (file sources)."""

    @abstractmethod
    async def known_event_ids(self, event_ids: Sequence[str]) -> set[str]: ...

    @abstractmethod
    async def known_events(self, event_ids: Sequence[str]) -> dict[str, bytes]:
        """The original bytes of those of ``event_ids`` already committed."""

    @abstractmethod
    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]: ...

    @abstractmethod
    async def commit(self, commit: Commit) -> None: ...

    async def stage(self, commit: Commit) -> None:
        """Inside a ``writing()`` block: write ``commit`` without ending the block's
        transaction, so later reads and stages in the block see it; ``finish``
        commits everything staged at once (one durable flush for many commands).
        The default suits a store whose commits are visible at once and whose
        writer is alone (the in-memory store)."""
        await self.commit(commit)

    async def finish(self, *, let_others_run: bool = False) -> None:
        """Commit what ``stage`` wrote in the current ``writing()`` block (the default
        ``stage`` committed already). ``let_others_run``: keep the event loop serving
        other tasks while the commit is flushed to disk (SQLite runs its COMMIT in a
        thread; worth its cost only when other requests are waiting)."""
        return None

    def writing(self, *, partitioned: bool = False) -> AbstractAsyncContextManager[None]:
        """A serialised read-modify-write block (see module contract).

        The default suits a store that only one process, one task at a time,
        writes (the in-memory store)."""
        return _nothing()

    def bulk_loading(self) -> AbstractAsyncContextManager[None]:
        """Inside a ``writing()`` block, around the stages that fill a store holding no
        events: the store may set the event log's indexes aside while its rows are
        copied, and build them again from the whole log when the context exits without
        an exception (still inside the block, before ``finish``). What the store holds
        and enforces after the block is what it would without this; until the context
        exits, lookups by event id may be slow. On an exception the block's rollback
        brings the indexes back. The default sets nothing aside."""
        return _nothing()

    def sibling(self) -> ProjectionStore | None:
        """A second, unopened session on the same database, with the same settings,
        for a runner that prepares one batch while the previous one commits; None
        (the default) when the backend has no such session."""
        return None

    async def still_writing(self, other: ProjectionStore) -> bool:
        """Inside a ``writing()`` block of this session: whether ``other``, a
        ``sibling`` of this store, still holds its own ``writing()`` block in the
        database, so that no exclusive writer can have committed since that block
        began. Stores without siblings say False."""
        return False

    @abstractmethod
    async def totals(self) -> dict[Bucket, Totals]: ...

    @abstractmethod
    async def counters(self) -> dict[str, int]:
        """``rejected_events``, ``duplicate_events`` and ``conflicting_events``
        (0 when none yet)."""

    @abstractmethod
    def all_incidents(self) -> AsyncIterator[Incident]:
        """Every incident row (for re-cutting with another duty calendar)."""

    @abstractmethod
    def all_calls(self) -> AsyncIterator[Fact]:
        """Every committed ``call.received`` fact (time, grid, area)."""

    @abstractmethod
    async def shifts(self) -> list[Fact]:
        """Every committed ``duty.shift_started`` fact (few: one or two a day)."""

    @abstractmethod
    async def handover_incidents(self) -> list[Incident]:
        """Outage incidents open at the end of their duty period (store calendar)."""

    async def period_context(self, days: Collection[str]) -> PeriodContext:
        """The agents, shift starts and handover incidents of the duty periods
        ``days`` (ISO dates, store calendar): what ``accountability`` reads for
        them. SQL stores answer from those periods' rows only."""
        wanted = set(days)
        agents: dict[str, dict[str, Totals]] = {}
        for (dimension, member, day), vector in (await self.totals()).items():
            if dimension == AGENT and day in wanted:
                agents.setdefault(day, {})[member] = vector
        calendar = self.calendar
        shifts = [s for s in await self.shifts()
                  if calendar.duty_date(s.at).isoformat() in wanted]
        handover = [i for i in await self.handover_incidents()
                    if calendar.duty_date(i.times[CALL] or 0).isoformat() in wanted]
        return PeriodContext(agents, shifts, handover)

    @abstractmethod
    async def incident_events(self, incident_id: str) -> list[LoggedEvent]:
        """The logged events of one incident, in event-time order."""

    def history_events(self) -> AsyncIterator[LoggedEvent]:
        """Every logged event with its recorded time, in the order it was accepted
        (for as-of and known-at reports, which re-fold the log)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no event history")

    @abstractmethod
    async def event_count(self) -> int: ...

    # The write side (``dispatch serve``'s commands): optional too.

    async def events_of_types(self, types: Collection[str]) -> list[bytes]:
        """The original bytes of every logged event of one of ``types``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no command tables")

    async def command_answer(self, idempotency_key: str) -> CommandAnswer | None:
        """The answer committed under ``idempotency_key``, if any."""
        raise NotImplementedError(f"{type(self).__name__} keeps no command tables")

    async def unpublished(self, limit: int = 500) -> list[tuple[int, OutboxEntry]]:
        """Outbox entries not yet marked published, oldest first, with their sequence."""
        raise NotImplementedError(f"{type(self).__name__} keeps no command tables")

    async def mark_published(self, seqs: Sequence[int],
                             positions: Mapping[PositionKey, int] | None = None) -> None:
        """Mark outbox rows published and raise the relay's stored offsets on the
        events topic (under ``EVENT_RELAY``) to ``positions``, in one transaction."""
        raise NotImplementedError(f"{type(self).__name__} keeps no command tables")

    async def claim_event_relay(self) -> bool:
        """True if this store connection may relay the command outbox: one relay per
        store, held until the connection closes (or the process dies)."""
        return True

    # The change log and the live queries: optional, a store without them
    # serves reports but not ``dispatch serve``'s stream.

    change_log: bool = False
    """True when ``commit`` appends to the change log."""
    change_retention_days: float = DEFAULT_CHANGE_RETENTION_DAYS

    async def changes_after(self, seq: int, limit: int = 1000) -> list[Change]:
        """Committed changes with a sequence above ``seq``, in order, at most ``limit``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no change log")

    async def change_window(self) -> ChangeWindow:
        raise NotImplementedError(f"{type(self).__name__} keeps no change log")

    async def prune_changes(self, now_us: int) -> int:
        """Delete changes older than the retention; returns how many."""
        raise NotImplementedError(f"{type(self).__name__} keeps no change log")

    async def listen_changes(self, wake: Callable[[], None]) -> bool:
        """Have ``wake`` called whenever changes are committed (by any writer);
        False if this store cannot push, and readers must poll."""
        return False

    # The live SLA state and the alert outbox (projections.sla_live): optional,
    # a store without them serves reports and ``dispatch alerts`` but no live alerts.

    async def sla_tick(self, plan: SlaPlan) -> SlaUpdate:
        """One transaction evaluating ``plan`` (with ``due``: every rule due by then)."""
        commit = Commit("sla", {}, sla=plan)
        await self.commit(commit)
        return commit.sla_update or SlaUpdate()

    async def sla_rows(self, states: Collection[str] | None = None) -> list[SlaRow]:
        """Every stored SLA row, by incident then rule; with ``states``, only the rows
        in one of those states (e.g. the alert levels, for gauges: the other rows
        grow with every incident ever seen)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no SLA state")

    async def sla_event_clock(self) -> int | None:
        """The largest ``occurred_at`` committed with an SLA plan (None: none yet)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no SLA state")

    async def unsent_alerts(self, limit: int = 1000) -> list[AlertEntry]:
        """Outbox entries not yet marked sent, in outbox order."""
        raise NotImplementedError(f"{type(self).__name__} keeps no alert outbox")

    async def mark_alerts_sent(self, alert_ids: Collection[str], sent_us: int,
                               positions: dict[PositionKey, int]) -> None:
        """Mark entries published, and store the relay's next offsets on the alert
        topic (under ``ALERT_RELAY``), in one transaction."""
        raise NotImplementedError(f"{type(self).__name__} keeps no alert outbox")

    async def alert_outbox(self) -> list[AlertEntry]:
        """Every alert outbox entry, sent or not, in outbox order."""
        raise NotImplementedError(f"{type(self).__name__} keeps no alert outbox")

    async def prune_alert_outbox(self, sent_before_us: int) -> int:
        """Delete the outbox entries sent (or withheld) before ``sent_before_us``;
        entries not yet sent stay. Returns how many were deleted."""
        raise NotImplementedError(f"{type(self).__name__} keeps no alert outbox")

    async def claim_alert_relay(self) -> bool:
        """True if this store connection may relay the outbox (one relay per store:
        PostgreSQL holds a session lock until the connection closes)."""
        return True

    async def find_incidents(self, query: IncidentQuery) -> tuple[list[Incident], int]:
        """A page of incidents matching ``query`` (by t0, then id; no t0 last)
        and the number matching. Open = an outage neither restored nor closed."""
        found = [i async for i in self.all_incidents() if _matches(i, query)]
        found.sort(key=lambda i: (i.times[CALL] is None, i.times[CALL] or 0, i.incident_id))
        return found[query.offset:query.offset + query.limit], len(found)

    async def __aenter__(self) -> ProjectionStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _matches(incident: Incident, query: IncidentQuery) -> bool:
    if query.state == "open" and not (incident.is_outage and incident.times[RESTORE] is None
                                      and incident.closed_at is None):
        return False
    if query.grid is not None and incident.grid != query.grid:
        return False
    return query.area is None or incident.area == query.area


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield
