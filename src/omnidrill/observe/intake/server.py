"""The intake's HTTP API and DogStatsD listener, embeddable (`IntakeServer`, `ThreadedIntake`)
or in the foreground (`run_intake`, behind `omnidrill intake`).

Datadog: POST /api/v2/series, /api/v1/series, /api/v1/distribution_points (a DD-API-KEY
header or `api_key` parameter, any value), DogStatsD datagrams over UDP. Sentry: envelopes
POSTed to /api/<project>/envelope/ by a DSN `http://<key>@host:port/<project>`. Read back:
GET /intake/v1/points?after=SEQ, /intake/v1/events?after=SEQ, /intake/v1/stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omnidrill.errors import UsageError
from omnidrill.observe.intake import wire
from omnidrill.observe.intake.store import IntakeStore

Decoder = Callable[[Any], list[wire.Point]]


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise wire.BadPayload(f"query parameter {name}: expected a whole number, found {raw!r}")
    return int(raw)


def create_app(store: IntakeStore) -> Starlette:
    """The HTTP side of the intake over `store`."""

    async def body_of(request: Request) -> bytes:
        raw = await request.body()
        return wire.decompress(raw, request.headers.get("content-encoding", ""))

    def datadog(decode: Decoder, via: str, answer: dict[str, Any]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            where = f"POST {request.url.path}"
            if not (request.headers.get("dd-api-key") or request.query_params.get("api_key")):
                store.refused(where, "no DD-API-KEY header")
                return JSONResponse({"errors": ["Forbidden"]}, 403)
            try:
                points = decode(wire.parse_json(await body_of(request), where))
            except wire.BadPayload as exc:
                store.refused(where, str(exc))
                return JSONResponse({"errors": [str(exc)]}, exc.status)
            store.add_points(points, via)
            return JSONResponse(answer, 202)

        return endpoint

    async def sentry_envelope(request: Request) -> Response:
        where = f"POST {request.url.path}"
        try:
            envelope = wire.sentry_envelope(await body_of(request))
        except wire.BadPayload as exc:
            store.refused(where, str(exc))
            return JSONResponse({"detail": str(exc)}, exc.status)
        if not _sentry_key(request, envelope.header):
            store.refused(where, "no sentry_key (X-Sentry-Auth, query or envelope dsn)")
            return JSONResponse({"detail": "missing authorization information"}, 401)
        store.add_events(envelope.events, request.path_params["project"])
        store.count("sentry_items", len(envelope.item_types))
        return JSONResponse({"id": envelope.header.get("event_id")}, 200)

    async def sentry_store(request: Request) -> Response:
        """The SDKs' older endpoint: one event as a JSON body."""
        where = f"POST {request.url.path}"
        try:
            event = wire.parse_json(await body_of(request), where)
        except wire.BadPayload as exc:
            store.refused(where, str(exc))
            return JSONResponse({"detail": str(exc)}, exc.status)
        if not isinstance(event, dict):
            store.refused(where, "expected an event object")
            return JSONResponse({"detail": "expected an event object"}, 400)
        if not _sentry_key(request, {}):
            return JSONResponse({"detail": "missing authorization information"}, 401)
        store.add_events([event], request.path_params["project"])
        return JSONResponse({"id": event.get("event_id")}, 200)

    def reader(read: Callable[[int, int], dict[str, Any]], limit: int) -> Callable[..., Any]:
        """GET ...?after=SEQ&limit=N: what arrived after SEQ, at most N (capped) at a time."""

        async def endpoint(request: Request) -> Response:
            try:
                after = _int_param(request, "after", 0)
                asked = min(_int_param(request, "limit", limit), 4 * limit)
            except wire.BadPayload as exc:
                return JSONResponse({"errors": [str(exc)]}, 400)
            return JSONResponse(read(after, asked))

        return endpoint

    async def stats(_: Request) -> Response:
        return JSONResponse(store.stats())

    async def clear(_: Request) -> Response:
        store.clear()
        return Response(status_code=204)

    async def validate(request: Request) -> Response:
        ok = bool(request.headers.get("dd-api-key") or request.query_params.get("api_key"))
        return JSONResponse({"valid": ok}, 200 if ok else 403)

    return Starlette(
        routes=[
            Route(
                "/api/v2/series", datadog(wire.v2_series, "v2", {"errors": []}), methods=["POST"]
            ),
            Route(
                "/api/v1/series", datadog(wire.v1_series, "v1", {"status": "ok"}), methods=["POST"]
            ),
            Route(
                "/api/v1/distribution_points",
                datadog(wire.distribution_points, "distribution", {"status": "ok"}),
                methods=["POST"],
            ),
            Route("/api/v1/validate", validate, methods=["GET"]),
            Route("/api/{project}/envelope/", sentry_envelope, methods=["POST"]),
            Route("/api/{project}/store/", sentry_store, methods=["POST"]),
            Route("/intake/v1/points", reader(store.points_after, 50_000), methods=["GET"]),
            Route("/intake/v1/events", reader(store.events_after, 1000), methods=["GET"]),
            Route("/intake/v1/stats", stats, methods=["GET"]),
            Route("/intake/v1/data", clear, methods=["DELETE"]),
        ]
    )


def _sentry_key(request: Request, header: dict[str, Any]) -> bool:
    auth = request.headers.get("x-sentry-auth", "")
    return (
        "sentry_key=" in auth
        or bool(request.query_params.get("sentry_key"))
        or "@" in str(header.get("dsn", ""))
    )


class _StatsdProtocol(asyncio.DatagramProtocol):
    def __init__(self, store: IntakeStore) -> None:
        self.store = store

    def datagram_received(self, data: bytes, addr: Any) -> None:
        points, problems = wire.statsd_lines(data, time.time())
        if points:
            self.store.add_points(points, "statsd")
        for p in problems:
            self.store.refused("DogStatsD", p)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: whoever runs the intake decides."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind_pair(
    host: str, port: int, statsd_port: int | None
) -> tuple[socket.socket, socket.socket]:
    """A TCP socket for HTTP and a UDP one for DogStatsD (the same number unless told).

    With port 0 the OS picks the TCP port; the UDP port follows it, retried a few times when
    that number is taken for UDP.
    """
    for _ in range(20):
        tcp = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, port))
            tcp.listen(1024)
        except OSError as exc:
            tcp.close()
            raise UsageError(f"intake: cannot listen on {host}:{port} ({exc.strerror})") from None
        bound = int(tcp.getsockname()[1])
        udp = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            udp.bind((host, bound if statsd_port is None else statsd_port))
        except OSError as exc:
            udp.close()
            tcp.close()
            if port == 0 and statsd_port is None:
                continue  # another UDP socket has that number: let the OS pick again
            where = f"{host}:{bound if statsd_port is None else statsd_port}"
            raise UsageError(
                f"intake: cannot receive DogStatsD on udp {where} ({exc.strerror})"
            ) from None
        tcp.setblocking(False)
        udp.setblocking(False)
        return tcp, udp
    raise UsageError(f"intake: found no port free for both TCP and UDP on {host}")


class IntakeServer:
    """The intake in the running event loop: `await start()`, then `url`, `statsd_port`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        statsd_port: int | None = None,
        store: IntakeStore | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._statsd_port_asked = statsd_port
        self.store = store or IntakeStore()
        self.port = 0
        self.statsd_port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._udp: asyncio.DatagramTransport | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        tcp, udp = _bind_pair(self.host, self._port, self._statsd_port_asked)
        self.port = int(tcp.getsockname()[1])
        self.statsd_port = int(udp.getsockname()[1])
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _StatsdProtocol(self.store), sock=udp
        )
        config = uvicorn.Config(
            create_app(self.store), log_level="warning", lifespan="off", access_log=False
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[tcp]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise UsageError("intake: the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)


class ThreadedIntake:
    """An intake in a thread of its own, for code that is not async (tests, benchmarks)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = IntakeServer(host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="intake", daemon=True)

    @property
    def store(self) -> IntakeStore:
        return self.server.store

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ThreadedIntake:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(15)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def dsn(self, key: str = "omnidrill", project: str = "1") -> str:
        """A Sentry DSN that sends to this intake."""
        return f"http://{key}@{self.url.removeprefix('http://')}/{project}"


async def serve(
    host: str,
    port: int,
    statsd_port: int | None = None,
    on_ready: Callable[[IntakeServer], Awaitable[None] | None] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM."""
    server = IntakeServer(host, port, statsd_port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if on_ready is not None:
            maybe = on_ready(server)
            if maybe is not None:
                await maybe
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()


def announce(server: IntakeServer) -> None:
    print(
        f"omnidrill intake listening on {server.url} "
        f"(DogStatsD on udp {server.host}:{server.statsd_port}; "
        f"Sentry DSN http://<key>@{server.url.removeprefix('http://')}/<project>)",
        flush=True,
    )


def run_intake(host: str, port: int, statsd_port: int | None = None) -> None:
    """Serve in the foreground (blocking) and say where."""
    asyncio.run(serve(host, port, statsd_port, announce))
