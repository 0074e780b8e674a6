"""Run an ASGI app with uvicorn inside an already running asyncio loop, and stop it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

_STARTUP_TIMEOUT_S = 10.0
_GRACEFUL_S = 2


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Several servers share one process; whoever runs them decides what a signal means.
        yield


@dataclass
class RunningServer:
    """A listening server: where it is, and how to stop it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (at most a few seconds), then return."""
        if self.task.done():
            return
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), _GRACEFUL_S + 3)
        except TimeoutError:
            self.server.force_exit = True
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0: a port the OS picks); OSError names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


async def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start `app` on host:port (0: any free port); return once it accepts connections.

    Raises OSError when the address cannot be bound.
    """
    return await serve_socket(app, bind(host, port))


async def serve_socket(app: Any, sock: socket.socket) -> RunningServer:
    """Serve `app` on an already listening socket (one a supervisor handed over, say)."""
    host, bound_port = sock.getsockname()[:2]
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_S,
        server_header=False,
    )
    server = _QuietServer(config)

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits on a failed startup; a host must not
            raise RuntimeError(f"server on {host}:{bound_port} failed to start") from exc
        finally:
            sock.close()

    task = asyncio.create_task(run(), name=f"uvicorn {host}:{bound_port}")
    deadline = asyncio.get_running_loop().time() + _STARTUP_TIMEOUT_S
    while not server.started:
        if task.done():
            task.result()  # raises what went wrong
            raise RuntimeError(f"server on {host}:{bound_port} stopped during startup")
        if asyncio.get_running_loop().time() > deadline:
            server.should_exit = True
            raise TimeoutError(f"server on {host}:{bound_port} did not start in time")
        await asyncio.sleep(0.01)
    return RunningServer(server, task, host, int(bound_port))


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningServer]:
    """Serve `app` from a thread of its own (its own loop) for synchronous callers and tests."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"serve {host}:{port}", daemon=True)
    thread.start()
    try:
        running = asyncio.run_coroutine_threadsafe(serve_app(app, host, port), loop).result(
            timeout=_STARTUP_TIMEOUT_S + 5
        )
        try:
            yield running
        finally:
            asyncio.run_coroutine_threadsafe(running.stop(), loop).result(timeout=_GRACEFUL_S + 10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
