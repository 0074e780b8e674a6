"""`omnidrill run`: drills and scenarios together, one journal, one exit code."""

from __future__ import annotations

import contextlib
import secrets as pysecrets
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnidrill import secrets
from omnidrill.chaos.console import Progress
from omnidrill.chaos.controlstore import open_store
from omnidrill.chaos.engine import DrillOutcome, RunContext, run_drill
from omnidrill.chaos.journal import Journal
from omnidrill.chaos.ledger import Ledger
from omnidrill.chaos.lock import LocalLock
from omnidrill.chaos.plan import plan_text
from omnidrill.chaos.recover import reconcile
from omnidrill.chaos.runtime import Terminated
from omnidrill.chaos.undo import World
from omnidrill.errors import ExitCode, RunRefused, UsageError
from omnidrill.load.describe import scenario_plan_text
from omnidrill.load.models import RateLimitScenario
from omnidrill.production import require_confirmation
from omnidrill.profile import Resolved, TargetProfile, resolve, template_variables
from omnidrill.scenarios import ScenarioFile
from omnidrill.spec.loader import YAML_SUFFIXES, load_file, no_such_path, wrong_kind


@dataclass
class RunOptions:
    target: str
    report_dir: Path | None = None
    dry_run: bool = False
    strict: bool = False
    confirm: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    mute_monitors: bool = False
    slack_webhook: str | None = None  # --notify-slack: post summary.md there (report issue)
    workers: int = 0  # load scenarios: Locust master plus this many local workers


@dataclass
class Loaded:
    path: Path
    kind: str
    model: Any


def expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(x for x in p.iterdir() if x.suffix in YAML_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise UsageError(f"{p}: {no_such_path(p)}")
    if not files:
        raise UsageError("no drill or scenario files given")
    return files


def load_all(files: list[Path], profile: TargetProfile, variables: dict[str, Any]) -> list[Loaded]:
    """Load every file before anything runs: one bad file refuses the whole run (exit 2)."""
    context = template_variables(profile, variables)
    out = []
    for f in files:
        spec = load_file(f, variables=context)
        if spec.kind not in ("drill", "scenario"):
            raise UsageError(f"{f}: {wrong_kind(spec.kind, ('drill', 'scenario'))}")
        if spec.kind == "drill" and spec.model.background is not None:
            from omnidrill.chaos.background import scenario_path

            scenario_path(f, spec.model.background)  # a missing file refuses the run up front
        if spec.kind == "scenario" and getattr(spec.model.root, "type", "") == "canary":
            from omnidrill.canary.runner import preflight

            preflight(f, spec.model.root, profile)  # likewise its drills, its metrics source
        out.append(Loaded(path=f, kind=spec.kind, model=spec.model))
    return out


def refuse_unusable_integrations(loaded: list[Loaded], opts: RunOptions) -> None:
    """An integration asked for that cannot work refuses the run before anything is touched
    (as `--notify-slack` without its webhook does), rather than warn halfway through."""
    from omnidrill.observe.ddclient import DatadogSettings

    wanting = ["--mute-monitors"] if opts.mute_monitors else []
    wanting += [
        f"{item.path} (abort_if monitor_alerts)"
        for item in loaded
        if item.kind == "drill" and any(g.monitor_alerts is not None for g in item.model.abort_if)
    ]
    if wanting:
        try:
            DatadogSettings.from_env()
        except UsageError as exc:
            raise UsageError(
                f"{', '.join(wanting)} needs Datadog, nothing was touched: {exc}"
            ) from None


def default_report_dir(target: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path("reports") / f"{stamp}-{target}"


def open_world(resolved: Resolved) -> World:
    p = resolved.profile
    faults = None
    if p.faults.proxies:
        from omnidrill.faults.client import FaultClient

        faults = FaultClient(p.faults.toxiproxy_url)
    return World(store=open_store(resolved), row_id=p.controls.row_id, faults=faults)


@contextlib.contextmanager
def signals(ctx: RunContext) -> Iterator[None]:
    """SIGTERM and Ctrl-C abort the drill (rollbacks run); during rollbacks they are noted."""

    def on_signal(signum: int, _frame: Any) -> None:
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        if ctx.in_rollback:
            ctx.interrupted = name
            return
        if signum == signal.SIGTERM:
            raise Terminated()
        raise KeyboardInterrupt()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def exit_code_of(outcomes: list[DrillOutcome], scenario_codes: list[int], strict: bool) -> int:
    verdicts = {o.verdict for o in outcomes}
    if "rollback_failed" in verdicts:
        return int(ExitCode.ROLLBACK_FAILED)
    if "aborted" in verdicts:
        return int(ExitCode.ABORTED)
    if "failed" in verdicts or ExitCode.FAILED in scenario_codes:
        return int(ExitCode.FAILED)
    if "inconclusive" in verdicts or ExitCode.INCONCLUSIVE in scenario_codes:
        return int(ExitCode.INCONCLUSIVE)
    if strict and ("skipped" in verdicts or any(o.skipped_checks for o in outcomes)):
        return int(ExitCode.FAILED)
    if strict and any(o.detection.get("noise") for o in outcomes):
        return int(ExitCode.FAILED)  # an alert nobody expected: a warning, a failure here
    return int(ExitCode.OK)


def run(
    paths: list[Path], profile: TargetProfile, opts: RunOptions, printer: Progress | None = None
) -> int:
    """Run drills and scenarios against a profile; return the exit code."""
    printer = printer or Progress()
    files = expand(paths)  # a mistyped path first: it needs no environment to be told
    resolved = resolve(profile)
    loaded = load_all(files, profile, opts.variables)
    refuse_unusable_integrations(loaded, opts)
    if opts.dry_run:
        for item in loaded:
            if item.kind == "drill":
                print(secrets.scrub(plan_text(resolved, str(item.path), item.model)))
            elif getattr(item.model.root, "type", "") == "canary":
                from omnidrill.canary.runner import plan_text as canary_plan

                print(secrets.scrub(canary_plan(item.path, item.model.root, profile, opts)))
            else:
                model = item.model.root if isinstance(item.model, ScenarioFile) else item.model
                print(secrets.scrub(scenario_plan_text(resolved, str(item.path), model)))
            print()
        print("dry run: nothing was touched")
        return int(ExitCode.OK)
    require_confirmation(profile, opts.confirm)
    # This machine's lock first: a second run here is told who holds the target, not sent to
    # `recover` for the undos the first one has yet to run.
    local = LocalLock(profile.name)
    local.acquire()
    try:
        ledger = Ledger(profile.name)
        world = open_world(resolved)
        try:
            for note in reconcile(world, ledger, profile.name):
                printer.line(f"ledger: already undone elsewhere, marked done: {note}")
        except BaseException:
            _close_world(world)
            raise
        return _run_locked(loaded, resolved, opts, printer, ledger, world)
    finally:
        local.release()


def _close_world(world: World) -> None:
    world.store.close()
    if world.faults is not None:
        world.faults.close()


def start_journal(
    profile: TargetProfile, report_dir: Path, variables: dict[str, Any], strict: bool
) -> Journal:
    """The journal of a new run in report_dir (`run` and `load` write the same run folder)."""
    run_id = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + pysecrets.token_hex(3)
    journal = Journal(
        report_dir / "journal.json",
        run_id=run_id,
        target={
            "name": profile.name,
            "environment": profile.environment,
            "base_url": profile.base_url,
            "instances": profile.instances,
            "limits": profile.limits.model_dump(),
            "expect": profile.expect.model_dump(),
            "clients": "forwarded_for"
            if profile.clients.forwarded_for
            else "bypass_headers"
            if profile.clients.bypass_headers
            else "paced",
        },
        argv=[secrets.scrub(a) for a in sys.argv],
    )
    journal.doc["options"] = {
        "strict": strict,
        "report_dir": str(report_dir),
        "variables": variables,
    }
    return journal


RUN_STATUS = {0: "passed", 1: "failed", 3: "aborted", 4: "rollback_failed", 5: "inconclusive"}


def finish_run(journal: Journal, code: int, opts: RunOptions, printer: Progress) -> None:
    """Close the journal with the run's verdict, then write and publish its reports."""
    journal.finish(RUN_STATUS.get(code, "finished"), code)
    _publish_reports(journal.path, opts, printer)


def _run_locked(
    loaded: list[Loaded],
    resolved: Resolved,
    opts: RunOptions,
    printer: Progress,
    ledger: Ledger,
    world: World,
) -> int:
    profile = resolved.profile
    report_dir = opts.report_dir or default_report_dir(profile.name)
    journal = start_journal(profile, report_dir, opts.variables, opts.strict)
    run_id = journal.doc["run_id"]
    from omnidrill.observe.sentry_report import flush, init_sentry

    init_sentry(environment=profile.environment)  # no-op without SENTRY_DSN
    ctx = RunContext(
        run_id=run_id,
        target=profile.name,
        resolved=resolved,
        world=world,
        ledger=ledger,
        journal=journal,
        printer=printer,
        mute_monitors=opts.mute_monitors,
        variables=opts.variables,
    )
    outcomes: list[DrillOutcome] = []
    scenario_rows: list[dict[str, Any]] = []
    scenario_codes: list[int] = []
    printer.line(f"run {run_id} against {profile.name}; journal {journal.path}")
    try:
        with signals(ctx):
            for item in loaded:
                if item.kind == "drill":
                    outcome = run_drill(ctx, str(item.path), item.model)
                    outcomes.append(outcome)
                    if outcome.verdict in ("aborted", "rollback_failed"):
                        break  # a halt, a signal or a failed undo stops the whole run
                elif getattr(item.model.root, "type", "") == "canary":
                    from omnidrill.canary.runner import run_in

                    row, code = run_in(ctx, item.path, item.model.root, report_dir, opts, outcomes)
                    scenario_rows.append(row)
                    scenario_codes.append(code)
                    if {o.verdict for o in outcomes} & {"aborted", "rollback_failed"}:
                        break
                else:
                    model = item.model.root if isinstance(item.model, ScenarioFile) else item.model
                    # a rate-limit check runs from this machine alone; --workers scales load
                    scale = 0 if isinstance(model, RateLimitScenario) else opts.workers
                    row, code = run_scenario_into(
                        journal, item.path, model, profile, printer, opts.strict, workers=scale
                    )
                    scenario_rows.append(row)
                    scenario_codes.append(code)
    except (RunRefused, UsageError):
        journal.finish("refused", int(ExitCode.BAD_INPUT))
        raise
    finally:
        flush()
        _close_world(world)
        if ctx.observe is not None:
            ctx.observe.close()
    code = exit_code_of(outcomes, scenario_codes, opts.strict)
    printer.table(outcomes, scenario_rows, str(journal.path))
    finish_run(journal, code, opts, printer)
    return code


def _publish_reports(journal_path: Path, opts: RunOptions, printer: Progress) -> None:
    """report.html, junit.xml, summary.md, reports/index.html and latest; Slack when asked.

    Never changes the run's exit code: the journal is written either way, and
    `omnidrill report` renders it again.
    """
    from omnidrill.report import publish

    try:
        written = publish(journal_path, slack_webhook=opts.slack_webhook)
    except Exception as exc:  # a report failure must not hide the verdict
        printer.line(
            f"warning: reports not written ({type(exc).__name__}: {exc}); "
            f"render them with `omnidrill report {journal_path}`"
        )
        return
    for warning in written.warnings:
        printer.line(f"warning: {warning}")
    printer.line(f"report: {written.files.get('html', written.out_dir)}")
    if written.index is not None:
        # with --report-dir out/run1 these are in out/, not beside the report: say where
        latest = written.index.with_name("latest")
        printer.line(f"history of runs: {written.index}; {latest} points at the newest run")


def run_scenario_into(
    journal: Journal,
    path: Path,
    scenario: Any,
    profile: TargetProfile,
    printer: Progress,
    strict: bool = False,
    **how: Any,
) -> tuple[dict[str, Any], int]:
    """Hand a scenario to the load runner (`how`: workers, role, ...) and record it in the run.

    A scenario that cannot be judged (the target does not answer) is recorded inconclusive;
    bad input (UsageError) is not a verdict and propagates."""
    from omnidrill.load.runner import exit_code, run_scenario

    printer.line(f"▶ scenario {path} ({scenario.type}) against {profile.name}")
    out_dir = journal.path.parent / "scenarios" / path.stem
    try:
        result = run_scenario(scenario, profile, out_dir=out_dir, **how)
    except UsageError:
        raise
    except Exception as exc:
        row = {"name": str(path), "verdict": "inconclusive", "reason": secrets.scrub(str(exc))}
        journal.doc["scenarios"].append(row)
        journal.flush(force=True)
        printer.line(f"  inconclusive: {row['reason']}")
        return row, int(ExitCode.INCONCLUSIVE)
    code = exit_code(result, strict=strict)
    verdict = {0: "passed", 1: "failed", 5: "inconclusive"}.get(code, "failed")
    data = result.to_json()
    row = {
        "name": str(path),
        "verdict": verdict,
        "result": data,
        "clauses": sorted({v.clause for v in result.verdicts}),
    }
    journal.doc["scenarios"].append(row)
    journal.flush(force=True)
    for line in result.lines():
        printer.line(line)
    return row, code
