"""Driver errors become ``StoreUnavailable`` at the adapter boundary, and the CLI prints
them as one line (exit 1) without knowing any driver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dispatch.cli import main
from projections.ports import StalePosition, StoreError, StoreUnavailable
from projections.stores.driver_errors import described, masked, translate_errors


class DriverError(Exception):
    """Stands for asyncpg's or a Kafka client's exceptions."""


def _describe(adapter: Adapter, exc: BaseException) -> str:
    return f"server {adapter.name}: {described(exc)}"


@translate_errors((DriverError, OSError), _describe)
class Adapter:
    def __init__(self, fail: BaseException | None) -> None:
        self.name = "db1"
        self.fail = fail

    async def read(self) -> int:
        if self.fail:
            raise self.fail
        return 1

    async def rows(self) -> AsyncIterator[int]:
        yield 1
        if self.fail:
            raise self.fail
        yield 2

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        if self.fail:
            raise self.fail
        yield

    def name_of(self) -> str:
        return self.name

    async def _private(self) -> None:
        raise DriverError("left alone")


def test_a_coroutine_method_translates_driver_errors_and_keeps_the_cause() -> None:
    cause = DriverError("connection reset")
    with pytest.raises(StoreUnavailable, match=r"^server db1: DriverError: connection reset$") \
            as caught:
        asyncio.run(Adapter(cause).read())
    assert caught.value.__cause__ is cause
    assert isinstance(caught.value, StoreError)
    assert asyncio.run(Adapter(None).read()) == 1


def test_async_generators_and_context_managers_translate_too() -> None:
    async def drain(adapter: Adapter) -> list[int]:
        return [row async for row in adapter.rows()]

    async def enter(adapter: Adapter) -> None:
        async with adapter.writing():
            pass

    assert asyncio.run(drain(Adapter(None))) == [1, 2]
    with pytest.raises(StoreUnavailable, match="ConnectionRefusedError"):
        asyncio.run(drain(Adapter(ConnectionRefusedError("refused"))))
    with pytest.raises(StoreUnavailable, match="DriverError: no"):
        asyncio.run(enter(Adapter(DriverError("no"))))
    asyncio.run(enter(Adapter(None)))


@pytest.mark.parametrize("error", [StalePosition("moved"), ValueError("bug"),
                                   KeyError("bug")])
def test_other_errors_pass_through_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        asyncio.run(Adapter(error).read())
    assert caught.value is error


def test_plain_and_private_methods_are_left_alone() -> None:
    adapter = Adapter(None)
    assert adapter.name_of() == "db1"
    with pytest.raises(DriverError):
        asyncio.run(adapter._private())


def test_passwords_are_masked_and_types_not_repeated() -> None:
    assert masked("postgresql://u:s3cret@host:5432/db") == "postgresql://u:***@host:5432/db"
    assert described(DriverError("x")) == "DriverError: x"
    assert described(DriverError("DriverError: x")) == "DriverError: x"


def test_the_postgres_store_raises_store_unavailable_without_the_password() -> None:
    from projections.stores.postgres import PostgresStore

    store = PostgresStore("postgresql://u:s3cret@127.0.0.1:1/db")
    with pytest.raises(StoreUnavailable) as caught:
        asyncio.run(store.open())
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def test_topic_creation_translates_the_admin_client_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka.errors import KafkaTimeoutError

    import dispatch.kafka.topics as topics
    from dispatch.settings import Settings

    def no_broker(**_: Any) -> Any:
        raise KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")

    monkeypatch.setattr(topics, "KafkaAdminClient", no_broker)
    with pytest.raises(StoreUnavailable,
                       match=r"^Kafka at 127\.0\.0\.1:1: KafkaTimeoutError: Unable to bootstrap"):
        topics.ensure_topics(Settings(kafka_bootstrap="127.0.0.1:1"))


@pytest.mark.parametrize(("store", "mentions"), [
    ("postgresql://u:s3cret@127.0.0.1:1/db", "PostgreSQL at postgresql://u:***@127.0.0.1:1/db"),
    ("sqlite:///{tmp}/garbage.db", "is not a dispatch store"),
])
def test_the_cli_prints_store_errors_as_one_line(
        store: str, mentions: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "garbage.db").write_text("not a database\n" * 100)
    assert main(["report", "--store", store.format(tmp=tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "s3cret" not in err
    assert err.startswith("dispatch report: ") and mentions in err
