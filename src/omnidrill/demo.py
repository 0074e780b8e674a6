"""`omnidrill demo`: the reference stack, the standard drills, a smoke load and the rate limit.

Starts `omnidrill up --fast` in the background (its functions send their metrics and errors to
the intake it starts, and its profile says so), runs chaos/, scenarios/smoke.yaml and
scenarios/rate-limit.yaml against it through the same code path as `omnidrill run`, stops the
stack, says which monitors each drill tripped and after how long (CONTRACT O1), where the
report is, and exits with the run's code.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from omnidrill.errors import UsageError

DRILLS = Path("chaos")
SCENARIOS = (Path("scenarios/smoke.yaml"), Path("scenarios/rate-limit.yaml"))
MONITORS = Path("monitors/env/local.yaml")  # the monitors the drills' O1 checks evaluate
# Two instances, so the drills check "every instance" and the rate-limit scenario can judge R5
# (one limit across instances); ports chosen by the OS, so a running `omnidrill up` is left alone.
STACK_ARGS = ("--fast", "--instances", "2", "--base-port", "0")
WORK_DIR = Path(".omnidrill") / "demo"


def _inputs(root: Path) -> list[Path]:
    missing = [p for p in (DRILLS, *SCENARIOS, MONITORS) if not (root / p).exists()]
    if missing:
        raise UsageError(
            f"the demo runs from the project's root folder: {', '.join(map(str, missing))} "
            f"not found under {root.resolve()}"
        )
    return [root / DRILLS, *(root / s for s in SCENARIOS)]


def _summarize(out: Path, say: Callable[[str], None]) -> None:
    """Count the drills by verdict (skips included, so a newcomer sees none was left out) and
    say why any drill was skipped (the summary has the engine's reason)."""
    from omnidrill.report.journal import JournalError, read_run

    try:
        run = read_run(out / "journal.json")
    except JournalError:
        return
    counts = {v: sum(d.verdict == v for d in run.drills) for v in ("passed", "failed", "skipped")}
    others = len(run.drills) - sum(counts.values())
    say(
        f"demo: {len(run.drills)} drills: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped" + (f", {others} inconclusive or aborted" if others else "")
    )
    for d in run.drills:
        if d.verdict == "skipped":
            say(f"demo: skipped {d.title}: {d.reason}")
    _summarize_monitors(run, say)


def _summarize_monitors(run: Any, say: Callable[[str], None]) -> None:
    """For every drill some monitor names (tripped_by): which alerted, and after how long."""
    observed = [d for d in run.drills if d.detection and d.detection.monitors]
    if not observed:
        return
    skipped = next((d.detection.skipped for d in observed if d.detection.skipped), None)
    if skipped:
        say(f"demo: monitors (O1) not checked: {skipped}")
        return
    alerted = sum(d.detection.alerted for d in observed)
    expected = sum(len(d.detection.monitors) for d in observed)
    mttd = run.mean_time_to_detect()
    mean = f", mean time to detect {mttd[0]:.2f} s" if mttd else ""
    drills = f"{len(observed)} drills"
    say(f"demo: monitors (O1): {alerted} of {expected} expected alerted in {drills}{mean}")
    for d in observed:
        det = d.detection
        shown = ", ".join(
            f"{m.id} after {m.time_to_detect_s:.2f} s"
            if m.time_to_detect_s is not None
            else f"{m.id} {m.outcome}"
            for m in det.monitors
        )
        say(f"demo:   {d.name}: {det.alerted}/{len(det.monitors)} alerted: {shown}")


def run_demo(
    root: Path = Path("."),
    report_dir: Path | None = None,
    say: Callable[[str], None] = print,
) -> tuple[int, Path]:
    """Run the demo; (the run's exit code, the run's report folder)."""
    from omnidrill.chaos.runner import RunOptions, default_report_dir, run
    from omnidrill.cliutil import load_profile
    from omnidrill.launch import launch_stack

    files = _inputs(root)
    work = root / WORK_DIR
    state = work / "state"
    # Each demo starts a fresh stack: undos a killed demo left refer to a stack that is gone.
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    old_state = os.environ.get("OMNIDRILL_STATE_DIR")
    os.environ["OMNIDRILL_STATE_DIR"] = str(state)
    started = time.monotonic()
    try:
        say(f"demo: starting the reference stack (omnidrill up {' '.join(STACK_ARGS)})")
        with launch_stack(list(STACK_ARGS), work / "stack") as (profile_path, _):
            say(f"demo: stack ready in {time.monotonic() - started:.1f} s; profile {profile_path}")
            profile = load_profile(str(profile_path))
            out = (report_dir or root / default_report_dir(profile.name)).resolve()
            code = run(files, profile, RunOptions(target=str(profile_path), report_dir=out))
            say("demo: stopping the stack")
    finally:
        if old_state is None:
            os.environ.pop("OMNIDRILL_STATE_DIR", None)
        else:
            os.environ["OMNIDRILL_STATE_DIR"] = old_state
    took = time.monotonic() - started
    _summarize(out, say)
    say(f"demo: exit {code} after {took:.0f} s")
    say(f"demo: report  {out / 'report.html'}")
    say(f"demo: summary {out / 'summary.md'}   history {out.parent / 'index.html'}")
    return code, out


def demo(
    report_dir: Annotated[
        Path | None,
        typer.Option("--report-dir", help="the run's folder (default reports/<UTC>-local/)"),
    ] = None,
) -> None:
    """Start the reference stack, run every standard drill, a smoke load and the rate limit."""
    code, _ = run_demo(Path("."), report_dir)
    raise typer.Exit(code)
