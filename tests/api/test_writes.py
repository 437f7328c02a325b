"""The write side through the real ``dispatch serve`` on SQLite and PostgreSQL:
roles, commands, crews, queue, recommendations, idempotent retries and the
concurrent dispatch of one crew (exactly one 201)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.harness import Server, dispatch, serving

VIEWER, DISPATCHER, CREW1, CREW3 = ("viewer-token-0001", "dispatch-token-02",
                                    "crew1-token-00003", "crew3-token-00004")
TOKENS = f"{VIEWER},{DISPATCHER}:dispatcher,{CREW1}:crew:C1,{CREW3}:crew:C3"


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Server]:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    created = dispatch("ingest", str(empty), "--store", store_url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    with serving(store_url, tmp_path, env={"DISPATCH_API_TOKENS": TOKENS}) as running:
        yield running


def post(server: Server, token: str, path: str, body: dict[str, Any],
         key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    with server.client(token) as client:
        return client.post(path, json=body, headers=headers)


def get(server: Server, path: str, token: str = VIEWER) -> Any:
    with server.client(token) as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def roster(server: Server) -> None:
    for crew, grid, skills in (("C1", "G1", ["overhead"]), ("C2", "G2", ["cable"]),
                               ("C3", "G1", ["cable"])):
        answer = post(server, DISPATCHER, "/api/crews",
                      {"crew": crew, "grid": grid, "skills": skills})
        assert answer.status_code == 201, answer.text


def call(server: Server, **data: Any) -> str:
    answer = post(server, DISPATCHER, "/api/incidents",
                  {"data": {"grid": "G1", "area": "urban", **data}})
    assert answer.status_code == 201, answer.text
    incident_id: str = answer.json()["incident_id"]
    return incident_id


def test_roles_and_a_whole_incident_from_call_to_close(server: Server) -> None:
    roster(server)
    with server.client(None) as anonymous:
        assert anonymous.post("/api/crews", json={"crew": "X", "grid": "G"}).status_code == 401
    assert post(server, VIEWER, "/api/crews", {"crew": "X", "grid": "G"}).status_code == 403
    assert post(server, CREW1, "/api/incidents",
                {"data": {"grid": "G1", "area": "urban"}}).status_code == 403
    assert post(server, DISPATCHER, "/api/crews", {"crew": "X"}).status_code == 422

    normal = call(server, priority="normal")
    urgent = call(server, priority="vulnerable", required_skill="cable")
    queue = [i["incident_id"] for i in get(server, "/api/queue")["incidents"]]
    assert queue == [urgent, normal]

    ranked = get(server, f"/api/incidents/{urgent}/recommendations")
    assert ranked["required_skill"] == "cable"
    assert [r["crew"] for r in ranked["recommendations"]] == ["C3", "C1", "C2"]
    assert ranked["recommendations"][0]["reasons"][:2] == ["same grid G1",
                                                           "has required skill cable"]
    assert post(server, VIEWER, f"/api/incidents/{urgent}/events",
                {"type": "crew.dispatched", "data": {"crew": "C3"}}).status_code == 403
    assert post(server, DISPATCHER, "/api/incidents/NOPE/events",
                {"type": "call.verified", "data": {}}).status_code == 404

    events = f"/api/incidents/{urgent}/events"
    assert post(server, DISPATCHER, events, {"type": "call.verified"}).status_code == 201
    assert post(server, DISPATCHER, events,
                {"type": "crew.dispatched", "data": {"crew": "C9"}}).status_code == 409
    assert post(server, DISPATCHER, events,
                {"type": "crew.dispatched", "data": {"crew": "C3"}}).status_code == 201
    assert [i["incident_id"] for i in get(server, "/api/queue")["incidents"]] == [normal]
    crews = {c["crew"]: c for c in get(server, "/api/crews")["crews"]}
    assert (crews["C3"]["status"], crews["C3"]["incident_id"]) == ("dispatched", urgent)
    assert [r["crew"] for r in get(server, f"/api/incidents/{normal}/recommendations")[
        "recommendations"]] == ["C1", "C2"]
    busy = post(server, DISPATCHER, f"/api/incidents/{normal}/events",
                {"type": "crew.dispatched", "data": {"crew": "C3"}})
    assert busy.status_code == 409 and "busy" in busy.json()["error"]

    # The crew's own token: only its own crew, only here.
    assert post(server, CREW1, events, {"type": "crew.departed",
                                        "data": {"crew": "C1"}}).status_code == 403
    assert post(server, CREW3, events, {"type": "crew.dispatched",
                                        "data": {"crew": "C3"}}).status_code == 403
    assert post(server, CREW3, events, {"type": "power.restored"}).status_code == 409
    for kind in ("crew.departed", "crew.arrived"):
        assert post(server, CREW3, events, {"type": kind,
                                            "data": {"crew": "C3"}}).status_code == 201
    crews = {c["crew"]: c for c in get(server, "/api/crews")["crews"]}
    assert crews["C3"]["status"] == "on_site"
    for kind in ("fault.diagnosed", "repair.completed", "power.restored"):
        assert post(server, CREW3, events, {"type": kind}).status_code == 201
    assert post(server, DISPATCHER, events, {"type": "incident.closed"}).status_code == 201
    closed = post(server, DISPATCHER, events, {"type": "call.verified"})
    assert closed.status_code == 409 and "closed" in closed.json()["error"]
    crews = {c["crew"]: c for c in get(server, "/api/crews")["crews"]}
    assert crews["C3"]["status"] == "available"
    ranked = get(server, f"/api/incidents/{normal}/recommendations")["recommendations"]
    assert [r["crew"] for r in ranked] == ["C1", "C3", "C2"]  # C3 arrived once today
    detail = get(server, f"/api/incidents/{urgent}")
    assert detail["checkpoints"]["restore"] is not None


def test_a_retry_with_the_same_key_answers_the_first_answer_and_writes_nothing(
        server: Server) -> None:
    roster(server)
    first = post(server, DISPATCHER, "/api/incidents",
                 {"data": {"grid": "G1", "area": "rural"}}, key="call-42")
    again = post(server, DISPATCHER, "/api/incidents",
                 {"data": {"grid": "G1", "area": "rural"}}, key="call-42")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = post(server, DISPATCHER, "/api/incidents",
                 {"data": {"grid": "G1", "area": "rural"}}, key="call-43")
    assert other.json()["incident_id"] != first.json()["incident_id"]
    assert len(get(server, "/api/queue")["incidents"]) == 2
    incident = first.json()["incident_id"]
    path = f"/api/incidents/{incident}/events"
    sent = [post(server, DISPATCHER, path, {"type": "crew.dispatched", "data": {"crew": "C1"}},
                 key="send-c1") for _ in range(3)]
    assert {r.status_code for r in sent} == {201}
    assert len({r.json()["event_id"] for r in sent}) == 1
    timeline = get(server, f"/api/incidents/{incident}")
    assert [e["type"] for e in timeline["events"]].count("crew.dispatched") == 1


def test_two_dispatchers_sending_one_crew_at_once_get_one_201(server: Server, store_url: str,
                                                               tmp_path: Path) -> None:
    roster(server)
    incidents = [call(server) for _ in range(8)]
    # Two server processes on one store: SQLite's and PostgreSQL's locks, not one
    # process's event loop, must keep the crew from being sent twice.
    with serving(store_url, tmp_path, env={"DISPATCH_API_TOKENS": TOKENS}) as other:

        def send(n: int) -> int:
            return post((server, other)[n % 2], DISPATCHER,
                        f"/api/incidents/{incidents[n]}/events",
                        {"type": "crew.dispatched", "data": {"crew": "C3"}}).status_code

        with ThreadPoolExecutor(len(incidents)) as pool:
            statuses = list(pool.map(send, range(len(incidents))))
    assert sorted(statuses) == [201] + [409] * (len(incidents) - 1)
    sent = [i for i, s in zip(incidents, statuses, strict=True) if s == 201]
    dispatched = [i for i in incidents
                  if "crew.dispatched" in [e["type"] for e in
                                           get(server, f"/api/incidents/{i}")["events"]]]
    assert dispatched == sent
