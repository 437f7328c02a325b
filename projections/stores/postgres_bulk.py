"""Bulk loading into PostgreSQL: a table's indexes set aside while rows are copied in,
then built again from the whole table.

This is PostgreSQL's own advice for filling a table. Inserting row after row into
three B-tree indexes (the event log's sequence number, and its event ids and
incident ids, whose keys come in random order) costs more than the ``COPY``
itself; a build at the end sorts each index's keys once. On 988,000 event-log
rows (this machine, one session) the copy with its indexes took 10.7-13.2 s, and
the copy without them plus the three builds 6.0-7.7 s. The builds took as long
with 256 MB of ``maintenance_work_mem`` as with the server's 64 MB.

Everything runs in the caller's transaction: PostgreSQL's DDL is transactional, so a
rollback brings the indexes back as they were. ``DROP INDEX`` takes the table's
``ACCESS EXCLUSIVE`` lock until the transaction ends: other sessions wait for the
table instead of reading it, which suits a store being built that nobody reads yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def indexes_set_aside(conn: Any, table: str) -> AsyncIterator[None]:
    """Inside a transaction of ``conn``: ``table``'s primary key, unique constraints and
    other indexes dropped, and built again as they were (same names, same
    definitions) when the context exits without an exception. Unique keys are enforced
    again by the builds: a duplicate copied in meanwhile fails the exit with
    PostgreSQL's unique violation."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype IN ('p', 'u') ORDER BY conname", table)
    indexes = await conn.fetch(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = $1::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1", table)
    name = _ident(table)
    if constraints:
        await conn.execute(f"ALTER TABLE {name} " + ", ".join(
            f"DROP CONSTRAINT {_ident(c)}" for c, _ in constraints))
    for index, _ in indexes:
        await conn.execute(f"DROP INDEX {index}")
    yield
    if constraints:
        await conn.execute(f"ALTER TABLE {name} " + ", ".join(
            f"ADD CONSTRAINT {_ident(c)} {definition}" for c, definition in constraints))
    for _, definition in indexes:
        await conn.execute(definition)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
