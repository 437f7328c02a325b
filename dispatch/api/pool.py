"""A few open stores shared by the HTTP handlers; an unreachable store is a 503.

One store object serves one request at a time (an asyncpg connection or an
SQLite connection is not shared by concurrent queries). A store whose server
went away is thrown away and a new one is opened on the next request, so the
API recovers by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from projections.ports import ProjectionStore

OPEN_TIMEOUT_S = 5.0


class StoreUnavailable(RuntimeError):
    """The store cannot be reached now (answered as 503; clients retry)."""


def _connection_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError, sqlite3.OperationalError,
                                         ConnectionError]
    try:
        import asyncpg

        errors += [asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                   asyncpg.CannotConnectNowError]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    return tuple(errors)


CONNECTION_ERRORS = _connection_errors()


class StorePool:
    def __init__(self, factory: Callable[[], ProjectionStore], size: int) -> None:
        self._factory = factory
        self._idle: asyncio.Queue[tuple[ProjectionStore, bool]] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait((factory(), False))

    @asynccontextmanager
    async def store(self) -> AsyncIterator[ProjectionStore]:
        """An open store for one request; StoreUnavailable if it cannot be reached."""
        store, opened = await self._idle.get()
        try:
            if not opened:
                await asyncio.wait_for(store.open(), OPEN_TIMEOUT_S)
                opened = True
            yield store
        except CONNECTION_ERRORS as exc:
            await discard(store)
            store, opened = self._factory(), False
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except asyncio.CancelledError:
            # The client went away mid-query: the connection may be mid-protocol.
            await discard(store)
            store, opened = self._factory(), False
            raise
        finally:
            self._idle.put_nowait((store, opened))

    async def close(self) -> None:
        while not self._idle.empty():
            store, opened = self._idle.get_nowait()
            if opened:
                await discard(store)


async def discard(store: ProjectionStore) -> None:
    """Close ``store``, ignoring the errors of a connection that is already gone."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(store.close(), 1.0)
