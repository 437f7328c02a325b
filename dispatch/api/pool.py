"""A few open stores shared by the HTTP handlers; an unreachable store is a 503.

One store object serves one request at a time (an asyncpg connection or an
SQLite connection is not shared by concurrent queries). A store whose server
went away is thrown away and a new one is opened on the next request, so the
API recovers by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from projections.ports import ProjectionStore, StoreError, StoreUnavailable

OPEN_TIMEOUT_S = 5.0


CONNECTION_ERRORS: tuple[type[BaseException], ...] = (StoreError, OSError, TimeoutError)
"""What a store raises when it cannot be used now: the SQL stores translate their
drivers' errors into ``StoreError`` (``StoreUnavailable`` for a server that went away)."""


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
