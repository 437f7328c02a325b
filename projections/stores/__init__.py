"""Read-model store adapters and ``open_store(url)``, the one place that picks one."""

from __future__ import annotations

from projections.duty import DutyCalendar
from projections.ports import DEFAULT_CHANGE_RETENTION_DAYS, ProjectionStore
from projections.sla import SlaLimits


def open_store(url: str, calendar: DutyCalendar | None = None,
               sla_limits: SlaLimits | None = None, *,
               change_retention_days: float = DEFAULT_CHANGE_RETENTION_DAYS) -> ProjectionStore:
    """A store for ``url``: ``memory://``, ``sqlite:///PATH`` or ``postgresql://...``.

    ``calendar`` and ``sla_limits`` are used only if the store is new; an existing
    store keeps its own. The SQL stores keep a change log, pruned after
    ``change_retention_days``. Raises ValueError for an unsupported URL.
    """
    calendar = calendar or DutyCalendar()
    if url == "memory://":
        from projections.stores.memory import MemoryStore

        return MemoryStore(calendar, sla_limits=sla_limits)
    if url.startswith("sqlite:///"):
        from projections.stores.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"), calendar, sla_limits=sla_limits,
                           change_retention_days=change_retention_days)
    if url.startswith(("postgresql://", "postgres://")):
        from projections.stores.postgres import PostgresStore

        return PostgresStore(url, calendar, sla_limits=sla_limits,
                             change_retention_days=change_retention_days)
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:///PATH, postgresql://... or memory://"
    )
