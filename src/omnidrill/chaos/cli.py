"""The chaos verbs: `run`, `recover`, `halt` (registered in omnidrill.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from omnidrill.cliutil import ConfirmOption, ReportDirOption, TargetOption, VarOption


def run(
    paths: Annotated[
        list[Path], typer.Argument(help="drill and scenario files or folders", metavar="PATH")
    ],
    target: TargetOption,
    report_dir: ReportDirOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the plan, every value resolved; touch nothing")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="skipped drills and checks count as failures")
    ] = False,
    confirm: ConfirmOption = None,
    var: VarOption = None,
    mute_monitors: Annotated[
        bool,
        typer.Option(
            "--mute-monitors",
            help="mute (Datadog downtime) the monitors whose tripped_by names each drill",
        ),
    ] = False,
    notify_slack: Annotated[
        bool,
        typer.Option("--notify-slack", help="post the summary to SLACK_WEBHOOK_URL at the end"),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="load scenarios: Locust master plus N worker processes on this machine "
            "(across machines: `omnidrill load --master/--worker`)",
        ),
    ] = 0,
) -> None:
    """Run drills (chaos/) and scenarios (scenarios/) on a target: one journal, one exit code."""
    from omnidrill.chaos.runner import RunOptions
    from omnidrill.chaos.runner import run as run_files
    from omnidrill.cliutil import load_profile, parse_vars

    variables = parse_vars(var or [])
    profile = load_profile(target, variables)
    opts = RunOptions(
        target=target,
        report_dir=report_dir,
        dry_run=dry_run,
        strict=strict,
        confirm=confirm,
        variables=variables,
        mute_monitors=mute_monitors,
        workers=workers,
    )
    if notify_slack:  # a missing webhook is refused before anything is touched
        from omnidrill.notify.slack import webhook_from_env

        opts.slack_webhook = webhook_from_env()
    raise typer.Exit(run_files(paths, profile, opts))


def recover(target: TargetOption, var: VarOption = None) -> None:
    """Undo what a killed run left on a target: from this folder's ledger and the target's marks.

    Each undo only puts back what still holds the run's own value; a change someone else made
    since is left alone and reported (exit 4).
    """
    from omnidrill.chaos.ledger import Ledger
    from omnidrill.chaos.recover import recover as do_recover
    from omnidrill.chaos.runner import open_world
    from omnidrill.cliutil import load_profile, parse_vars
    from omnidrill.profile import resolve

    console = Console(highlight=False)
    profile = load_profile(target, parse_vars(var or []))
    world = open_world(resolve(profile))
    proxies = profile.faults.proxies
    rec = do_recover(
        world,
        Ledger(profile.name),
        profile.name,
        [p.name for p in proxies],
        {p.name: p.upstream for p in proxies},
    )
    for prefix, lines, style in (
        ("undone", rec.did, None),
        ("already undone elsewhere", rec.already, None),
        ("CONFLICT, left as found, check by hand", rec.conflicts, "red"),
        ("FAILED, undo by hand", rec.failed, "red"),
        ("not cleanable", rec.not_cleaned, "yellow"),
    ):
        for line in lines:
            console.print(f"{prefix}: {line}", markup=False, soft_wrap=True, style=style)
    if not (rec.did or rec.already or rec.conflicts or rec.failed):
        console.print(f"nothing to recover on target {profile.name!r}")
    raise typer.Exit(rec.exit_code)


def halt(target: TargetOption, var: VarOption = None) -> None:
    """Make the drill running on a target (from any machine) roll back and stop.

    Exits 0 once asked (the halted run then exits 3); 5 when the target cannot be reached."""
    from omnidrill.chaos.halt import request_halt
    from omnidrill.chaos.runner import open_world
    from omnidrill.cliutil import load_profile, parse_vars
    from omnidrill.profile import resolve

    profile = load_profile(target, parse_vars(var or []))
    world = open_world(resolve(profile))
    Console(highlight=False).print(request_halt(world, profile.name), markup=False)
