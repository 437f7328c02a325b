"""Concurrent dispatches of one crew, with the race window held open.

Over HTTP the time between loading the state and committing the event is a few
milliseconds, so a test that merely sends requests at once passes on SQLite
even with no lock at all. Here several processes run the command handler's
own code (``execute_command`` with ``decide_incident_event``, what
``POST /api/incidents/{id}/events`` runs for each block of commands), and each
one, after loading the state and deciding, waits at a barrier for all the
others to have decided too before it commits.

- With the store's write lock the others cannot load while one holds it: the
  first one's wait times out, it commits, and the others load afterwards and
  are refused (one 201, the rest 409).
- Without the lock all of them load the same state (crew available), meet at
  the barrier and commit: several 201s and several events, and this test fails.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from typing import Any

from dispatch.api.group_commit import Job, execute_command
from dispatch.api.writes import decide_incident_event
from dispatch.commands import DISPATCHER, Command, Decision
from projections.duty import DutyCalendar
from projections.ports import ProjectionStore
from projections.stores import open_store
from tests.api.harness import crew_and_incidents, dispatched

CONTENDERS = 3
WINDOW_S = 2.0
"""How long a contender that decided waits for the others to decide too."""


def contend(url: str, incident_id: str, ready: Any, decided: Any, results: Any) -> None:
    """One dispatcher process: send crew C1 to ``incident_id``; report the status and
    whether all contenders had decided before anyone committed."""

    async def run() -> None:
        async with open_store(url, DutyCalendar()) as store:
            met = False

            async def decide(current: ProjectionStore) -> Decision:
                nonlocal met
                decision = await decide_incident_event(
                    current, incident_id, Command("crew.dispatched", {"crew": "C1"}, None),
                    DISPATCHER)
                try:
                    decided.wait(WINDOW_S)
                    met = True
                except threading.BrokenBarrierError:
                    pass
                return decision

            ready.wait()  # every process imported and started: the race begins now
            answer = await execute_command(store, Job(
                None, False, decide, lambda a: {"event_id": a.event.event_id}))
            results.put((incident_id, answer.status_code, met))

    asyncio.run(run())


async def dispatched_to(url: str) -> list[str]:
    async with open_store(url, DutyCalendar()) as store:
        return await dispatched(store)


def test_a_crew_sent_by_several_processes_at_once_is_sent_once(store_url: str) -> None:
    incidents = asyncio.run(crew_and_incidents(store_url, CONTENDERS))
    context = multiprocessing.get_context("spawn")
    ready, decided = context.Barrier(CONTENDERS), context.Barrier(CONTENDERS)
    results = context.Queue()
    processes = [context.Process(target=contend, args=(store_url, incident, ready, decided,
                                                       results))
                 for incident in incidents]
    for process in processes:
        process.start()
    try:
        answers = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    assert all(p.exitcode == 0 for p in processes)
    statuses = sorted(status for _, status, _ in answers)
    assert statuses == [201] + [409] * (CONTENDERS - 1), answers
    # All contenders meeting after deciding means they decided on the same state:
    # the lock did not serialise them.
    assert not all(met for _, _, met in answers), "every contender decided before any commit"
    winner = [incident for incident, status, _ in answers if status == 201]
    assert asyncio.run(dispatched_to(store_url)) == winner

