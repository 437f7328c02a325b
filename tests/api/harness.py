"""Running ``dispatch serve`` as a real process for the API, stream and board tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dispatch.api.app import ServeOptions, create_app
from projections.duty import DutyCalendar
from projections.ports import ProjectionStore
from projections.stores import open_store
from schemas.parsing import parse_event

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def dispatch(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dispatch.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8")


@contextmanager
def serving(store: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            port: int = 0) -> Iterator[Server]:
    """``dispatch serve --store STORE --port 0 ARGS``, up and answering, then stopped."""
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "dispatch.cli", "serve", "--store", store, "--port",
             str(port), *args], stdout=sink, stderr=sink, text=True, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO), "DISPATCH_API_TOKENS": TOKEN,
                 **(env or {})})
    try:
        url = _wait_listening(process, log)
        yield Server(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[str], log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+?)/ ", log.read_text(encoding="utf-8"))
        if found:
            url = found.group(1)
            while time.monotonic() < deadline:
                try:
                    httpx.get(url + "/", timeout=1)
                    return url
                except httpx.TransportError:
                    if process.poll() is not None:
                        break
                    time.sleep(0.05)
        if process.poll() is not None:
            raise AssertionError(f"dispatch serve exited {process.returncode}:\n"
                                 f"{log.read_text(encoding='utf-8')}")
        time.sleep(0.05)
    raise AssertionError("dispatch serve did not start in 30 s")


@dataclass
class Frame:
    id: int | None
    event: str
    data: Any


class EventStream:
    """A minimal SSE reader over httpx (the parts of the format the server uses)."""

    def __init__(self, client: httpx.Client, params: dict[str, Any] | None = None,
                 last_event_id: int | None = None) -> None:
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self._context = client.stream("GET", "/api/stream", params=params, headers=headers,
                                      timeout=httpx.Timeout(10, read=30))
        self.response = self._context.__enter__()
        self._lines = self.response.iter_lines()
        self.comments: list[str] = []

    def next(self) -> Frame:
        fields: dict[str, str] = {}
        for line in self._lines:
            if not line:
                if "data" in fields or "event" in fields:
                    return Frame(int(fields["id"]) if "id" in fields else None,
                                 fields.get("event", "message"),
                                 json.loads(fields["data"]) if "data" in fields else None)
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise EOFError("stream ended")

    def close(self) -> None:
        self._context.__exit__(None, None, None)


async def crew_and_incidents(url: str, incidents: int) -> list[str]:
    """Through the app in-process (no auth): register crew C1 on grid G1 in the store
    at ``url`` and open ``incidents`` urban incidents there; their ids."""
    calendar = DutyCalendar()
    async with open_store(url, calendar):
        pass
    app = create_app(lambda: open_store(url, calendar), ServeOptions(tokens=None))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://app") as client:
            answer = await client.post("/api/crews", json={"crew": "C1", "grid": "G1"})
            assert answer.status_code == 201, answer.text
            made = []
            for _ in range(incidents):
                answer = await client.post("/api/incidents",
                                           json={"data": {"grid": "G1", "area": "urban"}})
                assert answer.status_code == 201, answer.text
                made.append(answer.json()["incident_id"])
            return made
    finally:
        await app.state.pool.close()


async def dispatched(store: ProjectionStore) -> list[str]:
    """The incident ids of the store's ``crew.dispatched`` events, sorted."""
    return sorted(parse_event(raw).incident_id or ""
                  for raw in await store.events_of_types({"crew.dispatched"}))
