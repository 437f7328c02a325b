"""Any sequence of commands, sent through the HTTP app: the accepted ones form a
history whose report (``GET /api/report``, the CLI's JSON) equals the naive
oracle's report of the events in the log, and every refusal left nothing behind.
Run on SQLite and on PostgreSQL (a fresh schema for every example)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.api.app import ServeOptions, create_app
from projections.duty import DutyCalendar
from projections.stores import open_store
from tests.api.conftest import empty_postgres
from tests.oracle import compare_reports, oracle_report

BASE = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
KINDS = ("call", "call.verified", "call.rejected", "call.merged", "crew.dispatched",
         "crew.departed", "crew.arrived", "fault.diagnosed", "repair.completed",
         "power.restored", "incident.closed")
CREWS = ("C1", "C2", "C3")

steps = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 5), st.sampled_from(CREWS),
                           st.integers(0, 240), st.booleans()), min_size=1, max_size=30)


def body_for(kind: str, crew: str, remote: bool, at: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if kind.startswith("crew."):
        data["crew"] = crew
    elif kind == "call.rejected":
        data["reason"] = "customer side"
    elif kind == "call.merged":
        data["into_incident_id"] = "INC-OTHER"
    elif kind == "power.restored" and remote:
        data["remote_switching"] = True
    return {"type": kind, "occurred_at": at.isoformat(), "data": data}


async def drive(app: Any, plan: list[tuple[Any, ...]]) -> list[Any]:
    """Send the plan's commands; returns [accepted count, the engine's report]."""
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for crew, grid in (("C1", "G1"), ("C2", "G1"), ("C3", "G2")):
                answer = await client.post("/api/crews", json={"crew": crew, "grid": grid})
                assert answer.status_code == 201, answer.text
            incidents: list[str] = []
            accepted = 0
            at = BASE
            for kind, target, crew, minutes, remote in plan:
                at += timedelta(minutes=minutes)
                before = (await client.get("/api/status")).json()
                if kind == "call" or not incidents:
                    answer = await client.post("/api/incidents", json={
                        "occurred_at": at.isoformat(),
                        "data": {"grid": "G1", "area": "urban"}})
                    assert answer.status_code == 201, answer.text
                    incidents.append(answer.json()["incident_id"])
                else:
                    incident = incidents[target % len(incidents)]
                    answer = await client.post(f"/api/incidents/{incident}/events",
                                               json=body_for(kind, crew, remote, at))
                    assert answer.status_code in (201, 409), answer.text
                    if answer.status_code == 409:
                        after = (await client.get("/api/status")).json()
                        assert after["change_seq"] == before["change_seq"], "a refusal wrote"
                        continue
                accepted += 1
            return [accepted, (await client.get("/api/report")).json()]
    finally:
        await app.state.pool.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.servers)])
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps)
def test_accepted_commands_report_as_the_oracle_does(backend: str,
                                                     plan: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = (f"sqlite:///{Path(folder) / 'store.db'}" if backend == "sqlite"
               else empty_postgres())
        calendar = DutyCalendar()

        async def create() -> None:
            async with open_store(url, calendar):
                pass

        asyncio.run(create())
        app = create_app(lambda: open_store(url, calendar), ServeOptions(tokens=None))
        accepted = asyncio.run(drive(app, plan))
        engine = accepted.pop()

        async def logged() -> list[str]:
            async with open_store(url, calendar) as store:
                kinds = {"call.received", *KINDS, "crew.rostered"}
                return [raw.decode() for raw in await store.events_of_types(kinds)]

        lines = asyncio.run(logged())
        assert len(lines) == accepted[0] + 3
        oracle = oracle_report(lines, calendar.timezone, calendar.start_text)
        problems = compare_reports(json.loads(json.dumps(engine)), oracle)
        assert not problems, "\n".join(problems)
