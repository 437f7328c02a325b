"""Writing commands: each decided on the state it will be committed on, and many
committed together (group commit).

Contract of ``execute_commands(store, jobs)``: inside one ``store.writing()``
block (the store's write lock), for each job in order: answer the answer kept
under its Idempotency-Key if there is one; otherwise decide it on the state the
store shows now, which includes the jobs staged before it in the block, and
stage its event, read-model update, outbox row and kept answer. Then commit
them all at once. Every job gets its answer only after that commit. If the
block fails before its commit (an error of the store or of one decision),
nothing of it was written and, when it held several jobs, each is tried again
alone, so one bad command does not fail the others; an error of the commit
itself goes to every job of the block (its outcome is unknown: a retry with the
same Idempotency-Key settles it).

``CommandWriter.submit``: the commands of one process queue here. A request
that finds no block being written writes, in one block, the queued commands
(at most ``MAX_GROUP``, oldest first, its own among them or in a later block
it also writes); the others wait for their answer. Alone, a command is written
at once; under load one durable flush serves many commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi.responses import Response

from dispatch.commands import Accepted, Decision, Refused
from projections.ports import (
    CommandAnswer,
    OutboxEntry,
    ProjectionStore,
    Record,
    StoreUnavailable,
)
from projections.projector import Projector
from schemas.events import kafka_key

COMMANDS_SOURCE = "commands"
CONSUMER = "commands"
MAX_GROUP = 64


@dataclass(eq=False)
class Job:
    key: str | None
    """The Idempotency-Key, scoped to the caller's role and route; None: none sent."""
    outbox: bool
    decide: Callable[[ProjectionStore], Awaitable[Decision]]
    """Load what the decision needs from the store given, and decide (no writes)."""
    answer_of: Callable[[Accepted], dict[str, Any]]
    result: Response | BaseException | None = None
    done: asyncio.Future[Response] | None = field(default=None, repr=False)


def _json(body: Any, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _stage(store: ProjectionStore, job: Job) -> tuple[Response, bool]:
    """The job's answer, and whether it staged a write."""
    if job.key is not None:
        first = await store.command_answer(job.key)
        if first is not None:
            return Response(first.body, status_code=first.status,
                            media_type="application/json"), False
    decision = await job.decide(store)
    if isinstance(decision, Refused):
        return _json({"error": decision.reason}, decision.status), False
    body = orjson.dumps(job.answer_of(decision))
    prepared = await Projector(store, CONSUMER).prepare(
        [Record(COMMANDS_SOURCE, 0, 0, decision.raw)])
    commit = prepared.commit
    commit.positions = {}  # commands have no input position to resume from
    if job.outbox:
        commit.outbox = [OutboxEntry(decision.event.event_id, kafka_key(decision.event),
                                     decision.raw)]
    if job.key is not None:
        commit.answer = CommandAnswer(job.key, 201, body)
    await store.stage(commit)
    return Response(body, status_code=201, media_type="application/json"), True


async def execute_commands(store: ProjectionStore, jobs: Sequence[Job], *,
                           others_waiting: bool = False) -> int:
    """Decide and commit ``jobs`` in one block (module contract); sets each ``result``
    and returns how many blocks it took (more than one: the block failed and the
    jobs were tried alone). ``others_waiting``: more commands are on their way, let
    them queue during the commit's flush."""
    answers: list[Response] = []
    committing = False
    try:
        async with store.writing():
            wrote = False
            for job in jobs:
                answer, staged = await _stage(store, job)
                answers.append(answer)
                wrote = wrote or staged
            committing = True
            if wrote:
                await store.finish(let_others_run=others_waiting)
    except Exception as exc:
        if committing or len(jobs) == 1:
            for job in jobs:
                job.result = exc
            return 1
        # Nothing was written: each alone, so only the culprit fails.
        return sum([await execute_commands(store, [job]) for job in jobs])
    for job, answer in zip(jobs, answers, strict=True):
        job.result = answer
    return 1


async def execute_command(store: ProjectionStore, job: Job) -> Response:
    """One command in a block of its own."""
    await execute_commands(store, [job])
    if isinstance(job.result, BaseException):
        raise job.result
    assert job.result is not None
    return job.result


class CommandWriter:
    """Gathers one process's concurrent commands into blocks (module contract)."""

    def __init__(self, max_group: int = MAX_GROUP) -> None:
        self.max_group = max_group
        self._lock = asyncio.Lock()
        self._queue: list[Job] = []
        self.blocks = 0
        self.commands = 0

    async def submit(self, store: ProjectionStore, job: Job) -> Response:
        job.done = asyncio.get_running_loop().create_future()
        self._queue.append(job)
        while job in self._queue:
            async with self._lock:
                if job not in self._queue:
                    break  # another request took it into its block
                group, self._queue = (self._queue[:self.max_group],
                                      self._queue[self.max_group:])
                try:
                    # Requests that arrive during this flush queue and share the next.
                    await execute_commands(store, group, others_waiting=True)
                finally:
                    self.blocks += 1
                    self.commands += len(group)
                    for member in group:
                        _settle(member)
        return await job.done


def _settle(job: Job) -> None:
    assert job.done is not None
    if job.done.done():
        return
    if isinstance(job.result, BaseException):
        job.done.set_exception(job.result)
    elif job.result is not None:
        job.done.set_result(job.result)
    else:  # the writing request was cancelled before this job was decided
        job.done.set_exception(StoreUnavailable(
            "the command was interrupted; retry it (with the same Idempotency-Key)"))
