"""Dead letters on Kafka: the original bytes, with the reason and origin as headers."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from projections.ports import Rejected
from projections.stores.driver_errors import described, translate_errors


def _describe(adapter: KafkaDeadLetters, exc: BaseException) -> str:
    return f"Kafka at {adapter.bootstrap}: {described(exc)}"


@translate_errors((KafkaError, OSError), _describe)
class KafkaDeadLetters:
    """``DeadLetters`` port on a topic; ``send`` returns once every message is acked.
    Broker errors leave every method as ``StoreUnavailable``."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka binds to the running loop, so the producer is made here, not in __init__.
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          enable_idempotence=True)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, rejected: Sequence[Rejected]) -> None:
        if self._producer is None:
            raise RuntimeError("dead-letter producer not started")
        futures = [
            await self._producer.send(
                self.topic, value=r.record.raw,
                headers=[("reason", r.reason.encode()), ("source", r.record.label.encode())])
            for r in rejected
        ]
        for future in futures:
            await future
