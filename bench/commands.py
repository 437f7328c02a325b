"""Write-side benchmark: commands per second and latency through ``dispatch serve``.

Starts a real ``dispatch serve`` (a subprocess) on a fresh store, rosters the
crews, and then, with 1 and with 20 concurrent clients, sends command pairs:
take a call (``POST /api/incidents``), then verify it
(``POST /api/incidents/{id}/events``). Measured in the same run, as the
baseline: ``GET /api/status`` (a read through the same server, auth and store
pool), so the commands' cost shows against the HTTP stack's own.

    .venv/bin/python bench/commands.py --store sqlite --seconds 10
    .venv/bin/python bench/commands.py --store postgresql://dispatch:dispatch@127.0.0.1/DB

Prints, per client count: commands/s, p50 and p99 latency of the commands and
of the baseline reads. The PostgreSQL database given is emptied first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-dispatcher-token"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def client_loop(client: httpx.AsyncClient, until: float, latencies: list[float],
                      reads: bool) -> int:
    done = 0
    while time.perf_counter() < until:
        if reads:
            started = time.perf_counter()
            answer = await client.get("/api/status")
            latencies.append(time.perf_counter() - started)
            answer.raise_for_status()
            done += 1
            continue
        started = time.perf_counter()
        answer = await client.post("/api/incidents",
                                   json={"data": {"grid": "G1", "area": "urban"}})
        latencies.append(time.perf_counter() - started)
        answer.raise_for_status()
        incident = answer.json()["incident_id"]
        started = time.perf_counter()
        answer = await client.post(f"/api/incidents/{incident}/events",
                                   json={"type": "call.verified", "data": {}})
        latencies.append(time.perf_counter() - started)
        answer.raise_for_status()
        done += 2
    return done


async def measure(url: str, clients: int, seconds: float, reads: bool) -> tuple[float, list[float]]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=60) as client:
        started = time.perf_counter()
        until = started + seconds
        counts = await asyncio.gather(*(client_loop(client, until, latencies, reads)
                                        for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return sum(counts) / elapsed, latencies


def empty_postgres(dsn: str) -> None:
    import asyncpg

    async def reset() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(reset())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="sqlite",
                        help="'sqlite' (a fresh file) or a PostgreSQL URL (emptied first)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--clients", default="1,20", help="concurrent clients, comma-separated")
    parser.add_argument("--publish", action="store_true",
                        help="serve with --publish: the outbox relay publishes every command's "
                             "event to a fresh Kafka topic (DISPATCH_KAFKA_BOOTSTRAP)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "DISPATCH_API_TOKENS": f"{TOKEN}:dispatcher"}
    serve_args = []
    if args.publish:
        topic = f"bench.commands.{uuid.uuid4().hex[:8]}"
        env.update({"DISPATCH_TOPIC_EVENTS": topic, "DISPATCH_TOPIC_DLQ": f"{topic}.dlq"})
        subprocess.run([sys.executable, "-m", "dispatch.cli", "topics"], check=True, env=env)
        serve_args = ["--publish"]
    with tempfile.TemporaryDirectory() as folder:
        if args.store == "sqlite":
            store = f"sqlite:///{Path(folder) / 'bench.db'}"
        else:
            store = args.store
            empty_postgres(store)
        roster = Path(folder) / "crews.csv"
        roster.write_text("crew,grid,skills\n" + "".join(f"C{n},G{n % 4},overhead\n"
                                                          for n in range(40)))
        subprocess.run([sys.executable, "-m", "dispatch.cli", "roster", str(roster),
                        "--store", store], check=True, env=env, cwd=folder)
        log = Path(folder) / "serve.log"
        with log.open("w") as sink:
            server = subprocess.Popen([sys.executable, "-m", "dispatch.cli", "serve", "--store",
                                       store, "--port", "0", *serve_args], stdout=sink, stderr=sink,
                                      env=env, cwd=folder)
        try:
            url = None
            for _ in range(300):
                found = re.search(r"listening on (http://\S+?)/ ", log.read_text())
                if found:
                    url = found.group(1)
                    break
                time.sleep(0.1)
            if url is None:
                print(log.read_text(), file=sys.stderr)
                return 1
            kind = ("sqlite" if args.store == "sqlite" else "postgresql") + (
                " with the Kafka outbox relay" if args.publish else "")
            print(f"store: {kind}; {args.seconds:.0f} s per measurement; load average "
                  f"{os.getloadavg()[0]:.2f}")
            print("clients  what              per s     p50 ms   p99 ms")
            for clients in (int(c) for c in args.clients.split(",")):
                for name, reads in (("GET /api/status", True), ("commands", False)):
                    rate, latencies = asyncio.run(measure(url, clients, args.seconds, reads))
                    print(f"{clients:>7}  {name:<16} {rate:>7.1f}  "
                          f"{percentile(latencies, 0.5) * 1000:>8.1f} "
                          f"{percentile(latencies, 0.99) * 1000:>8.1f}"
                          f"   (n={len(latencies)}, mean "
                          f"{statistics.fmean(latencies) * 1000:.1f} ms)")
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
