"""The HTTP side of ``/api/stream``: one response per subscriber, kept lean.

Every live chunk goes to every subscriber, so the per-chunk path is short: the
feed wakes one future (``Subscriber.take``), the chunk is sent with the ASGI
``send`` as it is (bytes shared by all subscribers), no generator, task or
timer per chunk. A task per stream waits for the client to go away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from dispatch.api.feed import HEARTBEAT, Subscriber


class EventStreamResponse(StreamingResponse):
    """``opening`` (retry, resync or replayed frames), then the subscriber's live
    chunks with a heartbeat comment after ``heartbeat_s`` of silence, until the
    subscriber ends (dropped, server stopping) or the client leaves; ``finished``
    runs once the stream is over. Without a subscriber: ``opening`` only."""

    def __init__(self, opening: bytes, subscriber: Subscriber | None, heartbeat_s: float,
                 finished: Callable[[], None]) -> None:
        super().__init__(iter(()), media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.opening = opening
        self.subscriber = subscriber
        self.heartbeat_s = heartbeat_s
        self.finished = finished

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.subscriber
        watcher = (asyncio.create_task(self._watch(receive, subscriber))
                   if subscriber is not None else None)
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.opening, "more_body": True})
            while subscriber is not None:
                chunk = await subscriber.take(self.heartbeat_s)
                if chunk is None:
                    break
                await send({"type": "http.response.body", "body": chunk or HEARTBEAT,
                            "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            self.finished()

    @staticmethod
    async def _watch(receive: Receive, subscriber: Subscriber) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        subscriber.close()
