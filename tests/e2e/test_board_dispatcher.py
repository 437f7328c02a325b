"""The dispatcher's side of the board in a real browser (Debian's chromium driven by
Playwright): with a dispatcher's token the board shows the queue and the ranked
crews with their reasons, and a click on "Dispatch" sends the crew (the event is in
the store) and the incident leaves the queue (also when another dispatcher sends
one: the board follows the stream); with a viewer's token the page has
no write control at all, and the viewer's session cookie cannot write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.harness import Server, dispatch, serving
from tests.e2e import test_board
from tests.e2e.test_board import ARTIFACTS

browser = test_board.browser  # the same chromium fixture

VIEWER, DISPATCHER = "board-viewer-token-01", "board-dispatcher-token-02"
TOKENS = f"{VIEWER},{DISPATCHER}:dispatcher"


def post(server: Server, path: str, body: dict[str, Any]) -> Any:
    with server.client(DISPATCHER) as client:
        answer = client.post(path, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def prepare(tmp_path: Path) -> str:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "crews.csv").write_text(
        "crew,grid,skills\nURB-1-C1,URB-1,overhead\nURB-1-C2,URB-1,cable;overhead\n"
        "RUR-2-C1,RUR-2,cable\n", encoding="utf-8")
    done = dispatch("roster", str(tmp_path / "crews.csv"), "--store", store, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return store


def test_dispatcher_sends_a_crew_from_the_board(browser: Any, tmp_path: Path) -> None:
    store = prepare(tmp_path)
    with serving(store, tmp_path, env={"DISPATCH_API_TOKENS": TOKENS}) as server:
        normal = post(server, "/api/incidents", {"data": {
            "grid": "URB-1", "area": "urban", "customers_affected": 40}})["incident_id"]
        urgent = post(server, "/api/incidents", {"data": {
            "grid": "URB-1", "area": "urban", "priority": "vulnerable",
            "customers_affected": 3, "required_skill": "cable"}})["incident_id"]
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(f"{server.url}/#token={DISPATCHER}")
        queue = page.locator("#dispatch-queue tr[data-incident]")
        queue.first.wait_for(timeout=10_000)
        assert [queue.nth(n).get_attribute("data-incident") for n in range(queue.count())] == [
            urgent, normal]  # vulnerable first
        page.click(f'#dispatch-queue tr[data-incident="{urgent}"]')
        page.wait_for_function(
            f"document.querySelector('#dispatch-incident').textContent === '{urgent}'"
            " && document.querySelectorAll('#dispatch-recs li[data-crew]').length === 3")
        ranked = page.locator("#dispatch-recs li[data-crew]")
        assert [ranked.nth(n).get_attribute("data-crew") for n in range(3)] == [
            "URB-1-C2", "URB-1-C1", "RUR-2-C1"]  # same grid and skill, same grid, other
        reasons = ranked.first.locator(".reasons").inner_text()
        assert "same grid URB-1" in reasons and "has required skill cable" in reasons
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "board-dispatcher.png"), full_page=True)

        ranked.first.locator("button[data-action=dispatch]").click()
        page.wait_for_function(
            f"!document.querySelector('#dispatch-queue tr[data-incident=\"{urgent}\"]')",
            timeout=5_000)
        assert "URB-1-C2 dispatched" in page.inner_text("#dispatch-message")
        assert [queue.nth(n).get_attribute("data-incident") for n in range(queue.count())] == [
            normal]
        with server.client(VIEWER) as client:
            crews = {c["crew"]: c for c in client.get("/api/crews").json()["crews"]}
            events = client.get(f"/api/incidents/{urgent}").json()["events"]
        assert (crews["URB-1-C2"]["status"], crews["URB-1-C2"]["incident_id"]) == (
            "dispatched", urgent)
        assert [e["type"] for e in events].count("crew.dispatched") == 1
        # The busy crew is no longer offered for the other incident.
        page.wait_for_function(
            "document.querySelectorAll('#dispatch-recs li[data-crew]').length === 2")
        assert "URB-1-C2" not in page.inner_text("#dispatch-recs")
        page.screenshot(path=str(ARTIFACTS / "board-dispatcher-after.png"), full_page=True)
        # Another dispatcher's dispatch reaches this board through the live stream.
        post(server, f"/api/incidents/{normal}/events",
             {"type": "crew.dispatched", "data": {"crew": "URB-1-C1"}})
        page.wait_for_function(
            "!document.querySelector('#dispatch-queue tr[data-incident]')", timeout=5_000)


def test_a_viewer_sees_no_write_controls_and_cannot_write(browser: Any,
                                                          tmp_path: Path) -> None:
    store = prepare(tmp_path)
    with serving(store, tmp_path, env={"DISPATCH_API_TOKENS": TOKENS}) as server:
        incident = post(server, "/api/incidents", {"data": {
            "grid": "URB-1", "area": "urban"}})["incident_id"]
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(f"{server.url}/#token={VIEWER}")
        page.wait_for_function("document.querySelector('#link').className === 'live'",
                               timeout=10_000)
        page.locator(f'#open tr[data-incident="{incident}"]').wait_for(timeout=5_000)
        role = page.evaluate("fetch('/api/session').then((r) => r.json())")
        assert role == {"role": "viewer", "may_dispatch": False}
        page.wait_for_timeout(500)  # the dispatcher script had its chance to build
        assert page.locator("#dispatcher").count() == 0
        assert page.locator("button:visible, input:visible, [data-action]").count() == 0
        # Even with the board's header, the viewer's cookie may not write.
        status = page.evaluate(
            """(id) => fetch(`/api/incidents/${id}/events`, {method: "POST",
                 headers: {"Content-Type": "application/json", "X-Dispatch-Board": "1"},
                 body: JSON.stringify({type: "crew.dispatched", data: {crew: "URB-1-C1"}})})
               .then((r) => r.status)""", incident)
        assert status == 403
        # Without the header the cookie is not a credential for a write at all.
        status = page.evaluate(
            """(id) => fetch(`/api/incidents/${id}/events`, {method: "POST",
                 headers: {"Content-Type": "application/json"},
                 body: JSON.stringify({type: "call.verified"})}).then((r) => r.status)""",
            incident)
        assert status == 401
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "board-viewer.png"), full_page=True)
