"""The write side of ``dispatch serve``: commands, crews, queue and recommendations.

Contract:
- a command is decided inside ``store.writing()`` (``dispatch.api.group_commit``):
  the handler loads the incident and crew state, decides (``dispatch.commands``,
  pure) and commits the event, the read-model update (the same fold as
  ``dispatch ingest``), the outbox row (when Kafka is configured) and the
  idempotency answer in the same transaction, possibly with other commands
  decided after it in that transaction (group commit); writers are serialised,
  so two dispatchers sending the same crew at once get one 201 and one 409,
  never two events;
- ``Idempotency-Key``: a retry with the same key (same role and route) returns
  the first answer (status and body) and writes nothing; refusals are not kept;
- without tokens (``--no-auth``, loopback only) the caller is a dispatcher.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

import orjson
from fastapi import Body, Depends, FastAPI, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dispatch.api.group_commit import CommandWriter, Job
from dispatch.api.models import NO_NUL
from dispatch.api.pool import StorePool
from dispatch.commands import (
    DISPATCHER,
    Command,
    Decision,
    IncidentState,
    decide_call,
    decide_event,
    decide_roster,
)
from dispatch.recommend import queue_key, rank
from projections.crews import (
    CREW_FACT_TYPES,
    CrewState,
    arrivals_between,
    crew_statuses,
    crews_at,
    roster,
    roster_entry,
)
from projections.incident import CALL, Fact, fact_of
from projections.ports import ProjectionStore
from schemas.events import CrewRostered
from schemas.parsing import InvalidEvent, parse_event


async def _store(request: Request) -> AsyncIterator[ProjectionStore]:
    pool: StorePool = request.app.state.pool
    async with pool.store() as opened:
        yield opened


Store = Annotated[ProjectionStore, Depends(_store)]
Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class SessionRole(BaseModel):
    role: str = Field(description="viewer, dispatcher or crew:<id>")
    may_dispatch: bool = Field(description="true for dispatchers: the board shows the queue, "
                                           "recommendations and dispatch buttons")


class Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _role(request: Request) -> str:
    principal = request.scope.get("state", {}).get("principal")
    return DISPATCHER if principal is None else str(principal.role)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def crew_view(store: ProjectionStore) -> tuple[dict[str, CrewState], list[Fact]]:
    """Every rostered crew's state and every crew fact, from the event log."""
    entries = []
    facts: list[Fact] = []
    for raw in await store.events_of_types({*CREW_FACT_TYPES, "crew.rostered"}):
        try:
            event = parse_event(raw)
        except InvalidEvent:  # pragma: no cover - the log holds only accepted events
            continue
        if isinstance(event, CrewRostered):
            entries.append(roster_entry(event))
        else:
            facts.append(fact_of(event))
    incidents = await store.load_incidents({f.incident_id for f in facts})
    return crew_statuses(roster(entries), facts, incidents), facts


def _command(body: Any, *, with_type: bool) -> Command:
    if not isinstance(body, dict):
        raise Refusal(422, "body: must be a JSON object")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise Refusal(422, "data: must be an object")
    occurred = body.get("occurred_at")
    if occurred is not None and not isinstance(occurred, str):
        raise Refusal(422, "occurred_at: must be an RFC 3339 string")
    kind = body.get("type")
    if with_type and not isinstance(kind, str):
        raise Refusal(422, "type: field required")
    return Command(kind if isinstance(kind, str) else "", data, occurred)


def _scoped(key: str | None, scope: str) -> str | None:
    """An Idempotency-Key kept per role and route: the same key elsewhere is another."""
    return None if key is None else f"{scope}\n{key}"


async def decide_incident_event(store: ProjectionStore, incident_id: str, command: Command,
                                role: str) -> Decision:
    """Load what the decision needs from ``store`` and decide ``command`` on it: the
    incident, the crews dispatched to it (from its own events) and, for a
    ``crew.dispatched`` only, every crew's state (the one decision that looks at
    other incidents; the others need no scan of the crew events)."""
    found = await store.load_incidents([incident_id])
    incident = found.get(incident_id)
    state = None
    if incident is not None:
        own = [fact_of(parse_event(e.raw)) for e in await store.incident_events(incident_id)
               if e.type == "crew.dispatched"]
        state = IncidentState(incident, frozenset(crews_at(own, incident_id,
                                                           "crew.dispatched")))
    crews = (await crew_view(store))[0] if command.type == "crew.dispatched" else {}
    return decide_event(command, role, incident_id=incident_id, state=state,
                        crews=crews, event_id=str(uuid.uuid4()), now=_now())


def add_write_routes(app: FastAPI, *, outbox: bool,
                     responses: dict[int | str, dict[str, Any]],
                     dependencies: list[Any]) -> None:
    """Register the write side's routes on ``app`` (module contract)."""
    error = responses[401]["model"]
    refusals: dict[int | str, dict[str, Any]] = {
        **responses,
        400: {"model": error, "description": "the body is not valid JSON"},
        403: {"model": error, "description": "outside the caller's role"},
        404: {"model": error, "description": "unknown incident"},
        409: {"model": error, "description": "refused: it cannot be true now (see the reason)"},
        422: {"model": error, "description": "invalid command or event data (the field at fault)"},
    }

    writer = CommandWriter()
    app.state.command_writer = writer

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> Response:
        return _json({"error": exc.reason}, exc.status)

    @app.post("/api/incidents", status_code=201, responses=refusals, dependencies=dependencies,
              summary="Take a call: a new incident and its call.received event")
    async def take_call(request: Request, store: Store, body: Annotated[dict[str, Any], Body()],
                        idempotency_key: Key = None) -> Response:
        role = _role(request)
        command = _command({**body, "type": "call.received"}, with_type=False)
        incident_id = f"INC-{uuid.uuid4().hex[:16].upper()}"

        async def decide(_: ProjectionStore) -> Decision:
            return decide_call(command, role, incident_id=incident_id,
                               event_id=str(uuid.uuid4()), now=_now())

        return await writer.submit(store, Job(
            _scoped(idempotency_key, f"{role} call"), outbox, decide,
            lambda a: {"incident_id": a.event.incident_id, "event_id": a.event.event_id}))

    @app.post("/api/incidents/{incident_id}/events", status_code=201, responses=refusals,
              dependencies=dependencies, summary="Record an event of an incident")
    async def post_event(request: Request, store: Store,
                         incident_id: Annotated[str, Path(max_length=200, pattern=NO_NUL)],
                         body: Annotated[dict[str, Any], Body()],
                         idempotency_key: Key = None) -> Response:
        role = _role(request)
        command = _command(body, with_type=True)

        async def decide(current: ProjectionStore) -> Decision:
            return await decide_incident_event(current, incident_id, command, role)

        return await writer.submit(store, Job(
            _scoped(idempotency_key, f"{role} event {incident_id}"), outbox, decide,
            lambda a: {"event_id": a.event.event_id}))

    @app.post("/api/crews", status_code=201, responses=refusals, dependencies=dependencies,
              summary="Roster a crew: a crew.rostered event")
    async def post_crew(request: Request, store: Store, body: Annotated[dict[str, Any], Body()],
                        idempotency_key: Key = None) -> Response:
        role = _role(request)
        data = {k: v for k, v in body.items() if k != "occurred_at"}
        command = _command({"data": data, "occurred_at": body.get("occurred_at")},
                           with_type=False)

        async def decide(_: ProjectionStore) -> Decision:
            return decide_roster(command, role, event_id=str(uuid.uuid4()), now=_now())

        return await writer.submit(store, Job(
            _scoped(idempotency_key, f"{role} crew"), outbox, decide,
            lambda a: {"event_id": a.event.event_id}))

    @app.get("/api/session", response_model=SessionRole, dependencies=dependencies,
             responses={401: responses[401]},
             summary="Who the caller is: its role, and whether the board shows write controls")
    async def session_role(request: Request) -> Response:
        role = _role(request)
        return _json({"role": role, "may_dispatch": role == DISPATCHER})

    @app.get("/board/dispatcher.js", include_in_schema=False)
    async def dispatcher_script() -> Response:
        script = resources.files("dispatch.api").joinpath("dispatcher.js").read_bytes()
        return Response(script, media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    @app.get("/api/crews", responses=responses, dependencies=dependencies,
             summary="Every rostered crew and its status")
    async def get_crews(store: Store) -> Response:
        crews, _ = await crew_view(store)
        return _json({"crews": [c.as_document() for c in crews.values()]})

    @app.get("/api/queue", responses=responses, dependencies=dependencies,
             summary="Open incidents with no crew dispatched, most urgent first")
    async def queue(store: Store) -> Response:
        waiting = [i async for i in store.all_incidents()
                   if i.is_outage and i.times[6] is None and i.closed_at is None
                   and i.dispatched_at is None and i.times[CALL] is not None]
        waiting.sort(key=lambda i: queue_key(i.priority, i.times[CALL], i.incident_id))
        calendar = store.calendar
        return _json({"incidents": [
            {"incident_id": i.incident_id, "grid": i.grid, "area": i.area,
             "priority": i.priority, "customers_affected": i.customers,
             "call": calendar.format_instant(i.times[CALL] or 0)} for i in waiting]})

    @app.get("/api/incidents/{incident_id}/recommendations", responses=refusals,
             dependencies=dependencies, summary="Available crews ranked for an incident")
    async def recommendations(
        store: Store, incident_id: Annotated[str, Path(max_length=200, pattern=NO_NUL)],
    ) -> Response:
        incident = (await store.load_incidents([incident_id])).get(incident_id)
        if incident is None:
            raise Refusal(404, f"no incident {incident_id!r}")
        crews, facts = await crew_view(store)
        calendar = store.calendar
        now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
        start, end = calendar.bounds(calendar.duty_date(now_us))
        skill = required_skill(
            [e.raw for e in await store.incident_events(incident_id)
             if e.type == "call.received"])
        ranked = rank(incident.grid, skill, crews.values(), arrivals_between(facts, start, end))
        return _json({"incident_id": incident_id, "required_skill": skill,
                      "recommendations": [r.as_document() for r in ranked]})


def required_skill(calls: Iterable[bytes]) -> str | None:
    """``data.required_skill`` of the earliest call (ties: smallest event id)."""
    earliest: tuple[datetime, str, str | None] | None = None
    for raw in calls:
        event: Any = parse_event(raw)
        skill = getattr(event.data, "required_skill", None)
        candidate = (event.occurred_at, event.event_id,
                     skill if isinstance(skill, str) and skill else None)
        if earliest is None or candidate[:2] < earliest[:2]:
            earliest = candidate
    return None if earliest is None else earliest[2]
