"""``/api/stream`` end to end: live changes within a second or two of the commit,
resume with Last-Event-ID exactly once, resync past the retention, heartbeats,
and a store that goes away (503, then the stream carries on)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import history
from tests.api.harness import AUTH, EventStream, Frame, dispatch, serving


def ingest(store: str, events: Path, env: dict[str, str] | None = None) -> None:
    done = dispatch("ingest", str(events), "--store", store, cwd=events.parent, env=env)
    assert done.returncode == 0, done.stderr


def timeless(data: Any) -> Any:
    """``data`` without ``minutes_left`` (it depends on the moment it was sent)."""
    if isinstance(data, dict):
        return {k: timeless(v) for k, v in data.items() if k != "minutes_left"}
    return data


def replayable(frame: Frame) -> Any:
    """What a replay of ``frame`` must repeat exactly."""
    if frame.event == "period":
        return {k: v for k, v in frame.data.items() if k != "accountability"}
    return timeless(frame.data)


def read_until(stream: EventStream, head: int, limit_s: float = 20) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + limit_s
    while not frames or (frames[-1].id or 0) < head:
        assert time.monotonic() < deadline, f"only got to {frames[-1].id if frames else None}"
        frames.append(stream.next())
    return frames


def test_live_changes_then_resume_exactly_once(store_url: str, tmp_path: Path) -> None:
    ingest(store_url, history(tmp_path / "day1.jsonl", seed=1, days=1))
    with serving(store_url, tmp_path) as server, server.client() as client:
        before = int(client.get("/api/status").json()["change_seq"])
        assert before > 0
        stream = EventStream(client, params={"after": before})
        more = history(tmp_path / "day2.jsonl", seed=2, days=1, start=date(2026, 7, 2))
        started = time.monotonic()
        ingest(store_url, more)
        committed = time.monotonic()
        first = stream.next()
        assert time.monotonic() - committed < 2.0
        head = int(client.get("/api/status").json()["change_seq"])
        frames = [first, *read_until(stream, head)] if first.id != head else [first]
        stream.close()
        ids = [f.id for f in frames]
        assert ids == list(range(before + 1, head + 1))  # in order, none missing or twice
        kinds = {f.event for f in frames}
        # Alerts too: the ingest keeps the live SLA state, as of the wall clock.
        assert {"incident", "period"} <= kinds <= {"incident", "period", "alert"}
        periods = {f.data["duty_date"]: f.data for f in frames if f.event == "period"}
        report = client.get("/api/report").json()
        assert periods
        for period in report["duty_periods"]:
            if period["duty_date"] in periods:
                # The final state, as reported, accountability block included.
                assert periods[period["duty_date"]] == period
                assert period["accountability"]["handover"] or period["accountability"][
                    "agents"]
        latest: dict[str, Any] = {}
        for f in frames:
            if f.event == "incident":
                latest[f.data["incident_id"]] = f.data
        listed = client.get("/api/incidents", params={"limit": 1000}).json()["items"]
        for item in listed:
            if item["incident_id"] in latest:
                assert timeless(latest[item["incident_id"]]) == timeless(item)
        assert started < committed

        # Resume from the middle, as a browser does after a dropped connection.
        middle = ids[len(ids) // 2]
        again = EventStream(client, last_event_id=middle)
        resumed = read_until(again, head)
        again.close()
        assert [f.id for f in resumed] == list(range(middle + 1, head + 1))
        # The same changes; a period's accountability is read when a frame is sent,
        # so a replayed one may carry a newer team, owners or handover list.
        assert [replayable(f) for f in resumed] == [
            replayable(f) for f in frames if f.id > middle]
        last_period = {f.data["duty_date"]: f.data for f in resumed if f.event == "period"}
        for day, data in last_period.items():
            assert data == periods[day]
        # The header wins over ?after= (what EventSource sends on reconnect).
        both = EventStream(client, params={"after": 0}, last_event_id=head - 1)
        assert both.next().id == head
        both.close()


def test_a_point_older_than_the_retention_gets_one_resync(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    short = {"DISPATCH_CHANGE_RETENTION_DAYS": "0.000002"}  # 0.17 s
    ingest(store, history(tmp_path / "a.jsonl", seed=1, days=1), short)
    time.sleep(0.5)
    ingest(store, history(tmp_path / "b.jsonl", seed=2, days=1, start=date(2026, 7, 2)), short)
    with serving(store, tmp_path, env=short) as server, server.client() as client:
        status = client.get("/api/status").json()
        assert status["pruned_through"] > 1  # the first ingest's changes are gone
        stream = EventStream(client, last_event_id=1)
        frame = stream.next()
        stream.close()
        assert frame.event == "resync"
        assert frame.id == status["change_seq"]
        assert "older than the retained changes" in frame.data["reason"]
        kept = EventStream(client, last_event_id=status["pruned_through"])
        assert kept.next().id == status["pruned_through"] + 1  # still retained: no resync
        kept.close()


def test_idle_streams_get_heartbeats(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    ingest(store, history(tmp_path / "a.jsonl", seed=1, days=1))
    with serving(store, tmp_path, env={"DISPATCH_SSE_HEARTBEAT_SECONDS": "0.2"}) as server, \
            server.client() as client, client.stream("GET", "/api/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == "retry: 2000"
        started = time.monotonic()
        beats = 0
        for line in lines:
            if line == ": heartbeat":
                beats += 1
                if beats == 3:
                    break
        assert 0.4 < time.monotonic() - started < 3


class Proxy:
    """A TCP forwarder to PostgreSQL that the test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets.clear()


@pytest.mark.servers
def test_store_down_answers_503_and_the_stream_carries_on(pg_dsn: str, tmp_path: Path) -> None:
    ingest(pg_dsn, history(tmp_path / "a.jsonl", seed=1, days=1))
    host_port = pg_dsn.split("@", 1)[1].split("/", 1)[0]
    proxy = Proxy(("127.0.0.1", int(host_port.rsplit(":", 1)[1])))
    proxy.start()
    via_proxy = pg_dsn.replace(host_port, f"127.0.0.1:{proxy.port}")
    try:
        with serving(via_proxy, tmp_path) as server, server.client() as client:
            head = int(client.get("/api/status").json()["change_seq"])
            stream = EventStream(client, params={"after": head})
            proxy.cut()
            down = client.get("/api/report")
            assert down.status_code == 503
            assert down.json() == {"error": "store unavailable, retry shortly"}
            assert down.headers["retry-after"] == "2"
            assert "dispatch:dispatch" not in server.stderr()
            # Written while the server cannot see the store:
            ingest(pg_dsn, history(tmp_path / "b.jsonl", seed=2, days=1,
                                   start=date(2026, 7, 2)))
            time.sleep(1.0)
            proxy.start()
            frame = stream.next()  # the feed reconnected and resumed where it was
            assert frame.id == head + 1
            stream.close()
            deadline = time.monotonic() + 10
            while client.get("/api/report").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proxy.cut()


def test_serve_refuses_bad_setups_in_one_line(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    ingest(store, history(tmp_path / "a.jsonl", seed=1, days=1))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cases = [
            (["--port", str(port)], {}, f"port {port} on 127.0.0.1 is already in use"),
            (["--no-auth", "--host", "0.0.0.0"], {},
             "--no-auth is only allowed on a loopback host"),
            ([], {"DISPATCH_API_TOKENS": ""}, "no API tokens"),
            ([], {"DISPATCH_API_TOKENS": "short"}, "at least 8 characters"),
            ([], {"DISPATCH_API_TOKENS": "long-enough-token:admin"}, "unknown role"),
        ]
        for args, env, message in cases:
            done = dispatch("serve", "--store", store, *args, cwd=tmp_path,
                            env={"DISPATCH_API_TOKENS": "token-1234567890", **env}, timeout=30)
            assert done.returncode == 1, (args, done.stderr)
            assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
        missing = dispatch("serve", "--store", f"sqlite:///{tmp_path / 'none.db'}",
                           cwd=tmp_path, timeout=30)
        assert missing.returncode == 1 and "no store at" in missing.stderr
    finally:
        busy.close()


def test_no_auth_on_loopback_serves_without_tokens(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    ingest(store, history(tmp_path / "a.jsonl", seed=1, days=1))
    with serving(store, tmp_path, "--no-auth", env={"DISPATCH_API_TOKENS": ""}) as server:
        assert httpx.get(server.url + "/api/status").status_code == 200
        assert httpx.get(server.url + "/api/status", headers=AUTH).status_code == 200
