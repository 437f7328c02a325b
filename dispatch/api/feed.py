"""The live change feed: one tail of the change log, fanned out to SSE subscribers.

Contract:
- ``ChangeFeed.run`` follows the store's change log (woken by the store's push
  notifications where it has them, PostgreSQL LISTEN/NOTIFY, and polling at
  ``poll_interval`` otherwise) and offers every new change, encoded once as an
  SSE frame, to every subscriber, in sequence order; the frames of one read of
  the log travel as one chunk (one write per subscriber, not one per change);
- ``subscribe`` is synchronous: the subscriber receives exactly the changes
  after ``Subscriber.since`` (the feed's position at that moment); earlier ones
  it reads from the store (``backlog``), so a reconnecting client gets every
  change after its ``Last-Event-ID`` once;
- a subscriber with more than ``queue_size`` changes not yet sent is dropped (its
  stream ends; the client reconnects and catches up from the store): a slow
  client never slows the feed or the writers, and memory per subscriber is
  bounded;
- a store that cannot be reached is retried with backoff; subscribers stay
  connected (heartbeats continue) and resume when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson

from dispatch.api.pool import CONNECTION_ERRORS, OPEN_TIMEOUT_S, discard
from projections.changes import PeriodDetail, period_detail, public_data
from projections.duty import DutyCalendar
from projections.ports import Change, ProjectionStore
from projections.sla import SlaLimits

log = logging.getLogger("dispatch.serve")

PAGE = 1000
RETRY_MS = 2000
"""Sent as the SSE ``retry:`` field: how long a browser waits before reconnecting."""


def frame(change: Change, calendar: DutyCalendar, limits: SlaLimits | None = None,
          detail: PeriodDetail | None = None) -> bytes:
    """One SSE frame: ``id`` = the change sequence, ``event`` = its kind; incidents
    carry their SLA rules as of now, periods their accountability block."""
    data = orjson.dumps(public_data(change, calendar, limits, time.time_ns() // 1000, detail))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (change.seq, change.kind.encode(), data)


async def encoded(store: ProjectionStore, changes: list[Change], calendar: DutyCalendar,
                  limits: SlaLimits | None = None) -> bytes:
    """The frames of ``changes`` as one chunk; the accountability of the periods
    among them is read once, as of now."""
    days = {change.key for change in changes if change.kind == "period"}
    detail = period_detail(await store.period_context(days), calendar) if days else None
    return b"".join(frame(change, calendar, limits, detail) for change in changes)


def resync_frame(head: int, reason: str) -> bytes:
    data = orjson.dumps({"head": head, "reason": reason})
    return b"id: %d\nevent: resync\ndata: %s\n\n" % (head, data)


HEARTBEAT = b": heartbeat\n\n"


@dataclass(eq=False)
class Subscriber:
    """One stream's queue: chunks of frames, at most ``limit`` changes pending.
    Dropped (too slow) or ended, ``take`` answers None and the stream ends."""

    since: int
    limit: int
    chunks: deque[bytes] = field(default_factory=deque)
    pending: int = 0
    dropped: bool = False
    ended: bool = False
    _waiter: asyncio.Future[None] | None = None

    def offer(self, chunk: bytes, changes: int) -> None:
        if self.dropped or self.ended:
            return
        if self.pending + changes > self.limit:
            self.dropped = True
            # What was queued is read again from the store when the client reconnects.
            self.chunks.clear()
            self.pending = 0
        else:
            self.pending += changes
            self.chunks.append(chunk)
        self._wake()

    def end(self) -> None:
        """The server is stopping: what is queued is still sent, then the stream ends."""
        self.ended = True
        self._wake()

    def close(self) -> None:
        """The client went away: nothing more is sent."""
        self.chunks.clear()
        self.pending = 0
        self.end()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self, quiet_s: float | None = None) -> bytes | None:
        """Everything queued, as one chunk (one write however far behind the stream
        is); ``b""`` when ``quiet_s`` seconds passed with nothing new; None once the
        stream must end. No task or timer per chunk: the feed wakes one future."""
        if not self.chunks and not (self.dropped or self.ended):
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            timer = None if quiet_s is None else loop.call_later(quiet_s, self._wake)
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        if self.chunks:
            data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
            self.chunks.clear()
            self.pending = 0
            return data
        return None if self.dropped or self.ended else b""


@dataclass
class FeedStats:
    delivered: int = 0
    dropped: int = 0
    store_errors: int = 0
    subscribers: set[Subscriber] = field(default_factory=set)


class ChangeFeed:
    def __init__(self, factory: Callable[[], ProjectionStore], *,
                 poll_interval: float = 0.2, queue_size: int = 2000,
                 limits: SlaLimits | None = None) -> None:
        self._factory = factory
        self.limits = limits
        self.calendar = DutyCalendar()
        """The store's own calendar, once ``start`` has opened it."""
        self._store = factory()
        self._push = False
        self.poll_interval = poll_interval
        self.queue_size = queue_size
        self.position = 0
        self.healthy = False
        self.stats = FeedStats()
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Open the tail and take the current head as the starting position
        (raises if the store cannot be reached)."""
        await self._connect()
        self.position = (await self._store.change_window()).head

    async def _connect(self) -> None:
        self._store = self._factory()
        await asyncio.wait_for(self._store.open(), OPEN_TIMEOUT_S)
        self.calendar = self._store.calendar
        self._push = await self._store.listen_changes(self._wake.set)
        self.healthy = True

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(self.position, self.queue_size)
        self.stats.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.stats.subscribers.discard(subscriber)

    async def run(self) -> None:
        """Follow the log until cancelled (see module contract)."""
        backoff = 0.25
        while True:
            try:
                if not self.healthy:
                    await discard(self._store)
                    # Keep the position: what was committed meanwhile is read next.
                    await self._connect()
                    log.warning("store reachable again; live feed resumed at %d", self.position)
                    backoff = 0.25
                await self._drain()
                # With push notifications, polling is only the safety net.
                timeout = self.poll_interval * (5 if self._push else 1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The feed must outlive any failure: connection errors are expected,
                # anything else is logged and retried the same way.
                if not isinstance(exc, CONNECTION_ERRORS):
                    log.exception("live feed failed; retrying")
                elif self.healthy:
                    log.warning("store unreachable (%s); live feed retrying", type(exc).__name__)
                self.healthy = False
                self.stats.store_errors += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drain(self) -> None:
        while True:
            changes = await self._store.changes_after(self.position, PAGE)
            if not changes:
                return
            chunk = await encoded(self._store, changes, self.calendar, self.limits)
            # Taken after the last await: a subscriber added before this line has
            # ``since`` below these changes, one added after it sees the new position.
            subscribers = list(self.stats.subscribers)
            for subscriber in subscribers:
                subscriber.offer(chunk, len(changes))
            self.position = changes[-1].seq
            self.stats.delivered += len(changes)
            for subscriber in subscribers:
                if subscriber.dropped and subscriber in self.stats.subscribers:
                    self.stats.dropped += 1
                    self.unsubscribe(subscriber)

    async def close(self) -> None:
        for subscriber in list(self.stats.subscribers):
            subscriber.end()
        await discard(self._store)


async def backlog(store: ProjectionStore, after: int, until: int, calendar: DutyCalendar,
                  limits: SlaLimits | None = None) -> AsyncIterator[tuple[bytes, int]]:
    """The stored changes ``after < seq <= until`` in order, as chunks of frames
    with the number of changes in each."""
    position = after
    while position < until:
        changes = [c for c in await store.changes_after(position, PAGE) if c.seq <= until]
        if not changes:
            return
        yield await encoded(store, changes, calendar, limits), len(changes)
        position = changes[-1].seq
