"""Group commit on SQLite and PostgreSQL: commands written in one block are each
decided on the state that includes the commands before them in the block (one
crew sent to many incidents at once: one 201), a retry with the same key in the
same block answers the first answer, a command whose decision fails fails alone,
and nothing is answered before the block is committed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi.responses import Response

from dispatch.api.app import ServeOptions, create_app
from dispatch.api.group_commit import CommandWriter, Job, execute_commands
from dispatch.api.writes import decide_incident_event
from dispatch.cli.render import render
from dispatch.commands import DISPATCHER, Command, Decision, decide_call
from projections.duty import DutyCalendar
from projections.ports import ProjectionStore
from projections.queries import duty_report
from projections.stores import open_store
from tests.api.harness import crew_and_incidents, dispatched
from tests.oracle import compare_reports, oracle_report


def dispatch_job(incident_id: str, key: str | None = None) -> Job:
    async def decide(store: ProjectionStore) -> Decision:
        return await decide_incident_event(
            store, incident_id, Command("crew.dispatched", {"crew": "C1"}, None), DISPATCHER)

    return Job(key, False, decide, lambda a: {"event_id": a.event.event_id})


def test_one_block_decides_each_command_on_the_ones_before_it(store_url: str) -> None:
    incidents = asyncio.run(crew_and_incidents(store_url, 4))

    async def scenario() -> tuple[list[Job], list[str]]:
        async with open_store(store_url, DutyCalendar()) as store:
            jobs = [dispatch_job(incidents[0]), dispatch_job(incidents[0], key="k1"),
                    dispatch_job(incidents[0], key="k1"),  # a retry, in the same block
                    *(dispatch_job(i) for i in incidents[1:])]
            assert await execute_commands(store, jobs) == 1
            return jobs, await dispatched(store)

    jobs, logged = asyncio.run(scenario())
    answers = [j.result for j in jobs]
    assert all(isinstance(a, Response) for a in answers), answers
    statuses = [a.status_code for a in answers if isinstance(a, Response)]
    # C1 may be sent to incident 0 again; the retry answers the first answer; C1 is
    # busy for every other incident: the block saw its own first commands.
    assert statuses == [201, 201, 201, 409, 409, 409]
    assert answers[1].body == answers[2].body  # type: ignore[union-attr]
    assert logged == [incidents[0]] * 2


def test_a_decision_that_fails_fails_alone(store_url: str) -> None:
    incidents = asyncio.run(crew_and_incidents(store_url, 1))

    async def broken(_: ProjectionStore) -> Decision:
        raise ValueError("a decision that fails")

    async def scenario() -> tuple[list[Job], list[str]]:
        async with open_store(store_url, DutyCalendar()) as store:
            jobs = [dispatch_job(incidents[0]), Job(None, False, broken, lambda a: {})]
            await execute_commands(store, jobs)
            return jobs, await dispatched(store)

    jobs, logged = asyncio.run(scenario())
    assert isinstance(jobs[0].result, Response) and jobs[0].result.status_code == 201
    assert isinstance(jobs[1].result, ValueError)
    assert logged == incidents


def test_concurrent_requests_share_blocks_and_send_a_crew_once(store_url: str) -> None:
    incidents = asyncio.run(crew_and_incidents(store_url, 12))
    calendar = DutyCalendar()

    async def scenario() -> tuple[list[int], CommandWriter]:
        app = create_app(lambda: open_store(store_url, calendar), ServeOptions(tokens=None))
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://app") as client:
                answers = await asyncio.gather(*(
                    client.post(f"/api/incidents/{i}/events",
                                json={"type": "crew.dispatched", "data": {"crew": "C1"}})
                    for i in incidents))
            return [a.status_code for a in answers], app.state.command_writer
        finally:
            await app.state.pool.close()

    statuses, writer = asyncio.run(scenario())
    assert sorted(statuses) == [201] + [409] * (len(incidents) - 1)
    assert writer.commands == len(incidents)
    assert writer.blocks < writer.commands  # requests that came during a commit shared one

    async def logged() -> list[str]:
        async with open_store(store_url, calendar) as store:
            return await dispatched(store)

    assert len(asyncio.run(logged())) == 1


@pytest.mark.parametrize("size", [1, 3])
def test_the_writer_answers_only_after_the_commit(size: int, tmp_path: Any) -> None:
    """A store whose commit fails: every job of the block gets the failure, none an answer."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    incidents = asyncio.run(crew_and_incidents(url, size))

    async def scenario() -> list[Any]:
        async with open_store(url, DutyCalendar()) as store:
            async def fail(**_: object) -> None:
                raise OSError("disk full")

            store.finish = fail  # type: ignore[method-assign]
            writer = CommandWriter()
            return await asyncio.gather(*(writer.submit(store, dispatch_job(i))
                                          for i in incidents), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, OSError) for o in outcomes), outcomes


def test_a_block_folds_each_command_once(store_url: str) -> None:
    """Calls, verifications and a dispatch staged in one transaction: the stored
    report equals the naive oracle's report of the logged events."""
    asyncio.run(crew_and_incidents(store_url, 0))

    def call(n: int) -> Job:
        async def decide(_: ProjectionStore) -> Decision:
            return decide_call(Command("call.received", {"grid": "G1", "area": "urban"},
                                       f"2026-07-01T0{n}:00:00Z"), DISPATCHER,
                               incident_id=f"INC-{n}", event_id=f"call-{n}",
                               now="2026-07-01T09:30:00Z")
        return Job(None, False, decide, lambda a: {})

    def event(n: int, kind: str, minute: int, data: dict[str, Any]) -> Job:
        async def decide(store: ProjectionStore) -> Decision:
            return await decide_incident_event(
                store, f"INC-{n}", Command(kind, data, f"2026-07-01T0{n}:{minute:02d}:00Z"),
                DISPATCHER)
        return Job(None, False, decide, lambda a: {})

    jobs = [call(1), call(2), event(1, "call.verified", 5, {}), call(3),
            event(2, "call.verified", 7, {}), event(1, "crew.dispatched", 9, {"crew": "C1"}),
            event(3, "call.rejected", 9, {"reason": "duplicate"})]

    async def scenario() -> tuple[Any, list[str]]:
        async with open_store(store_url, DutyCalendar()) as store:
            assert await execute_commands(store, jobs) == 1  # one block, not tried alone
            report = await duty_report(store, None)
            kinds = {"call.received", "call.verified", "call.rejected", "crew.dispatched",
                     "crew.rostered"}
            return report, [raw.decode() for raw in await store.events_of_types(kinds)]

    report, lines = asyncio.run(scenario())
    assert [j.result.status_code for j in jobs] == [201] * len(jobs)  # type: ignore[union-attr]
    calendar = DutyCalendar()
    oracle = oracle_report(lines, calendar.timezone, calendar.start_text)
    engine = json.loads(render(report, "json"))
    problems = compare_reports(engine, oracle)
    assert not problems, "\n".join(problems)
    assert sum(p["calls"] for p in engine["duty_periods"]) == 3
