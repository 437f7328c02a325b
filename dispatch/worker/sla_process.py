"""The worker's SLA timer and alert relay in a child process of their own.

On a thread (``sla_thread``) the timer shares the interpreter lock with the
thread that folds batches: on an overloaded machine every hand-over of that
lock waits for the batch thread to be scheduled again, and ticks start
seconds late. A child process is scheduled on its own. It runs the same loop
(``SlaThread``'s contract) with its own connections; what it would report to
the worker's metrics travels back over a queue, and a thread of the worker
applies it to ``WorkerMetrics``.

Lifecycle: ``start()`` starts the child and returns at once (the worker does
not wait for it to import and connect); ``stop()`` asks the child to finish
its step and waits for it (then ends it).
The child ends by itself when the worker dies, also by SIGKILL (Linux's
parent-death signal, and a check of its parent on every step). ``failure`` is
set when the child exited without being asked to.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from dispatch import bootstrap
from dispatch.kafka.alerts import KafkaAlertLog
from dispatch.kafka.metrics import WorkerMetrics
from dispatch.settings import Settings
from dispatch.worker.sla_thread import SlaThread
from projections.ports import AlertEntry
from projections.sla_live import SlaRow, SlaUpdate

log = logging.getLogger("dispatch.worker.sla")


class _Forwarder:
    """``SlaMetrics`` in the child: every report goes to the worker over ``queue``."""

    def __init__(self, queue: Queue[Any]) -> None:
        self.queue = queue

    def alerts_published(self, entries: Sequence[AlertEntry], now_us: int) -> None:
        self.queue.put(("published", list(entries), now_us))

    def sla_evaluated(self, update: SlaUpdate) -> None:
        self.queue.put(("evaluated",))

    def set_active_alerts(self, rows: Iterable[SlaRow]) -> None:
        self.queue.put(("active", list(rows)))


class _Orphaned:
    """The child's stop flag: set by the worker, or the worker is gone."""

    def __init__(self, event: Event, parent: int) -> None:
        self.event = event
        self.parent = parent

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent

    def set(self) -> None:
        self.event.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: nothing to save, the
            # outbox and the relay's marks are crash-safe


def _child(settings: Settings, stopping: Event, ready: Event, queue: Queue[Any],
           parent: int) -> None:
    _die_with_parent()
    # Signals sent to the whole group (Ctrl-C, a service manager) are the worker's to
    # act on: it stops this process when it shuts down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("kafka", "aiokafka"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    policy = settings.sla_policy
    assert policy is not None
    runner = SlaThread(
        lambda: bootstrap.worker_store(settings, session_name="dispatch-sla"),
        lambda: KafkaAlertLog(settings.kafka_bootstrap, settings.topic_alerts),
        policy, _Forwarder(queue), tick_seconds=settings.sla_tick_seconds,
        relay_seconds=settings.sla_relay_seconds,
        outbox_retention_days=settings.sla_outbox_retention_days)
    runner._stopping = _Orphaned(stopping, parent)
    runner._started = ready
    runner._run()
    if runner.failure is not None:
        sys.exit(1)


class SlaProcess:
    """``SlaThread``'s interface, running the loop in a child process."""

    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        context = multiprocessing.get_context("spawn")
        self._stopping = context.Event()
        self._ready = context.Event()
        self._queue: Queue[Any] = context.Queue()
        self._process = context.Process(
            target=_child, name="dispatch-sla", daemon=True,
            args=(settings, self._stopping, self._ready, self._queue, os.getpid()))
        self._applier = threading.Thread(target=self._apply, name="dispatch-sla-metrics",
                                         daemon=True)
        self._started = False

    def start(self) -> None:
        """Start the child and return at once: the worker's batches do not wait for
        the child to import and connect (it announces that with ``ready``)."""
        if self._started:
            return
        self._started = True
        self._process.start()
        self._applier.start()

    def wait_ready(self, timeout: float) -> bool:
        """True once the child's store and producer are open."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if not self._started:
            return
        self._stopping.set()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()  # it ignores SIGTERM (see _child)
            self._process.join(5)
        self._queue.put(None)
        self._applier.join(5)

    @property
    def failure(self) -> BaseException | None:
        code = self._process.exitcode if self._started else None
        if code is None or self._stopping.is_set():
            return None
        return RuntimeError(f"the SLA process exited with code {code}")

    def _apply(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            kind = message[0]
            if kind == "published":
                self.metrics.alerts_published(message[1], message[2])
            elif kind == "evaluated":
                self.metrics.sla_evaluated(SlaUpdate())
            elif kind == "active":
                self.metrics.set_active_alerts(message[1])
