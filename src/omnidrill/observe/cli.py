"""`omnidrill monitors ...` and `omnidrill dashboards ...`: thin commands over the observe API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from omnidrill.errors import RunRefused, UsageError

if TYPE_CHECKING:
    from omnidrill.observe.compile import Compiled, Kind

monitors_app = typer.Typer(
    name="monitors",
    help="Datadog monitors and SLOs as code: validate, render, plan, apply, prune, test.",
    no_args_is_help=True,
)
dashboards_app = typer.Typer(
    name="dashboards",
    help="Datadog dashboards as code: validate, render, plan, apply, prune.",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True)

EnvOpt = Annotated[
    str,
    typer.Option("--env", "-e", help="environment: monitors/env/<ENV>.yaml holds its variables"),
]
RootOpt = Annotated[
    Path, typer.Option("--root", help="project folder holding monitors/, dashboards/")
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var", help="extra template variable NAME=VALUE (repeatable)", metavar="NAME=VALUE"
    ),
]
ConfirmOpt = Annotated[
    str | None,
    typer.Option("--confirm", help="name of a production environment, to allow changing it"),
]
OutOpt = Annotated[Path, typer.Option("--out", help="folder for the JSON files")]
ExitCodeOpt = Annotated[bool, typer.Option("--exit-code", help="exit 1 when there are changes")]
YesOpt = Annotated[bool, typer.Option("--yes", help="really delete")]

MONITOR_KINDS: set[Kind] = {"monitor", "slo"}
DASHBOARD_KINDS: set[Kind] = {"dashboard"}


def _variables(root: Path, env: str, var: list[str] | None) -> dict[str, Any]:
    from omnidrill.cliutil import parse_vars
    from omnidrill.observe.source import env_variables

    return {**env_variables(root, env), **parse_vars(var or [])}


def _compile(what: str, root: Path, env: str, var: list[str] | None) -> Compiled:
    from omnidrill.observe.compile import compile_dashboards, compile_monitors

    variables = _variables(root, env, var)
    if what == "monitors":
        return compile_monitors(root, env, variables)
    return compile_dashboards(root, env, variables)


def _guard_production(compiled: Compiled, confirm: str | None) -> None:
    from omnidrill.observe.source import is_production

    if is_production(compiled.variables) and confirm != compiled.env:
        raise RunRefused(
            f"environment {compiled.env!r} is production: "
            f"changing it needs --confirm {compiled.env}"
        )


def _validate(what: str, root: Path, env: str, var: list[str] | None) -> None:
    compiled = _compile(what, root, env, var)
    if what == "monitors":
        from omnidrill.observe.monitor_tests import run_tests
        from omnidrill.observe.source import files_of

        # the tests' files, series and monitor names are checked; their verdicts are `test`'s
        run_tests(root, env, _variables(root, env, var))
        out.print(
            f"{len(compiled.monitors)} monitor(s), {len(compiled.slos)} SLO(s) and "
            f"{len(files_of(root, 'monitor_test'))} test file(s) valid for {env}"
        )
    else:
        out.print(f"{len(compiled.dashboards)} dashboard(s) valid for {env}")


def _render(what: str, root: Path, env: str, var: list[str] | None, dest: Path) -> None:
    from omnidrill.observe.compile import render

    written = render(_compile(what, root, env, var), dest)
    out.print(f"wrote {len(written)} file(s) under {dest}")


def _plan(
    what: str, kinds: set[Kind], root: Path, env: str, var: list[str] | None, exit_code: bool
) -> None:
    from omnidrill.observe.ddclient import DatadogSettings
    from omnidrill.observe.sync import describe, plan_env

    compiled = _compile(what, root, env, var)
    settings = DatadogSettings.from_env()
    _, changes = plan_env(settings, compiled, kinds)
    lines = describe(changes)
    for line in lines:
        out.print(line, markup=False)
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete")}
    out.print(
        f"plan for {env}: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete (prune), "
        f"{sum(c.action == 'unchanged' for c in changes)} unchanged"
    )
    if exit_code and lines:
        raise typer.Exit(1)


def _apply(
    what: str, kinds: set[Kind], root: Path, env: str, var: list[str] | None, confirm: str | None
) -> None:
    from omnidrill.observe.ddclient import DatadogSettings, api_client
    from omnidrill.observe.sync import apply, describe, plan_env

    compiled = _compile(what, root, env, var)
    _guard_production(compiled, confirm)
    settings = DatadogSettings.from_env()
    live, changes = plan_env(settings, compiled, kinds)
    todo = [c for c in changes if c.action in ("create", "update")]
    for line in describe(todo):
        out.print(line, markup=False)
    with api_client(settings) as client:
        done = apply(settings, client, compiled, live, todo)
    left = sum(c.action == "delete" for c in changes)
    hint = f"; {left} managed object(s) not in the YAML: see `prune`" if left else ""
    out.print(f"applied {len(done)} change(s) to {env}{hint}")


def _prune(
    what: str,
    kinds: set[Kind],
    root: Path,
    env: str,
    var: list[str] | None,
    confirm: str | None,
    yes: bool,
) -> None:
    from omnidrill.observe.ddclient import DatadogSettings, api_client
    from omnidrill.observe.sync import describe, plan_env, prune

    compiled = _compile(what, root, env, var)
    settings = DatadogSettings.from_env()
    _, changes = plan_env(settings, compiled, kinds)
    doomed = [c for c in changes if c.action == "delete"]
    for line in describe(doomed):
        out.print(line, markup=False)
    if not doomed:
        out.print(f"nothing to prune in {env}")
        return
    if not yes:
        out.print(f"{len(doomed)} object(s) would be deleted; nothing deleted: add --yes")
        return
    _guard_production(compiled, confirm)
    with api_client(settings) as client:
        done = prune(settings, client, doomed)
    out.print(f"deleted {len(done)} managed object(s) from {env}")


# --- monitors -------------------------------------------------------------------------------


@monitors_app.command("validate")
def monitors_validate(
    env: EnvOpt = "staging", root: RootOpt = Path("."), var: VarOpt = None
) -> None:
    """Check monitors/ and monitors/tests/ as Datadog would (no API call)."""
    _validate("monitors", root, env, var)


@monitors_app.command("render")
def monitors_render(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    dest: OutOpt = Path("build/datadog"),
) -> None:
    """Write the API's JSON: monitors/<id>.json and slos/<id>.json under --out."""
    _render("monitors", root, env, var, dest)


@monitors_app.command("plan")
def monitors_plan(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    exit_code: ExitCodeOpt = False,
) -> None:
    """Compare with what is live: create, update (field by field), delete."""
    _plan("monitors", MONITOR_KINDS, root, env, var, exit_code)


@monitors_app.command("apply")
def monitors_apply(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    confirm: ConfirmOpt = None,
) -> None:
    """Create and update monitors and SLOs so that live equals the YAML."""
    _apply("monitors", MONITOR_KINDS, root, env, var, confirm)


@monitors_app.command("prune")
def monitors_prune(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    confirm: ConfirmOpt = None,
    yes: YesOpt = False,
) -> None:
    """Delete managed monitors and SLOs the YAML no longer has (only with --yes)."""
    _prune("monitors", MONITOR_KINDS, root, env, var, confirm, yes)


@monitors_app.command("test")
def monitors_test(
    files: Annotated[
        list[Path] | None, typer.Argument(help="test files; default: monitors/tests/*.yaml")
    ] = None,
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
) -> None:
    """Run the monitors' unit tests: input series, times, expected states."""
    from omnidrill.observe.monitor_tests import run_tests

    for f in files or []:
        if not f.is_file():
            raise UsageError(f"{f}: no such test file")
    report = run_tests(root, env, _variables(root, env, var), files)
    for f in report.failures:
        out.print(f"FAIL {f}", markup=False)
    for b in report.blocked:
        out.print(f"NOT TESTABLE {b}", markup=False)
    for mid in report.untested:
        out.print(f"untested: monitor {mid} has no test", markup=False)
    for mid, why in sorted(report.not_testable.items()):
        out.print(f"not testable: monitor {mid}: {why}", markup=False)
    out.print(
        f"{report.checked} expectation(s) checked, {len(report.failures)} failed, "
        f"{len(report.blocked)} not testable ({env})"
    )
    if not report.ok:
        raise typer.Exit(1)


# --- dashboards -----------------------------------------------------------------------------


@dashboards_app.command("validate")
def dashboards_validate(
    env: EnvOpt = "staging", root: RootOpt = Path("."), var: VarOpt = None
) -> None:
    """Check dashboards/ as Datadog would (no API call)."""
    _validate("dashboards", root, env, var)


@dashboards_app.command("render")
def dashboards_render(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    dest: OutOpt = Path("build/datadog"),
) -> None:
    """Write the API's JSON: dashboards/<id>.json under --out."""
    _render("dashboards", root, env, var, dest)


@dashboards_app.command("plan")
def dashboards_plan(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    exit_code: ExitCodeOpt = False,
) -> None:
    """Compare with what is live: create, update (field by field), delete."""
    _plan("dashboards", DASHBOARD_KINDS, root, env, var, exit_code)


@dashboards_app.command("apply")
def dashboards_apply(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    confirm: ConfirmOpt = None,
) -> None:
    """Create and update dashboards so that live equals the YAML."""
    _apply("dashboards", DASHBOARD_KINDS, root, env, var, confirm)


@dashboards_app.command("prune")
def dashboards_prune(
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOpt = None,
    confirm: ConfirmOpt = None,
    yes: YesOpt = False,
) -> None:
    """Delete managed dashboards the YAML no longer has (only with --yes)."""
    _prune("dashboards", DASHBOARD_KINDS, root, env, var, confirm, yes)
