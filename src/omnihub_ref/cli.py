"""`omnidrill up`: start the reference OmniHub stack and write its target profile."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from omnidrill import secrets
from omnihub_ref.config import RATE_ALGORITHMS

if TYPE_CHECKING:
    from omnihub_ref.stack import RunningStack


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


# Paragraphs of one line each: the help screen wraps them to the terminal's width.
UP_HELP = "\n\n".join(
    [
        "Start the reference OmniHub stack, one process per part, until Ctrl-C or SIGTERM.",
        "Parts: PostgreSQL and Redis (embedded from their wheels unless --postgres / --redis), "
        "the control API, two mock RPC providers, the fault proxy, a telemetry intake and N "
        "functions instances. A part that stops on its own stops the stack: `up` says which "
        "and exits 5.",
        "The functions send their metrics (Datadog API client) and errors (sentry-sdk) to the "
        "intake, and the profile says so (observe:), so drills check that the monitors alert "
        "(CONTRACT O1) and errors reach Sentry (O2). --no-metrics: they send nothing, and "
        "drills fail O1. --datadog or --sentry-dsn: they send to Datadog or Sentry instead, no "
        "intake is started and the profile has no observe: (O1 and O2 skipped).",
        "Reads these variables of CONTRACT section 8 (a flag wins over its variable): "
        "DATABASE_URL, REDIS_URL, RPC_PRIMARY_URL, RPC_FALLBACK_URL, CONTROL_API_URL, "
        "RATE_LIMIT, RATE_WINDOW_S, RATE_ALGORITHM, APPROVAL_TTL_S, RPC_TIMEOUT_MS, "
        "CONTROLS_TTL_MS, CONTROLS_TIMEOUT_MS, ANON_KEY and SERVICE_ROLE_KEY (random keys when "
        "unset), TRUST_FORWARDED_FOR, SENTRY_DSN, DD_API_KEY and DD_SITE (with --datadog).",
        "An http:// URL given for a provider or the control API is reached through the fault "
        "proxy, so drills can cut it; an https:// one is reached directly (a TCP proxy would "
        "break its TLS) and the profile offers no path for it: drills that need one are "
        "reported skipped.",
    ]
)


def up(
    profile_out: Annotated[
        Path, typer.Option("--profile-out", help="where to write the target profile")
    ] = Path("targets/local.yaml"),
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            help="folder for the parts' logs, the embedded databases and the telemetry lines "
            "(default .omnidrill/)",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address every part listens on")] = (
        "127.0.0.1"
    ),
    base_port: Annotated[
        int,
        typer.Option(
            "--base-port",
            help="first port of the stack's block (instance 0 on it, the other parts after "
            "it; see the README); 0: OS-chosen ports",
        ),
    ] = 54321,
    instances: Annotated[
        int, typer.Option("--instances", help="functions instances, one process each")
    ] = 1,
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            help="Postgres DSN for the control tables (default: an embedded PostgreSQL)",
            envvar="DATABASE_URL",
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            help="Redis URL for limiter and idempotency (default: an embedded Redis)",
            envvar="REDIS_URL",
        ),
    ] = None,
    redis_prefix: Annotated[
        str, typer.Option("--redis-prefix", help="prefix of every Redis key")
    ] = "omnihub:",
    rpc_primary_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-primary-url",
            help="an external primary provider instead of the mock one",
            envvar="RPC_PRIMARY_URL",
        ),
    ] = None,
    rpc_fallback_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-fallback-url",
            help="an external fallback provider instead of the mock one",
            envvar="RPC_FALLBACK_URL",
        ),
    ] = None,
    control_api_url: Annotated[
        str | None,
        typer.Option(
            "--control-api-url",
            help="an external control API (…/rest/v1, with SERVICE_ROLE_KEY) instead of the "
            "stack's own and its database",
            envvar="CONTROL_API_URL",
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="drill values: 20 per 5 s, approval TTL 3 s, RPC timeout 800 ms, "
            "controls TTL 200 ms, controls timeout 500 ms",
        ),
    ] = False,
    rate_limit: Annotated[
        int | None, typer.Option("--rate-limit", help="requests per window", envvar="RATE_LIMIT")
    ] = None,
    rate_window_s: Annotated[
        int | None,
        typer.Option("--rate-window-s", help="window in seconds", envvar="RATE_WINDOW_S"),
    ] = None,
    rate_algorithm: Annotated[
        str,
        typer.Option(
            "--rate-algorithm", help="fixed_window or sliding_window", envvar="RATE_ALGORITHM"
        ),
    ] = "fixed_window",
    approval_ttl_s: Annotated[
        float | None,
        typer.Option("--approval-ttl-s", help="pending approvals expire", envvar="APPROVAL_TTL_S"),
    ] = None,
    rpc_timeout_ms: Annotated[
        int | None,
        typer.Option("--rpc-timeout-ms", help="per provider attempt", envvar="RPC_TIMEOUT_MS"),
    ] = None,
    controls_ttl_ms: Annotated[
        int | None,
        typer.Option("--controls-ttl-ms", help="controls cache", envvar="CONTROLS_TTL_MS"),
    ] = None,
    controls_timeout_ms: Annotated[
        int | None,
        typer.Option(
            "--controls-timeout-ms", help="one controls read", envvar="CONTROLS_TIMEOUT_MS"
        ),
    ] = None,
    trust_forwarded_for: Annotated[
        bool,
        typer.Option(
            "--trust-forwarded-for/--no-trust-forwarded-for",
            help="count clients by X-Forwarded-For",
            envvar="TRUST_FORWARDED_FOR",
        ),
    ] = True,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics/--no-metrics",
            help="send metrics and errors to the stack's intake; --no-metrics: send nothing",
        ),
    ] = True,
    datadog: Annotated[
        bool,
        typer.Option(
            "--datadog", help="send metrics to Datadog (DD_API_KEY, DD_SITE), not to an intake"
        ),
    ] = False,
    sentry_dsn: Annotated[
        str | None,
        typer.Option(
            "--sentry-dsn", help="send errors to that Sentry, not to an intake", envvar="SENTRY_DSN"
        ),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            help="JSON telemetry lines (default <run-dir>/functions.jsonl; - for stderr)",
        ),
    ] = None,
    degrade_last_latency_ms: Annotated[
        float,
        typer.Option(
            "--degrade-last-latency-ms",
            help="canary demo (off by default): the last instance adds this many ms to every "
            "function request",
        ),
    ] = 0.0,
    degrade_last_error_rate: Annotated[
        float,
        typer.Option(
            "--degrade-last-error-rate",
            help="canary demo (off by default): the last instance answers this percentage of "
            "function requests 500 INTERNAL_ERROR",
        ),
    ] = 0.0,
) -> None:
    # the stack pulls in the servers and their clients: only when `up` really runs
    import asyncio

    from omnihub_ref.stack import StackOptions, run_stack

    if rate_algorithm not in RATE_ALGORITHMS:
        raise typer.BadParameter(
            f"--rate-algorithm must be one of {', '.join(RATE_ALGORITHMS)}, got {rate_algorithm!r}"
        )
    # Flags win over the environment variables of CONTRACT section 8 (typer's envvar=).
    opts = StackOptions(
        run_dir=run_dir or Path(".omnidrill"),
        profile_out=profile_out,
        host=host,
        base_port=base_port,
        instances=instances,
        postgres=postgres,
        redis=redis,
        redis_prefix=redis_prefix,
        rpc_primary_url=rpc_primary_url,
        rpc_fallback_url=rpc_fallback_url,
        control_api_url=control_api_url,
        fast=fast,
        rate_limit=rate_limit,
        rate_window_s=rate_window_s,
        rate_algorithm=rate_algorithm,
        approval_ttl_s=approval_ttl_s,
        rpc_timeout_ms=rpc_timeout_ms,
        controls_ttl_ms=controls_ttl_ms,
        controls_timeout_ms=controls_timeout_ms,
        anon_key=_env("ANON_KEY"),
        service_role_key=_env("SERVICE_ROLE_KEY"),
        trust_forwarded_for=trust_forwarded_for,
        datadog=datadog,
        sentry_dsn=sentry_dsn,
        metrics=metrics,
        log_file=log_file,
        degrade_last_latency_ms=degrade_last_latency_ms,
        degrade_last_error_rate=degrade_last_error_rate,
    )
    console = Console()

    def ready(stack: RunningStack) -> None:
        console.print(stack_table(stack))
        console.print(
            f"profile written to [bold]{profile_out}[/bold]; Ctrl-C stops everything",
            highlight=False,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_stack(opts, ready))
    console.print("stack stopped")


up.__doc__ = UP_HELP


def stack_table(stack: RunningStack) -> Table:
    """What runs where, one process per part, for the terminal."""
    table = Table(title="omnidrill reference stack", show_lines=False)
    table.add_column("part")
    table.add_column("pid", justify="right")
    table.add_column("where", overflow="fold")
    table.add_column("notes", overflow="fold")

    def row(part: str, label: str, where: str, note: str = "") -> None:
        pid = stack.pids.get(part)
        table.add_row(label, str(pid) if pid else "-", where, note or stack.notes.get(part, ""))

    for i, url in enumerate(stack.instance_urls):
        row(f"functions-{i}", f"functions #{i}", f"{url}/functions/v1")
    row("control_api", "control API", stack.urls["control_api"])
    if "postgres" in stack.urls:
        row("postgres", "PostgreSQL", secrets.scrub(stack.urls["postgres"]))
    row("redis", "Redis", secrets.scrub(stack.urls["redis"]))
    row("rpc_primary", "RPC primary", stack.urls["rpc_primary"])
    row("rpc_fallback", "RPC fallback", stack.urls["rpc_fallback"])
    row("faultproxy", "fault proxy API", stack.urls["toxiproxy"])
    for p in stack.proxies:
        table.add_row(f"  path {p['name']}", "", p["listen"], f"→ {p['upstream']}")
    if "intake" in stack.urls:
        row("intake", "telemetry intake", stack.urls["intake"])
    lim = stack.profile["limits"]
    table.add_row(
        "limits",
        "",
        f"{lim['rate_limit']} per {lim['rate_window_s']} s ({lim['rate_algorithm']})",
        "in Redis",
    )
    opts = stack.options
    sinks = ["JSON lines"]
    if "intake" in stack.urls and opts.metrics:
        sinks += ["the intake (metrics, errors)"]
    sinks += ["Datadog"] if opts.datadog else []
    sinks += ["Sentry"] if opts.sentry_dsn else []
    table.add_row("telemetry", "", stack.urls.get("telemetry_log", ""), " + ".join(sinks))
    observe = stack.profile.get("observe")
    table.add_row(
        "detection",
        "",
        f"observe: intake, env {observe['env']}" if observe else "-",
        f"O1 within {lim['detect_timeout_s']:g} s, OK within {lim['resolve_timeout_s']:g} s"
        if observe
        else "no observe: in the profile (O1, O2 skipped; add observe: {datadog: true} to "
        "read Datadog)",
    )
    if stack.work_dir is not None:
        table.add_row("logs", "", str(stack.work_dir / "logs"), "one file per part")
    return table


def main() -> None:
    """`python -m omnihub_ref`: the stack's command, which `omnidrill up` runs."""
    from omnidrill.cliutil import HELP_OPTIONS, show_flags_as_flags, usage_errors

    show_flags_as_flags()
    app = typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, context_settings=HELP_OPTIONS
    )
    app.command()(up)
    from omnidrill.errors import ExitCode, OmnidrillError

    try:
        app(standalone_mode=False, prog_name="omnidrill up")
    except OmnidrillError as exc:
        Console(stderr=True).print(
            f"error: {secrets.scrub(str(exc))}", highlight=False, markup=False
        )
        raise SystemExit(int(exc.exit_code)) from None
    except usage_errors() as exc:
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(int(ExitCode.BAD_INPUT)) from None
