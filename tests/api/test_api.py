"""The HTTP API of ``dispatch serve`` against a real server process, on SQLite and
PostgreSQL: auth, the same JSON as the CLI, incidents against an independent
fold, errors, and the published OpenAPI schemas matching real responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.api.harness import TOKEN, Server, dispatch
from tests.oracle import fold, incidents_of

ROUTES = ["/api/status", "/api/report", "/api/incidents", "/api/incidents/X", "/api/stream",
          "/api/duty/2026-07-01",
          "/api/alerts"]


def validate(body: Any, schema_name: str, document: dict[str, Any]) -> None:
    """Check ``body`` against ``#/components/schemas/NAME`` of the OpenAPI document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}",
              "components": document["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_every_api_route_needs_a_valid_token(server: Server) -> None:
    for token in (None, "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]):
        with server.client(token) as client:
            for route in ROUTES:
                response = client.get(route)
                assert response.status_code == 401, (token, route)
                assert response.json() == {"error": "a valid bearer token is required"}
                assert response.headers["www-authenticate"] == "Bearer"
    with server.client(None) as client:
        assert client.get("/").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        client.cookies.set("dispatch_token", "nope")
        assert client.get("/api/report").status_code == 401
    # Tokens never reach the log, valid or not.
    assert TOKEN not in server.stderr() and "wrong-token" not in server.stderr()


def test_session_cookie_lets_the_board_read(server: Server) -> None:
    with server.client(None) as client:
        refused = client.post("/api/session", json={"token": "not-the-token"})
        assert refused.status_code == 401
        assert client.get("/api/status").status_code == 401
        opened = client.post("/api/session", json={"token": TOKEN})
        assert opened.status_code == 204
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api" in cookie
        assert client.get("/api/status").status_code == 200
        # A cookie authorises reads only.
        assert client.delete("/api/session").status_code == 401
        assert client.delete("/api/session", headers={
            "Authorization": f"Bearer {TOKEN}"}).status_code == 204


def test_report_is_byte_for_byte_the_cli_report(server: Server, loaded: tuple[str, Path],
                                                tmp_path: Path) -> None:
    store, _ = loaded
    with server.client() as client:
        response = client.get("/api/report")
        assert response.status_code == 200
        cli = dispatch("report", "--store", store, "--format", "json", cwd=tmp_path)
        assert response.text == cli.stdout
        assert int(response.headers["x-change-seq"]) > 0
        berlin = client.get("/api/report", params={"duty_timezone": "Europe/Berlin",
                                                   "duty_start": "07:00"})
        cli = dispatch("report", "--store", store, "--duty-timezone", "Europe/Berlin",
                       "--duty-start", "07:00", cwd=tmp_path)
        assert berlin.text == cli.stdout
        validate(berlin.json(), "Report", client.get("/openapi.json").json())


def _oracle_incidents(events: Path) -> tuple[dict[str, Any], set[str]]:
    accepted, _, _ = fold(events.read_text(encoding="utf-8").splitlines())
    closed = {e.incident_id for e in accepted if e.type == "incident.closed"}
    return incidents_of(accepted), closed


def test_incidents_filters_and_paging_agree_with_an_independent_fold(
        server: Server, loaded: tuple[str, Path]) -> None:
    _, events = loaded
    incidents, closed = _oracle_incidents(events)
    want_open = {i for i, inc in incidents.items()
                 if not inc.ended and inc.t(6) is None and i not in closed}
    assert want_open, "the history should leave some incidents open"
    with server.client() as client:
        document = client.get("/openapi.json").json()
        got: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = client.get("/api/incidents", params={"state": "all", "limit": 17,
                                                        "offset": offset}).json()
            validate(page, "IncidentPage", document)
            assert page["total"] == len(incidents)
            got += page["items"]
            offset += 17
            if offset >= page["total"]:
                break
        assert sorted(i["incident_id"] for i in got) == sorted(incidents)
        assert len({i["incident_id"] for i in got}) == len(got)  # no page overlaps
        calls = [i["checkpoints"]["call"] for i in got if i["checkpoints"]["call"]]
        from datetime import datetime
        assert [datetime.fromisoformat(c) for c in calls] == sorted(
            datetime.fromisoformat(c) for c in calls)
        open_page = client.get("/api/incidents", params={"state": "open", "limit": 1000}).json()
        assert {i["incident_id"] for i in open_page["items"]} == want_open
        assert {i["state"] for i in open_page["items"]} == {"open"}
        one = got[0]
        grid = client.get("/api/incidents", params={"grid": one["grid"], "area": one["area"],
                                                    "limit": 1000}).json()
        assert grid["items"] and all(i["grid"] == one["grid"] and i["area"] == one["area"]
                                     for i in grid["items"])
        assert grid["total"] == sum(1 for i in got if (i["grid"], i["area"]) == (
            one["grid"], one["area"]))


def test_one_incident_is_what_the_cli_prints(server: Server, loaded: tuple[str, Path],
                                             tmp_path: Path) -> None:
    store, events = loaded
    incident_id = json.loads(events.read_text(encoding="utf-8").splitlines()[0])["incident_id"]
    with server.client() as client:
        response = client.get(f"/api/incidents/{incident_id}")
        assert response.status_code == 200
        cli = dispatch("incident", incident_id, "--store", store, "--format", "json",
                       cwd=tmp_path)
        assert response.json() == json.loads(cli.stdout)
        validate(response.json(), "IncidentDetail", client.get("/openapi.json").json())


@pytest.mark.parametrize(("params", "field"), [
    ({"state": "closed"}, "state"), ({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"),
    ({"offset": -1}, "offset"),
    # a NUL cannot be in any stored text (PostgreSQL refuses it): once a 503
    ({"grid": "a\x00b"}, "grid"), ({"area": "\x00"}, "area"),
])
def test_bad_incident_queries_are_422_naming_the_field(
        server: Server, params: dict[str, Any], field: str) -> None:
    with server.client() as client:
        response = client.get("/api/incidents", params=params)
    assert response.status_code == 422
    body = response.json()
    assert [f["field"] for f in body["fields"]] == [field]
    assert field in body["error"]


def test_an_incident_id_with_a_nul_is_422(server: Server) -> None:
    with server.client() as client:
        response = client.get("/api/incidents/INC%00X")
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["incident_id"]


@pytest.mark.parametrize(("params", "field"), [
    ({"duty_timezone": "Mars/Olympus"}, "duty_timezone"), ({"duty_start": "25:00"}, "duty_start"),
    ({"duty_start": "8h"}, "duty_start"),
])
def test_bad_report_queries_are_422_naming_the_field(
        server: Server, params: dict[str, Any], field: str) -> None:
    with server.client() as client:
        response = client.get("/api/report", params=params)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == [field]


def test_unknown_incident_is_a_json_404(server: Server) -> None:
    with server.client() as client:
        response = client.get("/api/incidents/INC-nope")
    assert response.status_code == 404
    assert response.json() == {"error": "no incident 'INC-nope'"}


def test_openapi_describes_real_schemas(server: Server) -> None:
    document = httpx.get(server.url + "/openapi.json").json()
    paths = document["paths"]
    for route in ("/api/report", "/api/incidents", "/api/incidents/{incident_id}",
                  "/api/stream", "/api/status"):
        assert route in paths
    report = document["components"]["schemas"]["Report"]
    assert set(report["required"]) >= {"duty_periods", "overall", "unattributed"}
    period = document["components"]["schemas"]["DutyPeriod"]
    assert period["properties"]["stages"] == {"$ref": "#/components/schemas/Stages"}
    assert "bearer" in json.dumps(document["components"]["securitySchemes"]).lower()
    with server.client() as client:
        validate(client.get("/api/status").json(), "Status", document)


def test_alerts_are_what_the_cli_prints_as_of_the_same_instant(
        server: Server, loaded: tuple[str, Path], tmp_path: Path) -> None:
    store, _ = loaded
    with server.client() as client:
        response = client.get("/api/alerts")
        assert response.status_code == 200
        document = response.json()
        validate(document, "Alerts", client.get("/openapi.json").json())
        cli = dispatch("alerts", "--store", store, "--as-of", document["as_of"], cwd=tmp_path)
        assert cli.returncode == 0, cli.stderr
        assert document == json.loads(cli.stdout)
        assert document["active"], "a history in the past leaves open incidents in breach"
        # The incidents' SLA rules agree with the active alerts.
        items = client.get("/api/incidents", params={"limit": 1000}).json()["items"]
        levels = {(i["incident_id"], rule): r["state"] for i in items
                  for rule, r in i["sla"].items() if r and r["state"] in ("warning", "breach")}
        assert levels == {(a["incident_id"], a["rule"]): a["level"] for a in document["active"]}
        for item in items:
            for rule in item["sla"].values():
                if rule and rule["state"] == "breach":
                    assert rule["minutes_left"] < 0


def test_duty_sheet_is_what_the_handover_command_prints(
        server: Server, loaded: tuple[str, Path], tmp_path: Path) -> None:
    store, _ = loaded
    with server.client() as client:
        day = client.get("/api/report").json()["duty_periods"][0]["duty_date"]
        response = client.get(f"/api/duty/{day}")
        assert response.status_code == 200
        cli = dispatch("handover", day, "--store", store, "--format", "json", cwd=tmp_path)
        assert cli.returncode == 0, cli.stderr
        assert response.text == cli.stdout
        validate(response.json(), "HandoverSheet", client.get("/openapi.json").json())
        bad = client.get("/api/duty/2026-13-01")
        assert bad.status_code == 422
        assert [f["field"] for f in bad.json()["fields"]] == ["duty_date"]
