"""`omnidrill monitors ...` and `omnidrill dashboards ...`: thin commands over the observe API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from omnidrill.cliutil import VarOption
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
ConfirmOpt = Annotated[
    str | None,
    typer.Option("--confirm", help="name of a production environment, to allow changing it"),
]
OutOpt = Annotated[Path, typer.Option("--out", help="folder for the JSON files")]
ExitCodeOpt = Annotated[bool, typer.Option("--exit-code", help="exit 1 when there are changes")]
YesOpt = Annotated[bool, typer.Option("--yes", help="really delete")]

# the folder a sub-app manages -> the kinds of object its plan, apply and prune compare
KINDS: dict[str, set[Kind]] = {"monitors": {"monitor", "slo"}, "dashboards": {"dashboard"}}


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
        run_tests(root, env, compiled=compiled)
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


def _plan(what: str, root: Path, env: str, var: list[str] | None, exit_code: bool) -> None:
    from omnidrill.observe.ddclient import DatadogSettings
    from omnidrill.observe.sync import describe, plan_env

    compiled = _compile(what, root, env, var)
    settings = DatadogSettings.from_env()
    _, changes = plan_env(settings, compiled, KINDS[what])
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


def _apply(what: str, root: Path, env: str, var: list[str] | None, confirm: str | None) -> None:
    from omnidrill.observe.ddclient import DatadogSettings, api_client
    from omnidrill.observe.sync import apply, describe, plan_env

    compiled = _compile(what, root, env, var)
    _guard_production(compiled, confirm)
    settings = DatadogSettings.from_env()
    live, changes = plan_env(settings, compiled, KINDS[what])
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
    _, changes = plan_env(settings, compiled, KINDS[what])
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


def _add_shared_commands(app: typer.Typer, what: str, help: dict[str, str]) -> None:
    """validate, render, plan, apply and prune of one folder; `help` holds each one's help text."""

    @app.command("validate", help=help["validate"])
    def validate(env: EnvOpt = "staging", root: RootOpt = Path("."), var: VarOption = None) -> None:
        _validate(what, root, env, var)

    @app.command("render", help=help["render"])
    def render(
        env: EnvOpt = "staging",
        root: RootOpt = Path("."),
        var: VarOption = None,
        dest: OutOpt = Path("build/datadog"),
    ) -> None:
        _render(what, root, env, var, dest)

    @app.command("plan", help="Compare with what is live: create, update (field by field), delete.")
    def plan(
        env: EnvOpt = "staging",
        root: RootOpt = Path("."),
        var: VarOption = None,
        exit_code: ExitCodeOpt = False,
    ) -> None:
        _plan(what, root, env, var, exit_code)

    @app.command("apply", help=help["apply"])
    def apply(
        env: EnvOpt = "staging",
        root: RootOpt = Path("."),
        var: VarOption = None,
        confirm: ConfirmOpt = None,
    ) -> None:
        _apply(what, root, env, var, confirm)

    @app.command("prune", help=help["prune"])
    def prune(
        env: EnvOpt = "staging",
        root: RootOpt = Path("."),
        var: VarOption = None,
        confirm: ConfirmOpt = None,
        yes: YesOpt = False,
    ) -> None:
        _prune(what, root, env, var, confirm, yes)


_add_shared_commands(
    monitors_app,
    "monitors",
    {
        "validate": "Check monitors/ and monitors/tests/ as Datadog would (no API call).",
        "render": "Write the API's JSON: monitors/<id>.json and slos/<id>.json under --out.",
        "apply": "Create and update monitors and SLOs so that live equals the YAML.",
        "prune": "Delete managed monitors and SLOs the YAML no longer has (only with --yes).",
    },
)
_add_shared_commands(
    dashboards_app,
    "dashboards",
    {
        "validate": "Check dashboards/ as Datadog would (no API call).",
        "render": "Write the API's JSON: dashboards/<id>.json under --out.",
        "apply": "Create and update dashboards so that live equals the YAML.",
        "prune": "Delete managed dashboards the YAML no longer has (only with --yes).",
    },
)


@monitors_app.command("test")
def monitors_test(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="test files; default: monitors/tests/*.yaml", metavar="PATH"),
    ] = None,
    env: EnvOpt = "staging",
    root: RootOpt = Path("."),
    var: VarOption = None,
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
