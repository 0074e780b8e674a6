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

console = Console()


def load(
    paths: Annotated[list[Path], typer.Argument(help="scenario files (scenarios/*.yaml)")],
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
    """Run load and rate-limit scenarios and judge them (exit 1 names each failed threshold)."""
    from omnidrill.chaos.runner import default_report_dir
    from omnidrill.cliutil import load_profile, parse_vars
    from omnidrill.load.runner import exit_code, load_scenario, run_scenario
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
    base = report_dir or default_report_dir(profile.name)
    role = "master" if master else "worker" if worker else "local"
    results = []
    for path, sc in zip(paths, scenarios, strict=True):
        console.print(f"▶ scenario {path} ({sc.type}) against {profile.name}")
        result = run_scenario(
            sc,
            profile,
            workers=workers,
            out_dir=base / "scenarios" / path.stem,
            role=role,
            master_host=master_host,
            master_port=master_port,
            expect_workers=expect_workers,
            raw=raw,
        )
        for line in result.lines():
            console.print(line, markup=False, highlight=False)
        results.append(result)
    console.print(f"results in {base}")
    code = exit_code(results, strict=strict)
    if code != ExitCode.OK:
        raise typer.Exit(code)
