"""The ASGI app of ``dispatch serve``: read models, the live stream and the board.

Contract:
- every ``/api/*`` route needs a valid token (``dispatch.api.auth``) unless the
  app was built without tokens (``--no-auth``, loopback only); 401 otherwise;
- JSON bodies are what the CLI prints for the same question (``/api/report`` is
  byte for byte ``dispatch report --format json``);
- reads of the state carry ``X-Change-Seq``: the change-log head read *before*
  the state, so a client that then streams with ``?after=`` that value misses
  nothing (it may see a change it already has: payloads are full states);
- errors are JSON ``{"error": ...}``: 404 unknown incident, 422 naming the bad
  field, 503 (with ``Retry-After``) while the store cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from datetime import time as clock_time
from importlib import resources
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from dispatch.api import models
from dispatch.api.auth import BOARD_HEADER, COOKIE, ApiTokens, bearer
from dispatch.api.feed import RETRY_MS, ChangeFeed, backlog, resync_frame
from dispatch.api.pool import StorePool
from dispatch.api.stream import EventStreamResponse
from dispatch.api.writes import add_write_routes
from dispatch.cli.history import fold_store
from dispatch.cli.incident import as_document
from dispatch.cli.render import render
from dispatch.cli.report import report_document
from dispatch.cli.sheet import render_sheet
from projections.changes import incident_summary
from projections.duty import DutyCalendar, load_zone, parse_duty_start
from projections.history import Window, parse_duty_date, parse_instant
from projections.ports import IncidentQuery, ProjectionStore, StoreUnavailable
from projections.queries import handover_sheet, incident_timeline
from projections.sla import SlaLimits, alerts_document

DEFAULT_STAGE_NORMS: dict[str, float] = {
    "verify": 5.0, "depart": 10.0, "arrive": 30.0, "diagnose": 20.0, "repair": 90.0,
    "restore": 15.0,
}
"""Minutes each stage should take, drawn as the target line of the board's bars."""


@dataclass
class ServeOptions:
    tokens: ApiTokens | None
    """None: no authentication (only ever on a loopback host)."""
    retention_days: float = 7.0
    poll_interval: float = 0.2
    heartbeat_s: float = 15.0
    subscriber_queue: int = 2000
    pool_size: int = 4
    outbox: bool = False
    """Commands also write an outbox row for the relay to Kafka (Kafka configured)."""
    relay: Any = None
    """An ``OutboxRelay`` run for the app's lifetime (``dispatch serve --publish``)."""
    stage_norms: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STAGE_NORMS))
    sla_limits: SlaLimits = field(default_factory=SlaLimits)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: Any, *, seq: int | None = None, status: int = 200) -> Response:
    headers = {} if seq is None else {"X-Change-Seq": str(seq)}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


class TokenGate:
    """ASGI middleware: 401 on ``/api/*`` without a valid token (see module doc)."""

    def __init__(self, app: ASGIApp, tokens: ApiTokens | None) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or self.tokens is None
                or not scope["path"].startswith("/api/")
                or (scope["path"] == "/api/session" and scope["method"] == "POST")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        presented = bearer(headers.get("authorization"))
        if presented is None and (scope["method"] in ("GET", "HEAD")
                                  or headers.get(BOARD_HEADER) == "1"):
            # A write with the cookie must carry the board's own header: another site
            # cannot add it without a CORS preflight, which this app never grants.
            presented = _cookie(headers.get("cookie", ""), COOKIE)
        principal = self.tokens.identify(presented)
        if principal is None:
            body = orjson.dumps({"error": "a valid bearer token is required"})
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class ReportKey(NamedTuple):
    """A report question (calendar and window) and the store state it is answered at."""

    timezone: str
    duty_start: str
    window: Window
    seq: int
    counters: tuple[tuple[str, int], ...]

    @property
    def question(self) -> tuple[Any, ...]:
        return self[:3]


@dataclass(frozen=True)
class Answer:
    """One built JSON answer, kept with its gzip encoding and entity tag: clients
    that accept gzip get the compressed bytes (compressed once, not per request),
    and a client that presents the tag gets 304."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    async def of(cls, body: bytes) -> Answer:
        # Reports of long histories are megabytes: compress off the event loop.
        gzipped = await asyncio.to_thread(gzip.compress, body, 5, mtime=0)
        tag = hashlib.blake2b(body, digest_size=12).hexdigest()
        return cls(body, gzipped, f'"{tag}"')

    def response(self, request: Request, seq: int) -> Response:
        headers = {"X-Change-Seq": str(seq), "ETag": self.etag, "Vary": "Accept-Encoding"}
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(self.gzipped, media_type="application/json",
                            headers={**headers, "Content-Encoding": "gzip"})
        return Response(self.body, media_type="application/json", headers=headers)


class LatestOnly:
    """The newest answer per question (calendar and window), by key; concurrent
    requests for a key being built wait for that build instead of starting their own."""

    def __init__(self) -> None:
        self._done: dict[tuple[Any, ...], tuple[Any, Answer]] = {}
        self._building: dict[Any, asyncio.Future[Answer]] = {}

    async def get(self, key: ReportKey, build: Callable[[], Awaitable[Answer]]) -> Answer:
        slot = key.question
        done = self._done.get(slot)
        if done is not None and done[0] == key:
            return done[1]
        running = self._building.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            value = await build()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            del self._building[key]
        future.set_result(value)
        self._done.pop(slot, None)
        self._done[slot] = (key, value)
        while len(self._done) > 16:  # a few questions, not every one ever asked
            del self._done[next(iter(self._done))]
        return value


async def _store(request: Request) -> AsyncIterator[ProjectionStore]:
    pool: StorePool = request.app.state.pool
    async with pool.store() as opened:
        yield opened


Store = Annotated[ProjectionStore, Depends(_store)]


def create_app(factory: Callable[[], ProjectionStore], options: ServeOptions) -> FastAPI:
    """The app over the stores ``factory`` makes (each call: a new, unopened store)."""
    pool = StorePool(factory, options.pool_size)
    reports = LatestOnly()
    feed = ChangeFeed(factory, poll_interval=options.poll_interval,
                      queue_size=options.subscriber_queue, limits=options.sla_limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await feed.start()
        task = asyncio.create_task(feed.run(), name="change-feed")
        relay = (asyncio.create_task(options.relay.run(), name="outbox-relay")
                 if options.relay is not None else None)
        try:
            yield
        finally:
            if relay is not None:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await feed.close()
            await pool.close()

    app = FastAPI(
        title="Outage-repair dispatch: live read models",
        version="1",
        description="Duty reports, incidents and a live change stream of the outage-repair "
                    "dispatch engine. Every /api/* route needs `Authorization: Bearer TOKEN` "
                    "(or, for reads, the cookie set by POST /api/session).",
        docs_url=None, redoc_url=None,  # their pages load assets from a CDN
        lifespan=lifespan,
    )
    app.state.feed = feed
    app.state.pool = pool
    app.add_middleware(TokenGate, tokens=options.tokens)
    documented_auth = [Security(HTTPBearer(auto_error=False))]
    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": models.Error, "description": "missing or invalid token"},
        422: {"model": models.ValidationFailure, "description": "a query value is invalid"},
        503: {"model": models.Error, "description": "the store cannot be reached; retry"},
    }

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable) -> Response:
        return JSONResponse({"error": "store unavailable, retry shortly"}, status_code=503,
                            headers={"Retry-After": "2"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Framework errors (unparsable body, unknown path, wrong method) in our shape.
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = [{"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                   "message": str(e["msg"]).removeprefix("Value error, ")}
                  for e in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return JSONResponse({"error": f"invalid request: {summary}", "fields": fields},
                            status_code=422)

    add_write_routes(app, outbox=options.outbox, responses=errors,
                     dependencies=documented_auth)

    @app.get("/", include_in_schema=False)
    async def board() -> Response:
        page = resources.files("dispatch.api").joinpath("board.html").read_bytes()
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    @app.post("/api/session", status_code=204, responses={
                  400: {"model": models.Error, "description": "the body is not JSON"},
                  401: errors[401], 422: errors[422]},
              summary="Exchange a token for a cookie the board's EventSource can send")
    async def open_session(body: models.Session) -> Response:
        if options.tokens is not None and options.tokens.identify(body.token) is None:
            raise ApiError(401, "a valid token is required")
        response = Response(status_code=204)
        response.set_cookie(COOKIE, body.token, httponly=True, samesite="strict", path="/api")
        return response

    @app.delete("/api/session", status_code=204, dependencies=documented_auth,
                responses={401: errors[401]})
    async def close_session() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/api")
        return response

    @app.get("/api/status", response_model=models.Status, dependencies=documented_auth,
             responses={401: errors[401], 503: errors[503]})
    async def status(store: Store) -> Response:
        window = await store.change_window()
        calendar = store.calendar
        return _json({
            "change_seq": window.head, "pruned_through": window.pruned_through,
            "retention_days": options.retention_days,
            "duty_timezone": calendar.timezone, "duty_start": calendar.start_text,
            "current_duty_date": calendar.duty_date(time.time_ns() // 1000).isoformat(),
            "stage_norms_minutes": options.stage_norms,
            "live": feed.healthy, "subscribers": len(feed.stats.subscribers),
        }, seq=window.head)

    @app.get("/api/report", response_model=models.Report, dependencies=documented_auth,
             responses=errors, summary="The duty report, as `dispatch report --format json`",
             description="The same options as `dispatch report --store`: another duty "
                         "calendar re-cuts the stored incidents; `from`/`to` report a range "
                         "of duty dates; `as_of` and `known_at` fold only the events that had "
                         "occurred, or had been recorded, by then (docs/history.md). With any "
                         "of those four the body has a `window` object.")
    async def report(
        request: Request,
        store: Store,
        duty_timezone: Annotated[str | None, Query(
            description="IANA zone to cut duty periods in (default: the store's)")] = None,
        duty_start: Annotated[str | None, Query(
            description="HH:MM local start of each duty period (default: the store's)",
            pattern=r"^\d{1,2}:\d{2}$")] = None,
        first: Annotated[str | None, Query(
            alias="from", description="first duty date reported (YYYY-MM-DD, inclusive)",
            max_length=10)] = None,
        last: Annotated[str | None, Query(
            alias="to", description="last duty date reported (YYYY-MM-DD, inclusive)",
            max_length=10)] = None,
        as_of: Annotated[str | None, Query(
            description="only events that occurred at or before this instant "
                        "(RFC 3339 with seconds and an offset)", max_length=40)] = None,
        known_at: Annotated[str | None, Query(
            description="only events recorded at or before this instant: what the control "
                        "room knew then (RFC 3339 with seconds and an offset)",
            max_length=40)] = None,
    ) -> Response:
        calendar = _calendar(store.calendar, duty_timezone, duty_start)
        window = report_window(first, last, as_of, known_at)
        seq = (await store.change_window()).head
        # Every committed change moves the head, and the counters cover batches of
        # only duplicates or rejects: the same key means the same report.
        key = ReportKey(calendar.timezone, calendar.start_text, window, seq,
                        tuple(sorted((await store.counters()).items())))

        async def build() -> Answer:
            folded = await fold_store(store, calendar, window)
            return await Answer.of(render(report_document(folded, window), "json").encode())

        answer = await reports.get(key, build)
        return answer.response(request, seq)

    @app.get("/api/incidents", response_model=models.IncidentPage,
             dependencies=documented_auth, responses=errors,
             summary="Incidents, oldest first call first, with filters and paging")
    async def incidents(
        store: Store,
        state: Annotated[Literal["open", "all"], Query(
            description="open: outages neither restored nor closed")] = "all",
        grid: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        area: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> Response:
        seq = (await store.change_window()).head
        found, total = await store.find_incidents(IncidentQuery(state, grid, area, limit, offset))
        now = time.time_ns() // 1000
        return _json({"total": total, "limit": limit, "offset": offset,
                      "items": [incident_summary(i, store.calendar, options.sla_limits, now)
                                for i in found]}, seq=seq)

    @app.get("/api/duty/{duty_date}", response_model=models.HandoverSheet,
             dependencies=documented_auth, responses=errors,
             summary="One duty period's handover sheet, as `dispatch handover DATE --format json`")
    async def duty(
        store: Store,
        duty_date: Annotated[date, Path(description="the local date the period starts on")],
        duty_timezone: Annotated[str | None, Query(
            description="IANA zone to cut duty periods in (default: the store's)")] = None,
        duty_start: Annotated[str | None, Query(
            description="HH:MM local start of each duty period (default: the store's)",
            pattern=r"^\d{1,2}:\d{2}$")] = None,
    ) -> Response:
        calendar = _calendar(store.calendar, duty_timezone, duty_start)
        seq = (await store.change_window()).head
        sheet = await handover_sheet(store, duty_date,
                                     calendar if calendar != store.calendar else None)
        return Response(render_sheet(sheet, "json").encode(), media_type="application/json",
                        headers={"X-Change-Seq": str(seq)})

    @app.get("/api/alerts", response_model=models.Alerts, dependencies=documented_auth,
             responses={401: errors[401], 503: errors[503]},
             summary="Active SLA alerts as of now, as `dispatch alerts --format json`")
    async def alerts(store: Store) -> Response:
        seq = (await store.change_window()).head
        incidents = [i async for i in store.all_incidents()]
        document = alerts_document(incidents, time.time_ns() // 1000, options.sla_limits)
        return _json(document, seq=seq)

    @app.get("/api/incidents/{incident_id}", response_model=models.IncidentDetail,
             dependencies=documented_auth,
             responses={**errors, 404: {"model": models.Error, "description": "no such incident"}},
             summary="One incident's checkpoints, stage durations and events")
    async def incident(
        store: Store,
        incident_id: Annotated[str, Path(max_length=200, pattern=models.NO_NUL)],
    ) -> Response:
        timeline = await incident_timeline(store, incident_id)
        if timeline is None:
            raise ApiError(404, f"no incident {incident_id!r}")
        return Response(json.dumps(as_document(timeline), ensure_ascii=False).encode(),
                        media_type="application/json")

    @app.get("/api/stream", dependencies=documented_auth,
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "Server-Sent Events: `id:` change sequence, "
                                             "`event:` incident | period | alert | resync"},
                        401: errors[401], 422: errors[422], 503: errors[503]},
             response_class=StreamingResponse,
             summary="Live changes as Server-Sent Events")
    async def stream(
        request: Request,
        after: Annotated[int | None, Query(
            ge=0, description="resume after this sequence (the Last-Event-ID header wins)")
        ] = None,
        last_event_id: Annotated[str | None, Header(
            description="sent by EventSource on reconnect", pattern=r"^\d{1,18}$")] = None,
    ) -> Response:
        resume = int(last_event_id) if last_event_id is not None else after
        subscriber = feed.subscribe()
        try:
            async with pool.store() as store:
                window = await store.change_window()
                opening: list[bytes] = [b"retry: %d\n\n" % RETRY_MS]
                replay: list[bytes] = []
                replayed = 0
                if resume is None:
                    pass
                elif resume < window.pruned_through or resume > window.head:
                    why = ("older than the retained changes" if resume < window.pruned_through
                           else "newer than the store's head")
                    opening.append(resync_frame(subscriber.since, f"{resume} is {why}"))
                else:
                    # Bounded like the live queue: a longer backlog ends the stream after
                    # what was sent, and the client resumes from there.
                    async for chunk, count in backlog(store, resume, subscriber.since,
                                                      feed.calendar, options.sla_limits):
                        replay.append(chunk)
                        replayed += count
                        if replayed >= options.subscriber_queue:
                            break
        except BaseException:
            feed.unsubscribe(subscriber)
            raise
        if replayed >= options.subscriber_queue:
            feed.unsubscribe(subscriber)
            return EventStreamResponse(b"".join(opening + replay), None, options.heartbeat_s,
                                       lambda: None)
        return EventStreamResponse(b"".join(opening + replay), subscriber, options.heartbeat_s,
                                   lambda: feed.unsubscribe(subscriber))

    return app


def _calendar(stored: DutyCalendar, zone: str | None, start: str | None) -> DutyCalendar:
    try:
        if zone is not None:
            load_zone(zone)
        begins: clock_time = parse_duty_start(start) if start is not None else stored.start
    except ValueError as exc:
        field = "duty_timezone" if zone is not None and "zone" in str(exc) else "duty_start"
        raise RequestValidationError([{"loc": ("query", field), "msg": str(exc),
                                       "type": "value_error"}]) from None
    return DutyCalendar(zone or stored.timezone, begins)


def report_window(first: str | None, last: str | None, as_of: str | None,
                  known_at: str | None) -> Window:
    """The window of ``/api/report``'s query; a 422 naming each bad field."""
    problems: list[dict[str, Any]] = []

    def parsed(name: str, value: str | None, parse: Callable[[str], Any]) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            problems.append({"loc": ("query", name), "msg": str(exc), "type": "value_error"})
            return None

    start = parsed("from", first, parse_duty_date)
    end = parsed("to", last, parse_duty_date)
    occurred = parsed("as_of", as_of, parse_instant)
    known = parsed("known_at", known_at, parse_instant)
    if start is not None and end is not None and start > end:
        problems.append({"loc": ("query", "from"), "type": "value_error",
                         "msg": f"from {start} is after to {end}"})
    if problems:
        raise RequestValidationError(problems)
    return Window(start, end, occurred, known)

