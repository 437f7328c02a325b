"""The projection worker: a Faust app running the shared projector against PostgreSQL."""

import gc

WORKER_BATCH = 20_000
"""Most messages in one committed batch. Larger batches write each touched incident
once for more events; catching up 1M events, 20,000 ran at 12,410 events/s against
10,587 for 5,000 (peak RSS 238 MB against 165 MB). Under a steady flow a batch holds
what arrived meanwhile, so the size costs no latency."""

PIPELINE_FROM = 1_000
"""Batches of this many messages or more are read and folded while the previous batch
commits (a backlog being caught up); smaller ones (a live flow) commit before the next
is taken, which keeps their latency down."""

COLLECTOR_THRESHOLDS = (100_000, 50, 100)
"""The cyclic garbage collector's thresholds in the worker (Python's are 700, 10, 10)."""


def tune_collector() -> None:
    """Set the worker's garbage collector: what is loaded at start-up (Faust, the
    Kafka client, pydantic) is frozen out of every collection, and the youngest
    generation is collected every 100,000 allocations instead of 700. A batch
    allocates a few objects per event, almost all freed by reference counting; with
    the defaults the collector ran so often that py-spy charged it 18 % of the main
    thread (inside whatever allocated), and catching up ran at 11,907 events/s
    against 13,660 with these thresholds (300,000 events, same machine)."""
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
