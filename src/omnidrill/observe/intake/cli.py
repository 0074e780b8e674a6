"""`omnidrill intake`: the Datadog- and Sentry-compatible intake in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer


def intake(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", help="HTTP port, and DogStatsD's UDP port unless told (0: any)"),
    ] = 8125,
    statsd_port: Annotated[
        int | None, typer.Option("--statsd-port", help="UDP port of DogStatsD (default --port)")
    ] = None,
) -> None:
    """Receive what a target sends to Datadog (API v1/v2 series, distribution points,
    DogStatsD) and to Sentry (envelopes), and keep it for drills to judge CONTRACT O1/O2.

    Point a target at it with DD_SITE=http://HOST:PORT (any DD_API_KEY) and
    SENTRY_DSN=http://KEY@HOST:PORT/PROJECT; a profile reads it with `observe: {intake: URL}`.
    """
    from omnidrill.observe.intake.server import run_intake

    run_intake(host, port, statsd_port)
