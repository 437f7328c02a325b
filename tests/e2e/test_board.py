"""The control-room board in a real browser (Debian's chromium driven by Playwright):
it signs in with the token from the URL fragment, shows the store, and follows new
events live, without reloading, within 2 s, also across a server restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from projections.duty import DutyCalendar
from tests.api.conftest import history
from tests.api.harness import REPO, TOKEN, dispatch, serving
from tests.conftest import REQUIRE_SERVERS

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("DISPATCH_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if REQUIRE_SERVERS:
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def fresh_incident(path: Path, incident_id: str, minutes_ago: float, **more: str) -> Path:
    """A call received ``minutes_ago`` (so in the duty period running now), and
    ``more`` events ``type=minutes_ago`` after it."""
    now = datetime.now(UTC)

    def at(minutes: float) -> str:
        return (now - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")

    lines = [{"event_id": f"{incident_id}-call", "type": "call.received",
              "incident_id": incident_id, "occurred_at": at(minutes_ago), "schema_version": 1,
              "data": {"grid": "URB-9", "area": "urban", "priority": "vulnerable"}}]
    for kind, ago in more.items():
        lines.append({"event_id": f"{incident_id}-{kind}", "type": kind.replace("_", "."),
                      "incident_id": incident_id, "occurred_at": at(float(ago)),
                      "schema_version": 1, "data": {}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def half_a_day_ago() -> DutyCalendar:
    """The default duty zone with periods starting 12 hours before now (to the minute):
    the incidents of the last hour fall in the period running now at any time of day
    (with the default 08:30 start, a call 50 minutes old belongs to the period before
    from 08:30 to 09:20 local time)."""
    zone = DutyCalendar().zone
    return DutyCalendar(start=(datetime.now(zone) - timedelta(hours=12)).time().replace(
        second=0, microsecond=0))


def test_board_follows_the_stream_live_and_across_a_restart(browser: object,
                                                            tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    calendar = half_a_day_ago()
    env = {"DISPATCH_DUTY_START": calendar.start_text}
    # Two simulated days that end before the period running now begins (the simulator
    # cuts its days at 08:30 local time), so the board looks like a real day.
    today = calendar.duty_date(time.time_ns() // 1000)
    loaded = dispatch("ingest", str(history(tmp_path / "history.jsonl",
                                            start=today - timedelta(days=3))),
                      "--store", store, cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stderr
    page = browser.new_page(viewport={"width": 1500, "height": 950})  # type: ignore[attr-defined]
    with serving(store, tmp_path) as server:
        port = server.url.rsplit(":", 1)[1]
        page.goto(f"{server.url}/#token={TOKEN}")
        page.wait_for_function("document.querySelector('#link').className === 'live'",
                               timeout=10_000)
        assert "token" not in page.url  # the fragment is dropped once exchanged
        calls_before = page.inner_text("#kpi-calls .value")
        assert calls_before not in ("—", "1")  # the last simulated period's calls
        assert page.locator("#open tr[data-incident]").count() > 0
        page.evaluate("window.__sameDocument = true")

        new = fresh_incident(tmp_path / "new.jsonl", "INC-LIVE-1", minutes_ago=25)
        ingested = dispatch("ingest", str(new), "--store", store, cwd=tmp_path, env=env)
        assert ingested.returncode == 0, ingested.stderr
        committed = time.monotonic()
        row = page.locator('#open tr[data-incident="INC-LIVE-1"]')
        row.wait_for(timeout=2_000)
        page.wait_for_function("document.querySelector('#kpi-calls .value').textContent === '1'",
                               timeout=max(1, int(2_000 - (time.monotonic() - committed) * 1000)))
        assert time.monotonic() - committed < 2.0
        # Vulnerable urban call 25 min ago: arrival limit 30 min, warning after 22.5.
        assert row.get_attribute("class") == "warning"
        assert page.inner_text("#kpi-incidents .value") == "1"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "board.png"), full_page=True)

    page.wait_for_function("document.querySelector('#link').className === 'down'",
                           timeout=10_000)
    restored = fresh_incident(tmp_path / "more.jsonl", "INC-LIVE-1", minutes_ago=25,
                              crew_arrived="10", power_restored="1")
    second = fresh_incident(tmp_path / "second.jsonl", "INC-LIVE-2", minutes_ago=50)
    for path in (restored, second):  # written while no server runs
        done = dispatch("ingest", str(path), "--store", store, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    with serving(store, tmp_path, port=int(port)):
        page.locator('#open tr[data-incident="INC-LIVE-2"]').wait_for(timeout=15_000)
        page.wait_for_function(
            "!document.querySelector('#open tr[data-incident=\"INC-LIVE-1\"]')", timeout=5_000)
        assert page.locator('#open tr[data-incident="INC-LIVE-2"]').get_attribute(
            "class") == "breach"
        assert page.inner_text("#kpi-calls .value") == "2"
        assert page.inner_text("#kpi-restored .value") == "1"
        assert page.evaluate("window.__sameDocument") is True  # never reloaded
        page.screenshot(path=str(ARTIFACTS / "board-after-restart.png"), full_page=True)


def test_board_without_a_token_asks_for_one(browser: object, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    assert dispatch("ingest", str(history(tmp_path / "h.jsonl", days=1)), "--store", store,
                    cwd=tmp_path).returncode == 0
    page = browser.new_page()  # type: ignore[attr-defined]
    with serving(store, tmp_path) as server:
        page.goto(server.url + "/")
        page.locator("#login-token").wait_for(state="visible", timeout=5_000)
        page.fill("#login-token", "wrong-token-123")
        page.click("#login-form button")
        page.wait_for_function("document.querySelector('#login-error').textContent !== ''")
        page.fill("#login-token", TOKEN)
        page.click("#login-form button")
        page.wait_for_function("document.querySelector('#link').className === 'live'",
                               timeout=10_000)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.reload()
        page.wait_for_function("document.querySelector('#link').className === 'live'",
                               timeout=10_000)
        assert requests and all(u.startswith(server.url) for u in requests)  # no outside asset
