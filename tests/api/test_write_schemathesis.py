"""schemathesis over the write side's routes with each role's token: whatever the
body, no answer is a 5xx and every status code is one the document declares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from dispatch.api.app import ServeOptions, create_app
from projections.stores.memory import MemoryStore
from tests.api.harness import Server, dispatch, serving

ROLES = {"viewer": "viewer-token-0001", "dispatcher": "dispatch-token-02",
         "crew": "crew1-token-00003"}
TOKENS = f"{ROLES['viewer']},{ROLES['dispatcher']}:dispatcher,{ROLES['crew']}:crew:C1"
DOCUMENT: dict[str, Any] = create_app(MemoryStore, ServeOptions(tokens=None)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
WRITE_PATHS = r"^/api/(incidents|incidents/\{incident_id\}/(events|recommendations)|crews|queue)$"


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.servers)])
def write_server(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("writes")
    if request.param == "sqlite":
        store = f"sqlite:///{folder / 'store.db'}"
    else:
        from tests.api.conftest import empty_postgres

        store = empty_postgres()
    (folder / "crews.csv").write_text("crew,grid,skills\nC1,G1,cable\nC2,G2,\n")
    done = dispatch("roster", str(folder / "crews.csv"), "--store", store, cwd=folder)
    assert done.returncode == 0, done.stderr
    with serving(store, folder, env={"DISPATCH_API_TOKENS": TOKENS}) as running:
        with httpx.Client(base_url=running.url, timeout=10, headers={
                "Authorization": f"Bearer {ROLES['dispatcher']}"}) as client:
            incident = client.post("/api/incidents",
                                   json={"data": {"grid": "G1", "area": "urban"}}).json()
            client.post(f"/api/incidents/{incident['incident_id']}/events",
                        json={"type": "crew.dispatched", "data": {"crew": "C1"}})
        yield running


@schema.include(path_regex=WRITE_PATHS).parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("role", sorted(ROLES))
def test_no_5xx_for_any_role(case: schemathesis.Case, role: str, write_server: Server) -> None:
    case.call_and_validate(base_url=write_server.url,
                           headers={"Authorization": f"Bearer {ROLES[role]}"},
                           checks=[not_a_server_error, status_code_conformance])
