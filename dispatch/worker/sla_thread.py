"""The SLA timer and alert relay loop, on a thread and an event loop of their own
(the worker runs it in a child process: ``sla_process``; tests run it as a thread).

Folding a batch is CPU work on the consumer's event loop: a timer on that loop
waits until the batch is done, so under load a deadline could be evaluated
seconds late. Here the timer has its own thread, asyncio loop, PostgreSQL
connection (session ``dispatch-sla[PID]``) and Kafka producer; the batch's
thread holds the interpreter lock for at most a switch interval at a time, so
the timer runs on schedule while batches are folded.

Contract:
- every ``sla_tick_seconds`` (measured from the previous tick's start, not its
  end) one ``SlaLoop.tick`` evaluates the rules due by now, and the relay
  publishes what is new right after it; between ticks the relay also runs every
  ``sla_relay_seconds``, for the transitions batches commit;
- the SLA part of a batch's commit runs under the same transaction lock as the
  tick (``projections.stores``), so a tick waits at most for the end of one
  batch's SLA step and commit, never for the batch's folding; a tick that
  starts more than ``LATE_WARNING_SECONDS`` late is logged, with what the step
  before it spent in the tick and in the relay;
- every ``prune_seconds`` the relay deletes outbox entries sent more than
  ``outbox_retention_days`` ago;
- a store or broker error closes and reopens the connection on the next step;
  nothing is lost or repeated (the relay's contract);
- ``stop()`` ends the loop after the current step and closes both connections.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from projections.ports import AlertEntry, ProjectionStore, StoreUnavailable
from projections.runners.alerts import AlertLog, SlaLoop
from projections.sla import LEVELS
from projections.sla_live import SlaPolicy, SlaRow, SlaUpdate

log = logging.getLogger("dispatch.worker.sla")
GAUGE_SECONDS = 2.0
"""How often the active-alert gauges are read from the store."""
LATE_WARNING_SECONDS = 1.0
"""A tick this much later than scheduled is logged (the machine is overloaded)."""


class AlertTopic(AlertLog, Protocol):
    """An ``AlertLog`` with a connection to open and close (``KafkaAlertLog``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SlaMetrics(Protocol):
    """What the loop reports (``WorkerMetrics``, or a forwarder to it)."""

    def alerts_published(self, entries: Sequence[AlertEntry], now_us: int) -> None: ...

    def sla_evaluated(self, update: SlaUpdate) -> None: ...

    def set_active_alerts(self, rows: Iterable[SlaRow]) -> None: ...


class Stopping(Protocol):
    """A flag set from outside (``threading.Event``, ``multiprocessing.Event``)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SlaThread:
    """Runs ``SlaLoop`` on its own thread; see the module contract."""

    def __init__(self, store: Callable[[], ProjectionStore], log_: Callable[[], AlertTopic],
                 policy: SlaPolicy, metrics: SlaMetrics, *, tick_seconds: float,
                 relay_seconds: float, outbox_retention_days: float,
                 prune_seconds: float = 60.0) -> None:
        self._store_factory = store
        self._log_factory = log_
        self.policy = policy
        self.metrics = metrics
        self.tick_seconds = tick_seconds
        self.relay_seconds = relay_seconds
        self.outbox_retention_days = outbox_retention_days
        self.prune_seconds = prune_seconds
        self.loop_: SlaLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: Stopping = threading.Event()
        self._started: Stopping = threading.Event()
        self._took = (0.0, 0.0)
        """Seconds the last step spent in the tick and in the relay (for the late warning)."""
        self.failure: BaseException | None = None
        """An unexpected error that ended the thread (None while it runs)."""

    def start(self) -> None:
        """Start the thread; return once its store and producer are open (or failed)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="dispatch-sla", daemon=True)
        self._thread.start()
        self._started.wait(60)

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # the worker logs it; the thread must not die silently
            self.failure = exc
            log.exception("SLA timer stopped")
        finally:
            self._started.set()

    async def _main(self) -> None:
        store = self._store_factory()
        alert_log = self._log_factory()
        loop = self.loop_ = SlaLoop(store, alert_log, self.policy, self.metrics,
                                    retention_days=self.outbox_retention_days)
        await _retrying(store.open, self._stopping)
        await _retrying(alert_log.start, self._stopping)
        self._started.set()
        try:
            next_tick = next_gauges = next_prune = time.monotonic()
            while not self._stopping.is_set():
                now = time.monotonic()
                tick, gauges, prune = now >= next_tick, now >= next_gauges, now >= next_prune
                if tick:
                    if now - next_tick > LATE_WARNING_SECONDS:
                        log.warning("SLA tick %.1fs late; the step before took %.1fs "
                                    "(tick %.1fs, relay %.1fs)", now - next_tick,
                                    sum(self._took), *self._took)
                    # Scheduled from the previous start: a slow tick does not push the next.
                    next_tick = max(next_tick + self.tick_seconds, now)
                if gauges:
                    next_gauges = now + GAUGE_SECONDS
                if prune:
                    next_prune = now + self.prune_seconds
                await self._step(loop, tick=tick, gauges=gauges, prune=prune)
                await asyncio.sleep(min(self.relay_seconds,
                                        max(0.0, next_tick - time.monotonic())))
        finally:
            await alert_log.stop()
            await store.close()

    async def _step(self, loop: SlaLoop, *, tick: bool, gauges: bool, prune: bool) -> None:
        try:
            # Opens again after a reconnect that failed (PostgreSQL still down then).
            await loop.store.open()
            started = time.monotonic()
            if tick:
                await loop.tick()
            ticked = time.monotonic()
            await loop.relay()
            self._took = (ticked - started, time.monotonic() - ticked)
            if prune and loop.claimed:
                await loop.prune()
            if gauges:
                # Only the alert levels: every other row (one per incident and rule
                # ever seen) would be read again every 2 s, slower as the store grows.
                self.metrics.set_active_alerts(await loop.store.sla_rows(LEVELS))
        except StoreUnavailable as exc:
            # Whatever was not marked sent is published again after recovery, which
            # first reads back what reached the topic: nothing is lost or repeated.
            log.warning("SLA timer or relay failed (%s); reconnecting", exc)
            loop.claimed = False
            await loop.store.close()
            try:
                await loop.store.open()
            except StoreUnavailable as again:
                log.warning("PostgreSQL not answering for the SLA timer (%s)", again)


async def _retrying(action: Callable[[], Awaitable[None]], stopping: Stopping) -> None:
    delay = 0.5
    while not stopping.is_set():
        try:
            await action()
            return
        except StoreUnavailable as exc:
            log.warning("SLA timer waiting for its store or broker (%s)", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
