"""Where a command's milliseconds go, without HTTP: the handler's own code
(``dispatch.api.group_commit``) on a fresh store, in one process.

Measured in the same run, on the same store, each over ``--commands`` commands
(``call.verified`` of incidents made beforehand):

- ``alone``: one command per transaction (what one client gets);
- ``grouped``: 20 commands per transaction (what group commit gives 20 clients);
- SQLite: ``alone`` again with ``PRAGMA synchronous=NORMAL``, to show the share
  of the per-commit fsync (the store keeps ``FULL``);
- PostgreSQL: the statements of ``alone``, per command, by time.

    .venv/bin/python bench/command_costs.py --store sqlite
    .venv/bin/python bench/command_costs.py --store postgresql://dispatch:dispatch@127.0.0.1:5432/DB

The PostgreSQL database given is emptied first.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dispatch.api.group_commit import Job, execute_commands  # noqa: E402
from dispatch.api.writes import decide_incident_event  # noqa: E402
from dispatch.commands import DISPATCHER, Command, Decision, decide_call  # noqa: E402
from projections.duty import DutyCalendar  # noqa: E402
from projections.ports import ProjectionStore  # noqa: E402
from projections.stores import open_store  # noqa: E402


def call_job(n: int) -> Job:
    async def decide(_: ProjectionStore) -> Decision:
        return decide_call(Command("call.received", {"grid": "G1", "area": "urban"}),
                           DISPATCHER, incident_id=f"INC-BENCH-{n:06d}",
                           event_id=f"bench-call-{n}", now="2026-07-01T08:00:00Z")

    return Job(None, False, decide, lambda a: {})


def verify_job(n: int) -> Job:
    async def decide(store: ProjectionStore) -> Decision:
        return await decide_incident_event(store, f"INC-BENCH-{n:06d}",
                                           Command("call.verified", {}), DISPATCHER)

    return Job(None, False, decide, lambda a: {})


async def run(store: ProjectionStore, jobs: list[Job], group: int) -> float:
    """Milliseconds per command."""
    started = time.perf_counter()
    for first in range(0, len(jobs), group):
        block = jobs[first:first + group]
        await execute_commands(store, block)
        for job in block:
            if not (hasattr(job.result, "status_code") and job.result.status_code == 201):
                raise SystemExit(f"a command failed: {job.result!r}")
    return (time.perf_counter() - started) * 1000 / len(jobs)


def count_statements() -> tuple[collections.Counter[str], dict[str, float]]:
    from asyncpg.connection import Connection

    calls: collections.Counter[str] = collections.Counter()
    spent: dict[str, float] = collections.defaultdict(float)
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval",
                 "copy_records_to_table"):
        original = getattr(Connection, name)

        def timed(original: Callable[..., Any] = original, name: str = name) -> Any:
            async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
                text = args[0] if args and isinstance(args[0], str) else f"COPY {args[0]}"
                key = " ".join(text.split())[:58]
                key = "SAVEPOINT / RELEASE" if "SAVEPOINT" in key else key
                started = time.perf_counter()
                try:
                    return await original(self, *args, **kwargs)
                finally:
                    if counting:
                        calls[key] += 1
                        spent[key] += time.perf_counter() - started
            return call

        setattr(Connection, name, timed())
    return calls, spent


counting = False


async def main() -> int:
    global counting
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    n = args.commands
    with tempfile.TemporaryDirectory() as folder:
        sqlite = args.store == "sqlite"
        url = f"sqlite:///{Path(folder) / 'bench.db'}" if sqlite else args.store
        if not sqlite:
            import asyncpg

            conn = await asyncpg.connect(url)
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            await conn.close()
            calls, spent = count_statements()
        async with open_store(url, DutyCalendar()) as store:
            await run(store, [call_job(i) for i in range(4 * n)], 50)
            print(f"store: {'sqlite' if sqlite else 'postgresql'}; {n} commands per "
                  f"measurement; load average {os.getloadavg()[0]:.2f}")
            counting = True
            alone = await run(store, [verify_job(i) for i in range(n)], 1)
            counting = False
            grouped = await run(store, [verify_job(i) for i in range(n, 2 * n)], 20)
            print(f"  alone (1 per transaction):    {alone:6.1f} ms/command "
                  f"({1000 / alone:6.1f}/s)")
            print(f"  grouped (20 per transaction): {grouped:6.1f} ms/command "
                  f"({1000 / grouped:6.1f}/s)   ratio {alone / grouped:.2f}x")
            if sqlite:
                store.db.execute("PRAGMA synchronous=NORMAL")  # type: ignore[attr-defined]
                relaxed = await run(store, [verify_job(i) for i in range(2 * n, 3 * n)], 1)
                print(f"  alone, no fsync per commit:   {relaxed:6.1f} ms/command "
                      f"(the fsync: {alone - relaxed:.1f} ms, "
                      f"{100 * (alone - relaxed) / alone:.0f} %)")
            else:
                total = sum(spent.values()) * 1000 / n
                print(f"  alone: {sum(calls.values()) / n:.1f} statements per command, "
                      f"{total:.1f} ms of {alone:.1f} waiting for PostgreSQL; the largest:")
                for key, count in sorted(calls.items(), key=lambda kv: -spent[kv[0]])[:10]:
                    print(f"    {count / n:4.1f} x {spent[key] * 1000 / n:5.1f} ms  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
