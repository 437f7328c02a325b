"""``dispatch serve``: the HTTP API, the live change stream and the control-room board."""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import socket
import sys
from functools import partial

from dispatch import bootstrap
from dispatch.cli.common import UserError, add_store_option, require_store, settings_from
from dispatch.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "serve", help="serve the read models over HTTP with a live stream and a web board",
        description="Serve the duty report, incidents and a Server-Sent Events stream of every "
                    "committed change over HTTP, and the control-room board at /. Every /api/* "
                    "request needs a token from DISPATCH_API_TOKENS (comma-separated). See "
                    "docs/live-api.md.")
    add_store_option(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080,
                        help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument("--no-auth", action="store_true",
                        help="serve /api/* without tokens: refused unless --host is loopback")
    parser.add_argument("--publish", action="store_true",
                        help="also publish the events written by commands to Kafka "
                             "(DISPATCH_KAFKA_BOOTSTRAP, DISPATCH_TOPIC_EVENTS) through the "
                             "store's outbox; without it they go to the store's event log only")
    parser.add_argument("--poll-interval", type=float, default=0.2, metavar="SECONDS",
                        help="how often to look for new changes in an SQLite store "
                             "(default 0.2; PostgreSQL pushes them)")
    parser.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or UserError in one line (port in use, bad address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def options_from(settings: Settings, no_auth: bool, host: str) -> object:
    from dispatch.api.app import ServeOptions
    from dispatch.api.auth import ApiTokens

    if no_auth:
        if not is_loopback(host):
            raise UserError(f"--no-auth is only allowed on a loopback host, not {host}")
        tokens = None
    else:
        try:
            tokens = ApiTokens.parse(settings.api_tokens.get_secret_value())
        except ValueError as exc:
            raise UserError(f"bad setting {exc}") from None
        if not len(tokens):
            raise UserError("no API tokens: set DISPATCH_API_TOKENS=TOKEN[,TOKEN...] "
                            "(or pass --no-auth on a loopback host)")
    return ServeOptions(tokens=tokens, retention_days=settings.change_retention_days,
                        heartbeat_s=settings.sse_heartbeat_seconds,
                        subscriber_queue=settings.sse_queue_size,
                        sla_limits=settings.sla_limits)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    import uvloop

    from dispatch.api.app import ServeOptions, create_app

    settings = settings_from(args)
    require_store(settings)
    options = options_from(settings, args.no_auth, args.host)
    assert isinstance(options, ServeOptions)
    if not args.poll_interval > 0 or args.poll_interval > 0.25:
        raise UserError("--poll-interval must be more than 0 and at most 0.25 seconds")
    options.poll_interval = args.poll_interval
    factory = partial(bootstrap.read_model_store, settings)
    if args.publish:
        from dispatch.api.relay import OutboxRelay
        from dispatch.kafka.outbox import KafkaEventLog

        options.outbox = True
        options.relay = OutboxRelay(factory, KafkaEventLog(
            settings.kafka_bootstrap, settings.topic_events,
            partial(bootstrap.event_producer, settings)))
    app = create_app(factory, options)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    # httptools and uvloop: writing one shared chunk to hundreds of streams is
    # mostly per-write overhead, which their C implementations cut.
    config = uvicorn.Config(app, log_level="warning", access_log=False, http="httptools",
                            timeout_graceful_shutdown=1, lifespan="on")
    server = uvicorn.Server(config)
    print(f"dispatch serve: listening on http://{args.host}:{port}/ (store "
          f"{_shown(settings.store)})", file=sys.stderr, flush=True)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
    if not server.started:
        raise UserError(f"could not start: is the store at {_shown(settings.store)} reachable?")
    return 0


def _shown(url: str) -> str:
    from dispatch.cli import redact

    return redact(url)
