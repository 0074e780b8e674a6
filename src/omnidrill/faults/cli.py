"""`omnidrill faultproxy`: run the Toxiproxy-compatible fault proxy in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def faultproxy(
    host: Annotated[str, typer.Option("--host", help="address of the HTTP API")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port of the HTTP API (0: any free)")] = 8474,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="JSON array of proxies to create, as Toxiproxy's -config"),
    ] = None,
) -> None:
    """Serve Toxiproxy's HTTP API and proxies until Ctrl-C or SIGTERM."""
    from omnidrill.faults.server import run_server

    run_server(host, port, config)
