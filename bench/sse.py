"""Live API benchmark: SSE fan-out under worker load, and ``/api/report`` throughput.

Part 1, the stream. Kafka -> ``dispatch worker`` -> PostgreSQL -> ``dispatch serve``
-> N subscribers (default 200, spread over ``--client-processes``, default 4: the
clients of a real server sit on other machines) of ``/api/stream``, while events
are produced at a steady rate (default 2,000 events/s):
- latency of each change = the moment a subscriber read its frame minus the
  ``committed_us`` the worker stamped on the change row (taken inside the
  committing transaction, so the figure slightly overstates the latency);
- baseline in the same run: a bare PostgreSQL ``LISTEN`` client on the same
  channel, which sees each commit's notification with no HTTP, JSON or fan-out;
- every subscriber must receive every change id once, in order (reported as
  missing / duplicated / out of order);
- server RSS (peak) and CPU (share of one core over the measured window).

Part 2, ``/api/report`` requests/s against an SQLite store of ``--report-events``
(default 1,000,000) simulated events, with ``--clients`` concurrent keep-alive
connections of a bare HTTP/1.1 client (it reads each body by its length and
decodes nothing), asking for the gzip encoding and then for the identity one;
baseline in the same run: ``/api/status`` (the smallest authenticated route: the
HTTP stack's ceiling here) and one ``dispatch report`` process.

    .venv/bin/python bench/sse.py                     # both parts
    .venv/bin/python bench/sse.py --skip-report       # part 1 only

Needs the local stack (deploy/local/up.sh). Uses the database ``dispatch_bench_live``
(created if missing) and a topic of its own; leaves no process running.
"""

# The measuring loop polls marker files and child processes between its awaits on
# purpose: it runs beside the subscribers, and a blocking stat costs microseconds.
# ruff: noqa: ASYNC110, ASYNC240

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvloop

from schemas.events import kafka_key
from schemas.parsing import InvalidEvent, parse_event

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOKEN = "bench-token-" + uuid.uuid4().hex
ADMIN_DSN = "postgresql://dispatch:dispatch@127.0.0.1:5432/dispatch"
BENCH_DB = "dispatch_bench_live"
ID = re.compile(rb"^id: (\d+)$", re.MULTILINE)


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}  ({load()})", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def start_server(store: str, workdir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DISPATCH_API_TOKENS": TOKEN}
    with log.open("wb") as sink:
        proc = subprocess.Popen([PY, "-m", "dispatch.cli", "serve", "--store", store,
                                 "--port", "0"], stdout=sink, stderr=sink, cwd=workdir, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+?)/ ", log.read_text(errors="replace"))
        if found:
            url = found.group(1)
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    return proc, url
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError("serve did not start")


# --------------------------------------------------------------------------- part 1


class Subscriber:
    """A bare SSE client: one HTTP/1.1 request, ids and arrival times of frames."""

    def __init__(self, host: str, port: int, after: int, token: str = TOKEN) -> None:
        self.host, self.port, self.after, self.token = host, port, after, token
        self.ids: list[int] = []
        self.times: list[int] = []
        self.connected = asyncio.Event()
        self.ended = False

    async def run(self, until: list[int]) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        writer.write(f"GET /api/stream?after={self.after} HTTP/1.1\r\nHost: {self.host}\r\n"
                     f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n"
                     .encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"stream refused: {head[:200]!r}")
        self.connected.set()
        carry = b""
        try:
            while not until or not self.ids or self.ids[-1] < until[0]:
                data = await reader.read(1 << 20)
                if not data:
                    self.ended = True
                    return
                now = time.time_ns() // 1000
                carry += data
                cut = carry.rfind(b"\n\n")
                if cut < 0:
                    continue
                found = [int(m) for m in ID.findall(carry, 0, cut)]
                carry = carry[cut:]
                self.ids += found
                self.times += [now] * len(found)
        finally:
            writer.close()


def subscribers_child(host: str, port: int, after: int, token: str, count: int,
                      folder: str, name: str) -> None:
    """``count`` subscribers in their own process (clients of a real server sit on
    other machines: one Python process reading 200 streams measures itself).
    Touches ``NAME.ready`` once connected, stops once ``final`` (the last change id)
    appears and every stream reached it, and writes ``NAME.json``."""

    async def run() -> None:
        subscribers = [Subscriber(host, port, after, token) for _ in range(count)]
        final: list[int] = []
        tasks = [asyncio.create_task(s.run(final)) for s in subscribers]
        await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in subscribers)), 120)
        base = Path(folder)
        (base / f"{name}.ready").touch()
        cpu_before = time.process_time()
        while not (base / "final").exists():
            await asyncio.sleep(0.05)
        final.append(int((base / "final").read_text()))
        _, pending = await asyncio.wait(tasks, timeout=120)
        for task in pending:
            task.cancel()
        (base / f"{name}.json").write_bytes(orjson.dumps({
            "cpu_s": time.process_time() - cpu_before,
            "streams": [{"ids": s.ids, "times": s.times, "ended": s.ended,
                         "unfinished": task in pending}
                        for s, task in zip(subscribers, tasks, strict=True)]}))

    # The clients share the server's two cores: the leaner their loop, the less the
    # figure measures them instead of the server.
    uvloop.run(run())


def message_key(raw: bytes) -> bytes:
    """The key ``dispatch produce`` gives the line (incident id, ``duty``, ...)."""
    try:
        return kafka_key(parse_event(raw)).encode()
    except InvalidEvent:
        return str(orjson.loads(raw).get("incident_id") or "").encode()


def produce_child(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]],
                  rate: float, result: Any) -> None:
    """Runs in its own process, so the subscribers' reads do not slow the producer."""
    result.value = produce_at_rate(bootstrap, topic, messages, rate)


def listen_child(dsn: str, stop_file: str, out_file: str) -> None:
    """The baseline, in its own process: a bare LISTEN client on the change channel."""

    async def run() -> None:
        seen: list[tuple[int, int]] = []
        conn = await asyncpg.connect(dsn)
        await conn.add_listener("dispatch_changes", lambda _c, _p, _ch, payload: seen.append(
            (int(payload), time.time_ns() // 1000)))
        Path(out_file + ".ready").touch()
        while not Path(stop_file).exists():
            await asyncio.sleep(0.2)
        await conn.close()
        Path(out_file).write_text(json.dumps(seen))

    uvloop.run(run())


def produce_at_rate(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]],
                    rate: float) -> float:
    from dispatch.kafka.producer import make_producer

    producer = make_producer(bootstrap)
    started = last = time.perf_counter()
    bucket, burst, i = 0.0, max(1.0, rate * 0.01), 0
    while i < len(messages):
        now = time.perf_counter()
        bucket = min(burst, bucket + (now - last) * rate)
        last = now
        while bucket >= 1.0 and i < len(messages):
            key, value = messages[i]
            producer.produce(topic, value=value, key=key)
            bucket -= 1.0
            i += 1
        producer.poll(0)
        time.sleep(max(0.0, (1.0 - bucket) / rate))
    seconds = time.perf_counter() - started
    producer.flush(60)
    return len(messages) / seconds


async def reset_database() -> str:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", BENCH_DB):
            await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    finally:
        await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + BENCH_DB
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    return dsn


def stream_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    dsn = asyncio.run(reset_database())
    run_id = uuid.uuid4().hex[:8]
    topic, group = f"bench.live.{run_id}", f"bench-live-{run_id}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DISPATCH_KAFKA_BOOTSTRAP": args.bootstrap,
           "DISPATCH_PG_DSN": dsn, "DISPATCH_TOPIC_EVENTS": topic,
           "DISPATCH_TOPIC_DLQ": f"{topic}.dlq", "DISPATCH_CONSUMER_GROUP": group,
           "DISPATCH_PARTITIONS": "6", "DISPATCH_METRICS_PORT": "0"}
    warmup = 600
    total = warmup + int(args.rate * args.seconds)
    events = workdir / "stream-events.jsonl"
    say(f"part 1: simulating {total:,} events")
    subprocess.run([PY, "-m", "dispatch.cli", "simulate", "--events", str(total),
                    "-o", str(events)], check=True, env=env, cwd=workdir,
                   stdout=subprocess.DEVNULL)
    messages = []
    with events.open("rb") as fh:
        for line in fh:
            raw = line.rstrip(b"\n")
            messages.append((message_key(raw), raw))
    messages = messages[:total]
    subprocess.run([PY, "-m", "dispatch.cli", "topics"], check=True, env=env, cwd=workdir,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker_log = workdir / "worker.log"
    with worker_log.open("wb") as sink:
        worker = subprocess.Popen([PY, "-m", "dispatch.cli", "worker", "--metrics-port", "0"],
                                  env=env, cwd=workdir, stdout=sink, stderr=sink)
    server = None
    try:
        produce_at_rate(args.bootstrap, topic, messages[:warmup], 10_000)
        asyncio.run(_wait_positions(dsn, topic, warmup, worker, worker_log))
        server, url = start_server(dsn, workdir, workdir / "serve.log")
        result = asyncio.run(_measure(args, url, dsn, topic, messages[warmup:], server.pid))
        say(f"part 1: produced {result['rate_produced']:,}/s; latency p50 "
            f"{result['latency_ms']['p50']:.0f} ms p99 {result['latency_ms']['p99']:.0f} ms; "
            f"bare LISTEN p50 {result['baseline_listen_ms']['p50']:.0f} ms p99 "
            f"{result['baseline_listen_ms']['p99']:.0f} ms; missing {result['missing']}, "
            f"duplicated {result['duplicated']}")
        return result
    finally:
        if server is not None:
            stop(server)
        stop(worker)


async def _wait_positions(dsn: str, topic: str, n: int, worker: subprocess.Popen[bytes],
                          log: Path) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                done = await conn.fetchval(
                    "SELECT coalesce(sum(next_position), 0) FROM positions WHERE source = $1",
                    topic)
                if done >= n:
                    return
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not catch up, see {log}")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _measure(args: argparse.Namespace, url: str, dsn: str, topic: str,
                   messages: list[tuple[bytes, bytes]], server_pid: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = await asyncpg.connect(dsn)
    head = int(await conn.fetchval("SELECT seq FROM change_head"))
    spawn = multiprocessing.get_context("spawn")
    folder = args.workdir_path / "clients"
    folder.mkdir(exist_ok=True)
    for stale in folder.iterdir():  # from an earlier run here
        stale.unlink()
    shares = [args.subscribers // args.client_processes
              + (1 if k < args.subscribers % args.client_processes else 0)
              for k in range(args.client_processes)]
    clients = [spawn.Process(target=subscribers_child,
                             args=(host, int(port), head, TOKEN, n, str(folder),
                                   f"client{k}"))
               for k, n in enumerate(shares) if n]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 180
    while not all((folder / f"client{k}.ready").exists() for k in range(len(clients))):
        if time.monotonic() > deadline or any(c.exitcode not in (None, 0) for c in clients):
            raise RuntimeError("the subscribers did not connect")
        await asyncio.sleep(0.05)
    say(f"part 1: {args.subscribers} subscribers in {len(clients)} processes connected at "
        f"change {head}; producing {len(messages):,} events at {args.rate:,.0f}/s")
    stop_file, out_file = str(args.workdir_path / "listen.stop"), str(
        args.workdir_path / "listen.json")
    for stale in (stop_file, out_file, out_file + ".ready"):  # from an earlier run here
        Path(stale).unlink(missing_ok=True)
    listener = spawn.Process(target=listen_child, args=(dsn, stop_file, out_file))
    listener.start()
    while not Path(out_file + ".ready").exists():
        await asyncio.sleep(0.05)
    cpu_before, wall_before = cpu_seconds(server_pid), time.monotonic()
    rate_value = spawn.Value("d", 0.0)
    producer = spawn.Process(target=produce_child,
                             args=(args.bootstrap, topic, messages, args.rate, rate_value))
    producer.start()
    while producer.is_alive():
        await asyncio.sleep(0.2)
    produced_rate = rate_value.value
    # Wait for the worker to commit everything, then for the subscribers to see the head.
    total = len(messages) + 600
    deadline = time.monotonic() + 300
    while await conn.fetchval("SELECT coalesce(sum(next_position), 0) FROM positions "
                              "WHERE source = $1", topic) < total:
        if time.monotonic() > deadline:
            raise RuntimeError("worker fell behind by more than 300 s")
        await asyncio.sleep(0.2)
    end_head = int(await conn.fetchval("SELECT seq FROM change_head"))
    wall = time.monotonic() - wall_before
    server_cpu = cpu_seconds(server_pid) - cpu_before
    (folder / "final").write_text(str(end_head))
    for client in clients:
        await asyncio.to_thread(client.join, 200)
    Path(stop_file).touch()
    await asyncio.to_thread(listener.join, 30)
    baseline = [tuple(pair) for pair in json.loads(Path(out_file).read_text())]
    committed = dict(await conn.fetch("SELECT seq, committed_us FROM changes WHERE seq > $1",
                                      head))
    await conn.close()
    expected = set(range(head + 1, end_head + 1))
    latencies: list[float] = []
    missing = duplicated = disordered = ended = unfinished = 0
    client_cpu = 0.0
    for k in range(len(clients)):
        result = orjson.loads((folder / f"client{k}.json").read_bytes())
        client_cpu += result["cpu_s"]
        for stream in result["streams"]:
            got: list[int] = stream["ids"]
            unfinished += stream["unfinished"]
            ended += stream["ended"]
            missing += len(expected - set(got))
            duplicated += len(got) - len(set(got))
            disordered += sum(1 for a, b in itertools.pairwise(got) if b <= a)
            for seq, at in zip(got, stream["times"], strict=True):
                if seq in committed:
                    latencies.append((at - committed[seq]) / 1000)
    base: list[float] = []
    for notified_head, at in baseline:
        if notified_head in committed:
            base.append((at - committed[notified_head]) / 1000)
    return {
        "subscribers": args.subscribers, "client_processes": len(clients),
        "rate_target": args.rate,
        "rate_produced": round(produced_rate), "events": len(messages),
        "changes": len(expected), "changes_per_s": round(len(expected) / wall),
        "frames_delivered": len(latencies),
        "latency_ms": {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99),
                       "max": max(latencies, default=float("nan"))},
        "baseline_listen_ms": {"p50": pct(base, 0.5), "p99": pct(base, 0.99),
                               "notifications": len(base)},
        "missing": missing, "duplicated": duplicated, "out_of_order": disordered,
        "streams_ended_early": ended, "streams_unfinished": unfinished,
        "server_cpu_share_of_one_core": server_cpu / wall,
        "server_rss_mb": status_mb(server_pid, "VmRSS"),
        "server_peak_rss_mb": status_mb(server_pid, "VmHWM"),
        "clients_cpu_share_of_one_core": client_cpu / wall,
        "seconds": wall,
    }


# --------------------------------------------------------------------------- part 2


def report_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    events = workdir / "report-events.jsonl"
    store = args.report_store or f"sqlite:///{workdir / 'report.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ingest_s = None
    if not args.report_store:
        say(f"part 2: simulating {args.report_events:,} events")
        subprocess.run([PY, "-m", "dispatch.cli", "simulate", "--events",
                        str(args.report_events), "-o", str(events)], check=True,
                       env=env, cwd=workdir, stdout=subprocess.DEVNULL)
        say("part 2: ingesting")
        started = time.monotonic()
        subprocess.run([PY, "-m", "dispatch.cli", "ingest", str(events), "--store", store],
                       check=True, env=env, cwd=workdir, stderr=subprocess.DEVNULL)
        ingest_s = time.monotonic() - started
    started = time.monotonic()
    cli = subprocess.run([PY, "-m", "dispatch.cli", "report", "--store", store], check=True,
                         env=env, cwd=workdir, capture_output=True)
    cli_s = time.monotonic() - started
    server, url = start_server(store, workdir, workdir / "serve-report.log")
    try:
        started = time.monotonic()
        first = httpx.get(url + "/api/report", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=120)
        first_s = time.monotonic() - started
        assert first.status_code == 200
        status = asyncio.run(_hammer(url, "/api/status", args.clients, args.report_seconds,
                                     server_pid=server.pid))
        report = asyncio.run(_hammer(url, "/api/report", args.clients, args.report_seconds,
                                     {"Accept-Encoding": "gzip"}, server.pid))
        plain = asyncio.run(_hammer(url, "/api/report", args.clients, args.report_seconds,
                                    {"Accept-Encoding": "identity"}, server.pid))
        same = httpx.get(url + "/api/report", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=60).content == cli.stdout
        rss = status_mb(server.pid, "VmHWM")
    finally:
        stop(server)
    return {"store": store, "events": args.report_events, "ingest_seconds": ingest_s,
            "cli_report_seconds": cli_s, "first_api_report_seconds": first_s,
            "clients": args.clients,
            "report_bytes": len(cli.stdout), "status": status, "report_gzip": report,
            "report_identity": plain, "report_equals_cli": same,
            "server_peak_rss_mb": rss}


async def _hammer(url: str, route: str, clients: int, seconds: float,
                  headers: dict[str, str] | None = None,
                  server_pid: int | None = None) -> dict[str, Any]:
    """``clients`` keep-alive connections asking ``route`` in a loop for ``seconds``.
    A bare HTTP/1.1 client (reads the body by its length, decodes nothing): the
    figure is what the server serves, not what an HTTP library can parse."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (f"GET {route} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
               f"{extra}\r\n").encode()
    latencies: list[float] = []
    sizes: list[int] = []
    errors = 0

    reconnects = 0

    async def one(stop_at: float) -> None:
        nonlocal errors, reconnects
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 24)
        try:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                writer.write(request)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    # The server closes a keep-alive connection idle for 5 s; reading a
                    # 17 MB answer on a loaded machine can take that long. Reconnect.
                    writer.close()
                    reconnects += 1
                    reader, writer = await asyncio.open_connection(host, int(port),
                                                                   limit=1 << 24)
                    continue
                found = re.search(rb"(?i)content-length: (\d+)", head)
                assert found is not None, head
                length = int(found.group(1))
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200 "):
                    errors += 1
                latencies.append(time.perf_counter() - t0)
                sizes.append(length)
        finally:
            writer.close()

    await one(time.monotonic())  # warm: the first answer may have to be built
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    client_before = time.process_time()
    started = time.monotonic()
    await asyncio.gather(*(one(started + seconds) for _ in range(clients)))
    wall = time.monotonic() - started
    say(f"  {route} {headers or ''}: {len(latencies) / wall:,.1f} requests/s")
    return {"requests": len(latencies), "per_second": len(latencies) / wall,
            "p50_ms": pct(latencies, 0.5) * 1000, "p99_ms": pct(latencies, 0.99) * 1000,
            "mean_body_bytes": sum(sizes) / max(1, len(sizes)), "errors": errors,
            "reconnects": reconnects,
            "server_cpu_share_of_one_core": (cpu_seconds(server_pid) - cpu_before) / wall
            if server_pid else None,
            "client_cpu_share_of_one_core": (time.process_time() - client_before) / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--client-processes", type=int, default=4,
                        help="processes the subscribers are spread over (default 4)")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--report-events", type=int, default=1_000_000)
    parser.add_argument("--report-seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--report-store", metavar="URL",
                        help="an existing store to read (skips simulating and ingesting)")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-report", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args()
    results: dict[str, Any] = {"load_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as temp:
        workdir = args.workdir or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        args.workdir_path = workdir
        if not args.skip_stream:
            results["stream"] = stream_part(args, workdir)
        if not args.skip_report:
            results["report"] = report_part(args, workdir)
    results["load_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
