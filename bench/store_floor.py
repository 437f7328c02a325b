"""The storage floor of a store: how fast its database takes the rows an ingest wrote,
with nothing else to do, against the ingest that wrote them (the baseline, same run).

Steps, each on a fresh store of the chosen backend (SQLite file or PostgreSQL database):
1. ``dispatch ingest FILE --store SOURCE`` as a real subprocess (our path: validation,
   fold, read models, positions), timed;
2. every row of every table of SOURCE is read into memory (not timed);
3. those rows are written into a new store with the same schema (our migrations) in as
   many transactions as the ingest committed batches (``--batch`` events each), each
   transaction taking its share of every table: SQLite ``executemany``, PostgreSQL
   binary ``COPY`` (the fastest way Python hands either database rows). Timed: the floor;
4. SQLite only: the same rows copied once more by SQLite itself (``INSERT ... SELECT``
   from the attached first store, same transactions): the database's own floor, with
   no Python per row;
5. SQLite only: the same rows once more, handed over as one JSON text per table and
   transaction (orjson) and taken apart by SQLite's ``json_each``: binding in C
   from Python, without a call per row.

The floor is a lower bound on the database's part of any ingest that keeps this store:
each row is written once (the ingest updates incident rows batch after batch and
checks every event id against the log first), the tuples are prebuilt and no event
is validated or folded. An ingest can go no faster than its floor, whatever the code
in front of it.

    .venv/bin/python bench/store_floor.py --events-file events.jsonl --backend sqlite
    .venv/bin/python bench/store_floor.py --events-file events.jsonl --backend postgres \\
        --pg-root postgresql://dispatch:dispatch@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from figures import drop_databases, fresh_database, print_figures  # noqa: E402  (bench/figures.py)

from dispatch.bootstrap import read_model_store  # noqa: E402
from dispatch.settings import Settings  # noqa: E402

Tables = dict[str, tuple[list[str], list[tuple[Any, ...]]]]
"""Table name -> its column names and every row."""

PG_DATABASES = ("dispatch_floor_source", "dispatch_floor_target")

SKIPPED = {"schema_migrations"}
"""Bookkeeping of the migrations: written when the new store is created."""


def ingest(events: Path, url: str, batch: int) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dispatch.cli", "ingest", str(events),
                           "--store", url], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "DISPATCH_BATCH_SIZE": str(batch)})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dispatch ingest failed:\n{done.stderr}")
    print(f"  ingest: {seconds:.2f}s  {done.stderr.strip().splitlines()[-1:]}",
          file=sys.stderr)
    return seconds


async def create(url: str) -> None:
    """A new store at ``url``: our migrations, nothing else."""
    store = read_model_store(Settings(), url)
    async with store:
        pass


def chunks(rows: list[tuple[Any, ...]], parts: int) -> list[list[tuple[Any, ...]]]:
    size = math.ceil(len(rows) / parts) if rows else 1
    return [rows[k * size:(k + 1) * size] for k in range(parts)]


# -- SQLite -------------------------------------------------------------------------------

def sqlite_rows(path: Path) -> Tables:
    db = sqlite3.connect(path)
    try:
        names = [n for (n,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            if n not in SKIPPED]
        tables = {}
        for name in names:
            cursor = db.execute(f'SELECT * FROM "{name}"')
            columns = [d[0] for d in cursor.description]
            tables[name] = (columns, cursor.fetchall())
        return tables
    finally:
        db.close()


def new_sqlite_store(path: Path, page_size: int | None) -> None:
    """A new store at ``path`` (our migrations), with ``page_size`` if given."""
    if page_size:  # fixed when the file is first written, before our migrations
        fresh = sqlite3.connect(path)
        fresh.execute(f"PRAGMA page_size={int(page_size)}")
        fresh.execute("PRAGMA journal_mode=WAL")
        fresh.close()
    asyncio.run(create(f"sqlite:///{path}"))


def _emptied(path: Path, tables: Tables) -> sqlite3.Connection:
    """A session on the new store at ``path`` with the store's own settings
    (``projections/stores/sqlite.py``), the tables of ``tables`` emptied (the new
    store's own rows, meta and counters, make way for the source's)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA cache_size=-262144")
    for name in tables:
        db.execute(f'DELETE FROM main."{name}"')
    return db


def sqlite_floor(path: Path, tables: Tables,
                 parts: int) -> float:
    db = _emptied(path, tables)
    split = {name: chunks(rows, parts) for name, (_, rows) in tables.items()}
    statements = {name: f'INSERT INTO "{name}" ({", ".join(columns)}) VALUES '
                        f'({", ".join("?" * len(columns))})'
                  for name, (columns, _) in tables.items()}
    started = time.perf_counter()
    for k in range(parts):
        db.execute("BEGIN")
        for name, pieces in split.items():
            if pieces[k]:
                db.executemany(statements[name], pieces[k])
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def sqlite_own_floor(path: Path, source: Path, tables: Tables,
                     parts: int) -> float:
    """The same rows copied by SQLite itself (``INSERT ... SELECT`` from the attached
    source, by rowid ranges), in as many transactions: no Python per row at all."""
    db = _emptied(path, tables)
    db.execute("ATTACH ? AS source", (str(source),))
    ranges: dict[str, list[tuple[int, int] | None]] = {}
    for name in tables:
        try:
            ids = [r for (r,) in db.execute(f'SELECT rowid FROM source."{name}" ORDER BY rowid')]
        except sqlite3.OperationalError:  # a WITHOUT ROWID table: whole, in the first one
            ranges[name] = [None] * parts
            continue
        size = math.ceil(len(ids) / parts) if ids else 1
        ranges[name] = [(ids[k * size], ids[min(len(ids), (k + 1) * size) - 1])
                        if k * size < len(ids) else None for k in range(parts)]
    started = time.perf_counter()
    for k in range(parts):
        db.execute("BEGIN")
        for name, bounds in ranges.items():
            span = bounds[k]
            if span is not None:
                db.execute(f'INSERT INTO main."{name}" SELECT * FROM source."{name}" '
                           "WHERE rowid BETWEEN ? AND ?", span)
            elif k == 0 and all(b is None for b in bounds):
                db.execute(f'INSERT INTO main."{name}" SELECT * FROM source."{name}"')
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def sqlite_json_floor(path: Path, tables: Tables, parts: int) -> float:
    """The same rows handed to SQLite as one JSON text per table and transaction (orjson
    in C), which SQLite's ``json_each`` takes apart in C: the other way to bind rows
    without a Python call per row. Encoding is timed (an ingest would have to do it)."""
    db = _emptied(path, tables)
    split = {name: chunks(rows, parts) for name, (_, rows) in tables.items()}
    statements = {}
    for name, (columns, rows) in tables.items():
        blobs = {k for k in range(len(columns))
                 if any(isinstance(row[k], bytes) for row in rows[:1000])}
        values = ", ".join(f"CAST(value ->> {k} AS BLOB)" if k in blobs else f"value ->> {k}"
                           for k in range(len(columns)))
        statements[name] = (f'INSERT INTO "{name}" ({", ".join(columns)}) '
                            f"SELECT {values} FROM json_each(?)", blobs)
    started = time.perf_counter()
    for k in range(parts):
        db.execute("BEGIN")
        for name, pieces in split.items():
            if pieces[k]:
                statement, blobs = statements[name]
                rows = pieces[k]
                if blobs:  # JSON has no bytes: the BLOB columns (JSON text) go as strings
                    rows = [tuple(v.decode() if isinstance(v, bytes) else v for v in row)
                            for row in rows]
                db.execute(statement, (orjson.dumps(rows),))
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return seconds


# -- PostgreSQL ---------------------------------------------------------------------------

async def pg_rows(dsn: str) -> Tables:
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        names = [r[0] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if r[0] not in SKIPPED]
        tables = {}
        for name in names:
            columns = [r[0] for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                "AND table_schema = 'public' ORDER BY ordinal_position", name)]
            rows = [tuple(r) for r in await conn.fetch(f'SELECT * FROM "{name}"')]
            tables[name] = (columns, rows)
        return tables
    finally:
        await conn.close()


async def pg_floor(dsn: str, tables: Tables,
                   parts: int) -> float:
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        for name in tables:
            await conn.execute(f'DELETE FROM "{name}"')
        split = {name: chunks(rows, parts) for name, (_, rows) in tables.items()}
        started = time.perf_counter()
        for k in range(parts):
            async with conn.transaction():
                for name, pieces in split.items():
                    if pieces[k]:
                        await conn.copy_records_to_table(name, records=pieces[k],
                                                         columns=tables[name][0])
        return time.perf_counter() - started
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events-file", required=True, type=Path,
                        help="JSON Lines events (e.g. the file bench/embedded.py simulates)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-root", default="postgresql://dispatch:dispatch@127.0.0.1:5432",
                        help="PostgreSQL URL without database (--backend postgres)")
    parser.add_argument("--batch", type=int, default=Settings().batch_size,
                        help="events per ingest batch and per floor transaction")
    parser.add_argument("--target", type=float, default=150_000,
                        help="the ingest rate the issue asks for (events/s)")
    parser.add_argument("--page-size", type=int,
                        help="SQLite page size of the floor's store (default: the store's, "
                             "4096); to see what a larger page would give")
    parser.add_argument("--keep", action="store_true",
                        help="keep the stores (by default they are removed at the end)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dispatch-floor-"))
    try:
        return measure(args, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
            if args.backend == "postgres":
                drop_databases(args.pg_root, *PG_DATABASES)
        else:
            print(f"kept: {folder}" + (f" and databases {', '.join(PG_DATABASES)}"
                                       if args.backend == "postgres" else ""), file=sys.stderr)


def measure(args: argparse.Namespace, folder: Path) -> int:
    lines = sum(1 for _ in args.events_file.open("rb"))
    print(f"{args.events_file}: {lines:,} lines; ingest into a fresh {args.backend} store ...",
          file=sys.stderr)
    if args.backend == "sqlite":
        source, target = folder / "source.db", folder / "floor.db"
        ingest_seconds = ingest(args.events_file, f"sqlite:///{source}", args.batch)
        tables = sqlite_rows(source)
        new_sqlite_store(target, args.page_size)
    else:
        source_db, target_db = PG_DATABASES
        fresh_database(args.pg_root, source_db)
        ingest_seconds = ingest(args.events_file, f"{args.pg_root}/{source_db}", args.batch)
        tables = asyncio.run(pg_rows(f"{args.pg_root}/{source_db}"))
        fresh_database(args.pg_root, target_db)
        asyncio.run(create(f"{args.pg_root}/{target_db}"))
    events = len(tables["event_log"][1])
    parts = max(1, math.ceil(lines / args.batch))
    print(f"  {events:,} events in the log, "
          f"{sum(len(rows) for _, rows in tables.values()):,} rows in "
          f"{len(tables)} tables; writing them in {parts} transactions ...", file=sys.stderr)
    own_seconds = json_seconds = None
    if args.backend == "sqlite":
        floor_seconds = sqlite_floor(target, tables, parts)
        own = folder / "own.db"
        new_sqlite_store(own, args.page_size)
        print("  and again, copied by SQLite itself ...", file=sys.stderr)
        own_seconds = sqlite_own_floor(own, source, tables, parts)
        as_json = folder / "json.db"
        new_sqlite_store(as_json, args.page_size)
        print("  and again, handed over as JSON text (json_each) ...", file=sys.stderr)
        json_seconds = sqlite_json_floor(as_json, tables, parts)
    else:
        floor_seconds = asyncio.run(pg_floor(f"{args.pg_root}/{target_db}", tables, parts))
    figures: dict[str, object] = {
        "backend": args.backend, "page_size": args.page_size, "lines": lines,
        "events_in_log": events,
        "cpu_count": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
        "rows_per_table": {name: len(rows) for name, (_, rows) in tables.items() if rows},
        "ingest_seconds": round(ingest_seconds, 2),
        "ingest_lines_per_s": round(lines / ingest_seconds),
        "floor_seconds": round(floor_seconds, 2),
        "floor_lines_per_s": round(lines / floor_seconds),
        "ingest_share_of_floor": round(floor_seconds / ingest_seconds, 3),
        **({} if own_seconds is None else {
            "sqlite_own_floor_seconds": round(own_seconds, 2),
            "sqlite_own_floor_lines_per_s": round(lines / own_seconds)}),
        **({} if json_seconds is None else {
            "sqlite_json_each_floor_seconds": round(json_seconds, 2),
            "sqlite_json_each_floor_lines_per_s": round(lines / json_seconds)}),
        "target_lines_per_s": round(args.target),
        "floor_over_target": round(lines / floor_seconds / args.target, 3),
    }
    print_figures(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
