"""The embeddable server (`ToxiproxyServer`) and the blocking entry point (`run_server`)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnidrill.errors import UsageError
from omnidrill.faults.server import gojson
from omnidrill.faults.server.api import API, VERSION, HTTPServer
from omnidrill.faults.server.proxy import APIError, ProxyCollection


class PopulateError(Exception):
    """Populate stopped at an entry; earlier entries were applied (see `proxies`)."""

    def __init__(self, message: str, status: int, proxies: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.status = status
        self.proxies = proxies


class ToxiproxyServer:
    """A Toxiproxy-API-compatible proxy server running in the current event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8474) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.collection = ProxyCollection()
        self._http = HTTPServer(API(self.collection))

    @property
    def port(self) -> int:
        """The bound API port (only known once started when 0 was asked for)."""
        if self._port is None:
            raise RuntimeError("ToxiproxyServer.port is known only after start()")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._port = await self._http.start(self.host, self._requested_port)

    async def stop(self) -> None:
        """Stop the API and every proxy, closing all their connections."""
        await self._http.close()
        await self.collection.close()

    async def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /populate semantics from Python: returns the proxies as the API shows them."""
        entries = gojson.loads(json.dumps(proxies).encode())
        try:
            done, error = await self.collection.populate(entries)
        except APIError as exc:  # the list was rejected before anything was applied
            raise PopulateError(exc.message, exc.status, []) from None
        shown = [p.to_json() for p in done]
        if error is not None:
            raise PopulateError(error.message, error.status, shown)
        return shown


def load_config(config: Path) -> list[dict[str, Any]]:
    """Read a Toxiproxy `-config` file: a JSON array of proxies."""
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{config}: cannot read the proxy config ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{config}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
        raise UsageError(
            f"{config}: expected a JSON array of proxy objects, as Toxiproxy's -config"
        )
    return data


async def serve(
    host: str,
    port: int,
    config: Path | None,
    on_ready: Callable[[ToxiproxyServer, list[dict[str, Any]]], None] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM, then close every listener and connection."""
    proxies = load_config(config) if config is not None else []
    server = ToxiproxyServer(host, port)
    try:
        await server.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        shown: list[dict[str, Any]] = []
        if proxies:
            try:
                shown = await server.populate(proxies)
            except PopulateError as exc:
                raise UsageError(f"{config}: {exc} (status {exc.status})") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready(server, shown)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        await server.stop()


def _announce(server: ToxiproxyServer, proxies: list[dict[str, Any]]) -> None:
    print(f"faultproxy (Toxiproxy API {VERSION}) listening on {server.url}", flush=True)
    for proxy in proxies:
        state = "enabled" if proxy["enabled"] else "disabled"
        print(f"  {proxy['name']}: {proxy['listen']} -> {proxy['upstream']} ({state})", flush=True)


def run_server(
    host: str,
    port: int,
    config: Path | None,
    on_ready: Callable[[ToxiproxyServer, list[dict[str, Any]]], None] | None = _announce,
) -> None:
    """Serve the Toxiproxy API until SIGINT/SIGTERM (blocking); prints where it listens."""
    asyncio.run(serve(host, port, config, on_ready))


def main(argv: list[str] | None = None) -> int:
    """`python -m omnidrill.faults.server --host H --port P --config proxies.json`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m omnidrill.faults.server",
        description="Toxiproxy-API-compatible fault proxy (TCP toxics; HTTP toxics as an "
        "extension: http_error, http_replace)",
    )
    parser.add_argument("--host", "-host", default="127.0.0.1", help="API host (127.0.0.1)")
    parser.add_argument("--port", "-port", type=int, default=8474, help="API port (8474)")
    parser.add_argument("--config", "-config", type=Path, help="JSON array of proxies to create")
    args = parser.parse_args(argv)
    try:
        run_server(args.host, args.port, args.config)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0
