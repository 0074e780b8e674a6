"""The reference OmniHub stack in one process: control API, mock providers, fault proxy, functions.

The functions reach every upstream through a fault-proxy path named as CONTRACT section 8
names it, so drills can cut each one. `run_stack` serves until told to stop and writes a
target profile that points at what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets as pysecrets
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from omnidrill import secrets
from omnidrill.errors import Inconclusive, UsageError
from omnihub_ref.config import CONTROLS_ROW_ID, FunctionsConfig
from omnihub_ref.functions import Backends, Functions, build_backends
from omnihub_ref.telemetry import DatadogSink, Telemetry, init_sentry

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
}
EXTRA_INSTANCE_OFFSET = 9  # instance i >= 1 listens on base + 9 + i

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
    datadog: bool = False
    sentry_dsn: str | None = None
    log_file: Path | None = None  # JSON telemetry lines; default <run_dir>/functions.jsonl
    name: str = "local"

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
        if self.base_port and not 1024 <= self.base_port <= 65535 - 50:
            raise UsageError(f"--base-port must be 0 or within 1024-65485, got {self.base_port}")
        if self.redis and urlsplit(self.redis).scheme not in ("redis", "rediss"):
            raise UsageError(
                f"--redis must be a redis:// URL, got scheme {urlsplit(self.redis).scheme!r}"
            )
        if self.postgres and urlsplit(self.postgres).scheme not in ("postgres", "postgresql"):
            raise UsageError("--postgres must be a postgresql:// DSN")
        # the functions' own checks, before anything listens
        FunctionsConfig(**{k: v for k, v in self.limits().items()})


@dataclass
class RunningStack:
    """What runs where, once started."""

    options: StackOptions
    urls: dict[str, str] = field(default_factory=dict)
    proxies: list[dict[str, Any]] = field(default_factory=list)
    instance_urls: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()
        self.closers.clear()


def _port(opts: StackOptions, name: str) -> int:
    return opts.base_port + PORT_OFFSETS[name] if opts.base_port else 0


def _instance_port(opts: StackOptions, i: int) -> int:
    if not opts.base_port:
        return 0
    return opts.base_port if i == 0 else opts.base_port + EXTRA_INSTANCE_OFFSET + i


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _redis_via(url: str, listen: str) -> str:
    """The Redis URL with its host:port replaced by the proxy's listen address."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{listen}" if userinfo else listen
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _redis_upstream(url: str) -> str:
    parts = urlsplit(url)
    return f"{_url_host(parts.hostname or '127.0.0.1')}:{parts.port or 6379}"


async def _open_store(open_store: Callable[..., Any], opts: StackOptions) -> Any:
    """The control tables' store, migrated; an unreachable database is no verdict (exit 5)."""
    from omnihub_ref.stores import ApiError

    try:
        return await asyncio.to_thread(open_store, opts.postgres, opts.run_dir / "control.sqlite")
    except ApiError as exc:
        detail = getattr(exc, "details", None) or str(exc)
        raise Inconclusive(secrets.scrub(f"the control store cannot be opened: {detail}")) from None


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


async def start_stack(opts: StackOptions) -> RunningStack:
    """Start every part; on any failure stop what already started and raise."""
    from omnidrill.faults.server import PopulateError, ToxiproxyServer
    from omnihub_ref import serving
    from omnihub_ref.control_api import create_control_app
    from omnihub_ref.rpc_mock import create_rpc_app
    from omnihub_ref.stores import open_store

    opts.check()
    opts.run_dir.mkdir(parents=True, exist_ok=True)
    anon = opts.anon_key or f"anon-{pysecrets.token_urlsafe(18)}"
    service = opts.service_role_key or f"service-{pysecrets.token_urlsafe(18)}"
    secrets.register(anon, service, opts.sentry_dsn)  # DSN passwords: scrub() patterns
    limits = opts.limits()
    host = opts.host
    h = _url_host(host)
    stack = RunningStack(opts)
    try:
        if opts.redis:
            await _check_redis(opts.redis)
        # 1. the control API over its store
        store = await _open_store(open_store, opts)
        stack.closers.append(_sync_closer(store.close))
        control = await serving.serve(
            create_control_app(store, anon_key=anon, service_role_key=service),
            host,
            _port(opts, "control_api"),
        )
        stack.closers.append(control.stop)
        stack.urls["control_api"] = f"http://{h}:{control.port}/rest/v1"
        # 2. the mock providers
        for which in ("primary", "fallback"):
            srv = await serving.serve(
                create_rpc_app(which), host, _port(opts, f"rpc_{which}_direct")
            )
            stack.closers.append(srv.stop)
            stack.urls[f"rpc_{which}"] = f"http://{h}:{srv.port}"
        # 3. the fault proxy and its paths
        toxi = ToxiproxyServer(host, _port(opts, "toxiproxy"))
        await toxi.start()
        stack.closers.append(toxi.stop)
        stack.urls["toxiproxy"] = f"http://{h}:{toxi.port}"
        wanted = [
            ("rpc_primary", urlsplit(stack.urls["rpc_primary"]).netloc),
            ("rpc_fallback", urlsplit(stack.urls["rpc_fallback"]).netloc),
            ("control_plane", urlsplit(stack.urls["control_api"]).netloc),
        ]
        if opts.redis:
            wanted.append(("redis", _redis_upstream(opts.redis)))
        populated = await toxi.populate(
            [
                {"name": name, "listen": f"{h}:{_port(opts, name)}", "upstream": upstream}
                for name, upstream in wanted
            ]
        )
        listens = {p["name"]: p["listen"] for p in populated}
        stack.proxies = [
            {"name": name, "listen": listens[name], "upstream": upstream}
            for name, upstream in wanted
        ]
        # 4. the functions, every upstream through its proxy
        telemetry = _telemetry(opts, stack)
        cfg = FunctionsConfig(
            rpc_primary_url=f"http://{listens['rpc_primary']}",
            rpc_fallback_url=f"http://{listens['rpc_fallback']}",
            control_api_url=f"http://{listens['control_plane']}/rest/v1",
            anon_key=anon,
            service_role_key=service,
            redis_url=_redis_via(opts.redis, listens["redis"]) if opts.redis else None,
            redis_prefix=opts.redis_prefix,
            trust_forwarded_for=opts.trust_forwarded_for,
            rate_limit=limits["rate_limit"],
            rate_window_s=limits["rate_window_s"],
            rate_algorithm=limits["rate_algorithm"],
            approval_ttl_s=limits["approval_ttl_s"],
            rpc_timeout_ms=limits["rpc_timeout_ms"],
            controls_ttl_ms=limits["controls_ttl_ms"],
            controls_timeout_ms=limits["controls_timeout_ms"],
        )
        backends: Backends = build_backends(cfg)  # one limiter and store for every instance
        stack.closers.append(backends.aclose)
        for i in range(opts.instances):
            fn = Functions(cfg, backends, telemetry)
            stack.closers.append(fn.aclose)
            srv = await serving.serve(fn.app, host, _instance_port(opts, i))
            stack.closers.append(srv.stop)
            stack.instance_urls.append(f"http://{h}:{srv.port}")
        gauge = asyncio.create_task(_pending_gauge(fn, telemetry), name="pending-approvals")
        stack.closers.append(_canceller(gauge))
        stack.profile = build_profile(opts, stack, anon, service, limits)
        if opts.profile_out is not None:
            write_profile(opts.profile_out, stack.profile)
        return stack
    except PopulateError as exc:
        await stack.aclose()
        raise UsageError(
            f"the fault proxy could not open its paths ({exc}); choose another --base-port, "
            "or 0 for ports the OS picks"
        ) from None
    except OSError as exc:
        await stack.aclose()
        raise UsageError(
            f"{exc}; choose another --base-port (the stack uses a block of "
            f"{EXTRA_INSTANCE_OFFSET + opts.instances} ports), or 0 for ports the OS picks"
        ) from None
    except BaseException:
        await stack.aclose()
        raise


PENDING_GAUGE_INTERVAL_S = 5.0


async def _pending_gauge(fn: Functions, telemetry: Telemetry) -> None:
    """Report omnihub.approval_queue.pending per risk level, read over the control path."""
    while True:
        try:
            counts = await fn.controls.pending_by_risk()
        except Exception as exc:  # the control path may be cut by a drill; keep trying
            telemetry.error(
                f"pending approvals unreadable ({type(exc).__name__})", "", "GAUGE_UNREADABLE"
            )
        else:
            for level, n in counts.items():
                telemetry.gauge("omnihub.approval_queue.pending", n, [f"risk_level:{level}"])
        await asyncio.sleep(PENDING_GAUGE_INTERVAL_S)


def _canceller(task: asyncio.Task[None]) -> Callable[[], Awaitable[Any]]:
    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return cancel


def _telemetry(opts: StackOptions, stack: RunningStack) -> Telemetry:
    log_path = opts.log_file or (opts.run_dir / "functions.jsonl")
    if str(log_path) == "-":
        stream = sys.stderr
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stream = log_path.open("a", encoding="utf-8")
        stack.closers.append(_sync_closer(stream.close))
    stack.urls["telemetry_log"] = str(log_path)
    sink = DatadogSink() if opts.datadog else None
    if opts.sentry_dsn:
        init_sentry(opts.sentry_dsn)
    tm = Telemetry(stream, datadog=sink, sentry=bool(opts.sentry_dsn))
    stack.closers.append(_sync_closer(tm.close))
    return tm


def _sync_closer(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def close() -> None:
        await asyncio.to_thread(fn)

    return close


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
            "primary": stack.urls["rpc_primary"],
            "fallback": stack.urls["rpc_fallback"],
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
    _validate_profile(profile)
    return profile


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


async def run_stack(
    opts: StackOptions, on_ready: Callable[[RunningStack], None] | None = None
) -> None:
    """Start the stack, serve until SIGINT/SIGTERM, then stop everything."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    stack = await start_stack(opts)
    try:
        if on_ready is not None:
            on_ready(stack)
        await stop.wait()
    finally:
        await stack.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
