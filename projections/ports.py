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
- reads reflect every commit that returned before them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from projections.duty import DutyCalendar
from projections.incident import Fact, Incident
from projections.sla import SlaLimits
from projections.totals import Bucket, Totals

PositionKey = tuple[str, int]
"""``(source, partition)``: a Kafka topic and partition, or an input file and 0."""


class LoggedEvent(NamedTuple):
    """An accepted event as kept in the store's event log (original bytes)."""

    event_id: str
    incident_id: str
    type: str
    at: int
    raw: bytes


class StalePosition(RuntimeError):
    """The stored position moved under this consumer; re-read positions and retry."""


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
    shifts: list[Fact] = field(default_factory=list)
    """``duty.shift_started`` facts (no incident): team, leader, members."""


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
    async def known_event_ids(self, event_ids: Sequence[str]) -> set[str]: ...

    @abstractmethod
    async def load_incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]: ...

    @abstractmethod
    async def commit(self, commit: Commit) -> None: ...

    @abstractmethod
    async def totals(self) -> dict[Bucket, Totals]: ...

    @abstractmethod
    async def counters(self) -> dict[str, int]:
        """``rejected_events`` and ``duplicate_events`` (0 when none yet)."""

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

    @abstractmethod
    async def incident_events(self, incident_id: str) -> list[LoggedEvent]:
        """The logged events of one incident, in event-time order."""

    @abstractmethod
    async def event_count(self) -> int: ...

    async def __aenter__(self) -> ProjectionStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
