"""Faust's own delivery ceiling in the worker's exact configuration (no projection).

Builds the app of ``dispatch worker`` with ``dispatch.worker.faust_app.build_app``
(same Faust settings, same bulk delivery and parse ahead), but replaces the
runtime's PostgreSQL side with no-ops: ``handle`` only counts the messages of
each batch, ``assigned`` does not seek (a fresh group starts at the earliest
offset anyway). So its rate is what Faust's group + aiokafka + event validation
can hand a batch handler that costs nothing, the upper bound of
``dispatch worker`` on this box.

Configured like the worker by ``DISPATCH_*`` env (topic, group, bootstrap,
partitions), plus:
  DRAIN_TARGET   stop counting at this many events (required)
  DRAIN_BATCH    batch_max (default 5000)
  DRAIN_RESULT   path of a JSON file rewritten every ~0.25 s with
                 {"n", "batches", "first_at", "n_first", "last_at", "done_at"} (time.time())
Run (from a scratch directory: Faust writes ``<group>-data/`` into the cwd):
  .venv/bin/python bench/faust_drain.py
The benchmark stops it with SIGTERM once ``done_at`` is set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faust

from dispatch.settings import Settings
from dispatch.worker.faust_app import build_app

TARGET = int(os.environ["DRAIN_TARGET"])
BATCH = int(os.environ.get("DRAIN_BATCH", "5000"))
RESULT = Path(os.environ["DRAIN_RESULT"])

state: dict[str, Any] = {"n": 0, "batches": 0, "first_at": None, "n_first": 0, "last_at": None,
                         "done_at": None}
last_write = [0.0]


def save(force: bool = False) -> None:
    now = time.time()
    if force or now - last_write[0] > 0.25:
        last_write[0] = now
        tmp = RESULT.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(RESULT)


async def count(events: list[Any], parsed: Any = None) -> None:
    now = time.time()
    state["n"] += len(events)
    state["batches"] += 1
    state["last_at"] = now
    if state["first_at"] is None:
        state["first_at"], state["n_first"] = now, len(events)
    done = state["n"] >= TARGET and state["done_at"] is None
    if done:
        state["done_at"] = now
    save(force=done)


async def nothing(*_: Any) -> None:
    return None


def main() -> None:
    # No SLA timer: it would need the store this bench leaves closed.
    app, runtime = build_app(Settings().model_copy(update={"sla_live": False}),
                             batch_max=BATCH)
    # Instance attributes shadow the methods the agent and the signal handlers call.
    runtime.ready = nothing  # type: ignore[method-assign]
    runtime.assigned = nothing  # type: ignore[method-assign]
    runtime.close = nothing  # type: ignore[method-assign]
    runtime.handle = count  # type: ignore[method-assign]
    save(force=True)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
