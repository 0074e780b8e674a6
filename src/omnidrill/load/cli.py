"""`omnidrill load`: run load and rate-limit scenarios alone, on one machine or several.

`omnidrill run` runs scenarios beside drills; this command adds what only load needs:
`--workers N` (a Locust master and N worker processes here), and `--master` / `--worker
--master-host H` for a run across machines (start the master first; each worker machine runs
the same scenario file and profile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from omnidrill.cliutil import ConfirmOption, ReportDirOption, TargetOption, VarOption
from omnidrill.errors import ExitCode, UsageError


def load(
    paths: Annotated[
        list[Path], typer.Argument(help="scenario files (scenarios/*.yaml)", metavar="PATH")
    ],
    target: TargetOption,
    workers: Annotated[
        int, typer.Option("--workers", help="run a Locust master and N worker processes here")
    ] = 0,
    master: Annotated[
        bool, typer.Option("--master", help="be the master of a run across machines")
    ] = False,
    worker: Annotated[
        bool, typer.Option("--worker", help="be a worker of a run across machines")
    ] = False,
    master_host: Annotated[
        str, typer.Option("--master-host", help="the master's address (with --worker)")
    ] = "127.0.0.1",
    master_port: Annotated[int, typer.Option("--master-port", help="the master's port")] = 5557,
    expect_workers: Annotated[
        int, typer.Option("--expect-workers", help="workers the master waits for (with --master)")
    ] = 1,
    report_dir: ReportDirOption = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="also write every request to load-raw-*.csv")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="skipped rate-limit clauses count as failures")
    ] = False,
    var: VarOption = None,
    confirm: ConfirmOption = None,
) -> None:
    """Run load and rate-limit scenarios and judge them (exit 1 names each failed threshold).

    Writes the same run folder as `run` (journal.json, report.html, junit.xml, summary.md); a
    worker of a run across machines leaves that to the master."""
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import (
        RunOptions,
        default_report_dir,
        exit_code_of,
        finish_run,
        run_scenario_into,
        start_journal,
    )
    from omnidrill.cliutil import load_profile, parse_vars
    from omnidrill.load.runner import (
        exit_code,
        load_scenario,
        refuse_other_types,
        run_scenario,
    )
    from omnidrill.production import require_confirmation
    from omnidrill.profile import template_variables

    if master and worker:
        raise UsageError("--master and --worker exclude each other")
    if workers and (master or worker):
        raise UsageError("--workers N runs master and workers here; drop --master/--worker")
    if workers < 0:
        raise UsageError(f"--workers must be 0 or more, found {workers}")
    variables = parse_vars(var or [])
    profile = load_profile(target, variables)
    # Before anything is sent, in every role: a worker sends load as much as the master does.
    require_confirmation(profile, confirm)
    context = template_variables(profile, variables)
    scenarios = [load_scenario(p, context) for p in paths]
    for sc in scenarios:  # before the run folder is made: a refused command writes none
        refuse_other_types(sc)
    base = report_dir or default_report_dir(profile.name)
    role = "master" if master else "worker" if worker else "local"
    how = {
        "workers": workers,
        "role": role,
        "master_host": master_host,
        "master_port": master_port,
        "expect_workers": expect_workers,
        "raw": raw,
    }
    printer = Progress(Console(highlight=False))
    if role == "worker":  # no verdict here: the master judges and writes the run's reports
        results = []
        for path, sc in zip(paths, scenarios, strict=True):
            printer.line(f"▶ scenario {path} ({sc.type}) against {profile.name}")
            result = run_scenario(sc, profile, out_dir=base / "scenarios" / path.stem, **how)
            for line in result.lines():
                printer.line(line)
            results.append(result)
        printer.line(f"worker stats in {base}; the master writes the run's reports")
        raise typer.Exit(exit_code(results, strict=strict))
    journal = start_journal(profile, base, variables, strict)
    codes: list[int] = []
    try:
        for path, sc in zip(paths, scenarios, strict=True):
            _row, code = run_scenario_into(journal, path, sc, profile, printer, strict, **how)
            codes.append(code)
    except UsageError:
        journal.finish("refused", int(ExitCode.BAD_INPUT))
        raise
    except KeyboardInterrupt:
        journal.finish("aborted", int(ExitCode.ABORTED))
        raise
    code = exit_code_of([], codes, strict)
    finish_run(journal, code, RunOptions(target=target, report_dir=base), printer)
    raise typer.Exit(code)
