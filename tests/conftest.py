"""Shared fixtures: where the real servers are, and what to do when they are not.

Tests that need the local Kafka broker or PostgreSQL are marked ``servers``. If
the servers are not reachable they are skipped, unless DISPATCH_REQUIRE_SERVERS=1
(as in CI), where an unreachable server is a failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

PG_TEST_DSN = os.environ.get(
    "DISPATCH_TEST_PG_DSN", "postgresql://dispatch:dispatch@127.0.0.1:5432/dispatch_test")
KAFKA_BOOTSTRAP = os.environ.get("DISPATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REQUIRE_SERVERS = os.environ.get("DISPATCH_REQUIRE_SERVERS") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_server(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} not reachable at {host}:{port} (start it with deploy/local/up.sh)"
    if REQUIRE_SERVERS:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL test database emptied before the test."""
    import asyncio

    import asyncpg

    need_server("PostgreSQL", "127.0.0.1", int(PG_TEST_DSN.rsplit(":", 1)[1].split("/")[0]))

    async def reset() -> None:
        conn = await asyncpg.connect(PG_TEST_DSN)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(reset())
    yield PG_TEST_DSN


@pytest.fixture
def kafka_bootstrap() -> str:
    host, port = KAFKA_BOOTSTRAP.split(",")[0].rsplit(":", 1)
    need_server("Kafka", host, int(port))
    return KAFKA_BOOTSTRAP
