"""The `omnidrill` command: thin; parses, calls the modules, prints, picks the exit code."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from omnidrill import __version__, secrets
from omnidrill.cliutil import HELP_OPTIONS, VarOption, show_flags_as_flags, usage_errors
from omnidrill.errors import ExitCode, OmnidrillError

show_flags_as_flags()
app = typer.Typer(
    name="omnidrill",
    context_settings=HELP_OPTIONS,  # -h everywhere: sub-commands inherit it
    help=(
        "Drills, load and rate-limit checks, monitors and reports for OmniHub: "
        "prove it fails closed, stays observable and comes back."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"omnidrill {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """omnidrill: chaos drills, load checks and monitors as code, judged against CONTRACT.md."""


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="files or folders; default: every standard folder",
            show_default=False,
            metavar="PATH",
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="profile (path or name) for templates")
    ] = None,
    var: VarOption = None,
) -> None:
    """Check YAML files of every kind; print one line per problem (exit 2 when any)."""
    from omnidrill.cliutil import load_profile, parse_vars
    from omnidrill.observe.source import OBSERVE_KINDS, validation_variables
    from omnidrill.profile import development_profile, template_variables
    from omnidrill.spec.kinds import kind_from_folder
    from omnidrill.spec.loader import discover, validate_paths

    variables = parse_vars(var or [])
    profile = load_profile(target, variables) if target else development_profile()
    context = template_variables(profile, variables)
    files = list(paths) if paths else discover(Path.cwd())

    observe_context: dict | None = None

    def variables_for(path: Path) -> dict:
        nonlocal observe_context
        kind = kind_from_folder(path)
        if kind is not None and kind.name == "target":
            return variables
        if kind is not None and kind.name in OBSERVE_KINDS:
            # monitors and dashboards are rendered per environment (--var env=NAME)
            if observe_context is None:
                observe_context = validation_variables(Path.cwd(), context)
            return observe_context
        return context

    loaded, problems = validate_paths(files, variables_for)
    problems += _tripped_by_problems(loaded)
    for p in problems:
        err_console.print(p.format(), markup=False, highlight=False, soft_wrap=True)
    if problems:
        bad_files = len({p.file for p in problems})
        err_console.print(f"[red]{len(problems)} problem(s) in {bad_files} file(s)[/red]")
        raise typer.Exit(ExitCode.BAD_INPUT)
    console.print(f"[green]{len(loaded)} file(s) valid[/green]")


def _tripped_by_problems(loaded: list) -> list:
    """Across files: each monitor's `tripped_by` names a drill or scenario of its project."""
    from omnidrill.observe.compile import drill_names, tripped_by_problems
    from omnidrill.observe.source import SourceFile

    out = []
    for spec in loaded:
        if spec.kind != "monitor":
            continue
        known = drill_names(spec.path.resolve().parent.parent)
        if known is not None:
            src = SourceFile(spec.path, spec.kind, spec.model, spec.positions)
            out += tripped_by_problems(src, known)
    return out


@app.command()
def schema(
    kind: Annotated[
        str, typer.Argument(help="target, drill, scenario, monitor, dashboard, ...", metavar="KIND")
    ],
) -> None:
    """Print the JSON Schema of a YAML kind (for yaml-language-server and other editors)."""
    from omnidrill.spec.schema import schema_text

    sys.stdout.write(schema_text(kind))


# --- commands registered by each area ---


@app.command(
    "up",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def up(ctx: typer.Context) -> None:
    """Start the reference OmniHub stack (`omnidrill up --help` lists its flags)."""
    # The harness never imports the stack it judges: `up` hands its arguments to the
    # reference package's own command, in place of this process so signals reach it directly.
    os.execv(sys.executable, [sys.executable, "-m", "omnihub_ref", *ctx.args])


from omnidrill.observe.cli import dashboards_app, monitors_app  # noqa: E402

app.add_typer(monitors_app, name="monitors")
app.add_typer(dashboards_app, name="dashboards")
from omnidrill.faults.cli import faultproxy  # noqa: E402

app.command("faultproxy")(faultproxy)
from omnidrill.observe.intake.cli import intake  # noqa: E402

app.command("intake")(intake)
from omnidrill.chaos.cli import halt, recover, run  # noqa: E402

app.command("run")(run)
app.command("recover")(recover)
app.command("halt")(halt)
from omnidrill.load.cli import load as load_scenarios  # noqa: E402

app.command("load")(load_scenarios)
from omnidrill.report.cli import report  # noqa: E402

app.command("report")(report)
from omnidrill.demo import demo  # noqa: E402

app.command("demo")(demo)


def main() -> None:
    """Entry point: run the app and turn omnidrill errors into a message and an exit code."""
    try:
        rc = app(standalone_mode=False)
    except OmnidrillError as exc:
        err_console.print(
            f"[red]error:[/red] {escape(secrets.scrub(str(exc)))}", highlight=False, soft_wrap=True
        )
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(int(ExitCode.ABORTED))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.ABORTED))
    except Exception as exc:  # usage errors: a bad flag, a missing argument
        if isinstance(exc, usage_errors()):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(int(ExitCode.BAD_INPUT))
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
