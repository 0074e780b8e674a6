"""`omnidrill faultproxy`: run the Toxiproxy-compatible fault proxy in the foreground.

Flags are toxiproxy-server's, in both spellings (`-port 8474` and `--port 8474`), so scripts
written for the Go binary start this one unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omnidrill.errors import UsageError


def faultproxy(
    host: Annotated[
        str, typer.Option("--host", "-host", help="address of the HTTP API")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-port", help="port of the HTTP API (0: any free)")
    ] = 8474,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-config", help="JSON array of proxies to create, as Toxiproxy's -config"
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            "-seed",
            help="accepted for toxiproxy-server scripts; no effect (Toxiproxy never reads the "
            "random source it seeds)",
        ),
    ] = None,
    proxy_metrics: Annotated[
        bool, typer.Option("--proxy-metrics", "-proxy-metrics", hidden=True)
    ] = False,
    runtime_metrics: Annotated[
        bool, typer.Option("--runtime-metrics", "-runtime-metrics", hidden=True)
    ] = False,
) -> None:
    """Serve Toxiproxy's HTTP API and proxies until Ctrl-C or SIGTERM."""
    from omnidrill.faults.server import run_server

    if proxy_metrics or runtime_metrics:
        flag = "-proxy-metrics" if proxy_metrics else "-runtime-metrics"
        raise UsageError(
            f"{flag}: this fault proxy has no /metrics endpoint (README: what is not there yet); "
            "drop the flag"
        )
    del seed  # accepted, and like Toxiproxy's, without effect
    run_server(host, port, config)
