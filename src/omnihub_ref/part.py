"""`python -m omnihub_ref.part KIND NAME`: one part of the stack in a process of its own.

KIND is `functions`, `control_api` or `rpc_mock`; NAME (`functions-1`, say) is for `ps`.
The supervisor hands over a listening socket (OMNIHUB_LISTEN_FD), the part's settings as JSON
on standard input (keys included, so they never show in `ps`), and a pipe (OMNIHUB_READY_FD)
on which the part says it is ready. SIGTERM and SIGINT stop it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from omnidrill import secrets
from omnidrill.errors import OmnidrillError

Closer = Callable[[], Awaitable[Any]]
PENDING_GAUGE_INTERVAL_S = 5.0


async def _functions(settings: dict[str, Any], closers: list[Closer]) -> Any:
    from omnihub_ref.config import FunctionsConfig
    from omnihub_ref.degrade import Degrade
    from omnihub_ref.functions import Functions, build_backends

    known = {f.name for f in fields(FunctionsConfig)}
    cfg = FunctionsConfig(**{k: v for k, v in settings["functions"].items() if k in known})
    secrets.register(cfg.anon_key, cfg.service_role_key, cfg.redis_url)
    telemetry = _telemetry(settings.get("telemetry", {}), settings.get("instance", ""), closers)
    backends = build_backends(cfg)
    closers.append(backends.aclose)
    degrade = Degrade(**settings["degrade"]) if settings.get("degrade") else None
    fn = Functions(cfg, backends, telemetry, degrade=degrade)
    closers.append(fn.aclose)
    await fn.warm_up()
    if settings.get("pending_gauge"):
        task = asyncio.create_task(_pending_gauge(fn, telemetry), name="pending-approvals")
        closers.append(_canceller(task))
    return fn.app


async def _control_api(settings: dict[str, Any], closers: list[Closer]) -> Any:
    from omnihub_ref.control_api import create_control_app
    from omnihub_ref.stores import ApiError, open_store
    from omnihub_ref.stores.query import parse_read
    from omnihub_ref.stores.schema import EMERGENCY_CONTROLS

    secrets.register(settings["anon_key"], settings["service_role_key"], settings["dsn"])
    try:
        store = await asyncio.to_thread(
            open_store, settings["dsn"], pg_schema=settings.get("schema", "public")
        )
    except ApiError as exc:
        detail = getattr(exc, "details", None) or str(exc)
        raise PartError(f"the control store cannot be opened: {detail}", 5) from None
    closers.append(lambda: asyncio.to_thread(store.close))
    # one read before saying ready: the pool's first connection is not paid by a request
    await asyncio.to_thread(store.select, parse_read(EMERGENCY_CONTROLS, []))
    return create_control_app(
        store, anon_key=settings["anon_key"], service_role_key=settings["service_role_key"]
    )


async def _rpc_mock(settings: dict[str, Any], closers: list[Closer]) -> Any:
    from omnihub_ref.rpc_mock import create_rpc_app

    return create_rpc_app(settings["name"])


KINDS: dict[str, Callable[[dict[str, Any], list[Closer]], Awaitable[Any]]] = {
    "functions": _functions,
    "control_api": _control_api,
    "rpc_mock": _rpc_mock,
}
# Loaded before the settings are read: the supervisor may start a part before it knows them.
PRELOAD = {
    "functions": ("omnihub_ref.functions", "omnihub_ref.telemetry"),
    "control_api": ("omnihub_ref.control_api", "omnihub_ref.stores.postgres_store"),
    "rpc_mock": ("omnihub_ref.rpc_mock",),
}


class PartError(Exception):
    """The part cannot run; the message is for the operator, `code` the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _telemetry(opts: dict[str, Any], instance: str, closers: list[Closer]) -> Any:
    from omnihub_ref.telemetry import DatadogSink, Telemetry, init_sentry

    log_file = opts.get("log_file") or "-"
    if log_file == "-":
        stream = sys.stderr
    else:
        stream = Path(log_file).open("a", encoding="utf-8")  # noqa: SIM115  closed at stop
        closers.append(lambda: asyncio.to_thread(stream.close))
    # the stack's intake: its URL as DD_SITE and any key; else DD_API_KEY and DD_SITE
    sink = DatadogSink(opts.get("dd_api_key"), opts.get("dd_site")) if opts.get("datadog") else None
    dsn = opts.get("sentry_dsn")
    if dsn:
        init_sentry(dsn)
    tm = Telemetry(stream, datadog=sink, sentry=bool(dsn), instance=instance)
    closers.append(lambda: asyncio.to_thread(tm.close))
    return tm


async def _pending_gauge(fn: Any, telemetry: Any) -> None:
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


def _canceller(task: asyncio.Task[None]) -> Closer:
    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return cancel


def _say_ready() -> None:
    fd = os.environ.pop("OMNIHUB_READY_FD", "")
    if fd:
        os.write(int(fd), b"ready\n")
        os.close(int(fd))


async def run(kind: str, settings: dict[str, Any], sock: socket.socket) -> None:
    """Build the part's app, serve it on `sock` until SIGTERM/SIGINT, then close everything."""
    from omnihub_ref.serving import serve_socket

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    closers: list[Closer] = []
    try:
        app = await KINDS[kind](settings, closers)
        server = await serve_socket(app, sock)
        closers.append(server.stop)
        _say_ready()
        await stop.wait()
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in KINDS:
        print(f"usage: python -m omnihub_ref.part {{{','.join(KINDS)}}} NAME", file=sys.stderr)
        return 2
    fd = os.environ.pop("OMNIHUB_LISTEN_FD", "")
    if not fd.isdigit():
        print("error: OMNIHUB_LISTEN_FD names no listening socket", file=sys.stderr)
        return 2
    for module in (*PRELOAD[args[0]], "omnihub_ref.serving"):
        importlib.import_module(module)
    try:
        settings = json.loads(sys.stdin.read() or "{}")
    except ValueError as exc:
        print(f"error: the settings on standard input are not JSON: {exc}", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(fd))
    try:
        asyncio.run(run(args[0], settings, sock))
    except PartError as exc:
        print(f"error: {secrets.scrub(str(exc))}", file=sys.stderr, flush=True)
        return exc.code
    except OmnidrillError as exc:
        print(f"error: {secrets.scrub(str(exc))}", file=sys.stderr, flush=True)
        return int(exc.exit_code)
    except Exception:
        # a traceback helps whoever reads the part's log, but it must not carry a secret
        print(secrets.scrub(traceback.format_exc()), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
