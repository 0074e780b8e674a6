"""Running a canary: measure both sides (active load or Datadog), run the chosen drills
against the canary only, judge, and hand the run one journal row and one exit code.

```python
result = run_canary(scenario, profile, out_dir=Path("reports/x/scenarios/canary"),
                    load_profile=load_profile, run_drills=None)
result.verdict, result.judgement.metrics, result.to_json(), result.exit_code
```
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnidrill import secrets
from omnidrill.canary.judge import CanaryJudgement, DrillOnCanary, MetricData, judge
from omnidrill.canary.models import CanaryScenario
from omnidrill.canary.sides import ProfileLoader, SideTarget, resolve_sides, side_target
from omnidrill.errors import Inconclusive, UsageError
from omnidrill.production import require_confirmation
from omnidrill.profile import TargetProfile

if TYPE_CHECKING:
    from omnidrill.chaos.engine import DrillOutcome, RunContext

DrillRunner = Callable[[SideTarget], list[DrillOnCanary]]
# the journal's word for each verdict: a marginal canary exits 1, like a failed one
OUTCOME = {"pass": "passed", "marginal": "failed", "fail": "failed", "inconclusive": "inconclusive"}


@dataclass
class CanaryResult:
    """A canary run: what was compared, the judgement, and what could not be measured."""

    name: str
    source: str
    target: str
    sides: dict[str, str]
    started_at: float
    ended_at: float = 0.0
    judgement: CanaryJudgement | None = None
    not_measured: str | None = None  # why there is nothing to compare (a side down, ...)
    warnings: list[str] = field(default_factory=list)
    per_side: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None  # the active load's LoadStats.to_json()
    window: dict[str, Any] | None = None  # passive: the Datadog window and queries

    @property
    def verdict(self) -> str:
        return self.judgement.verdict if self.judgement else "inconclusive"

    @property
    def exit_code(self) -> int:
        return self.judgement.exit_code if self.judgement else 5

    @property
    def outcome(self) -> str:
        return OUTCOME[self.verdict]

    def to_json(self) -> dict[str, Any]:
        j = self.judgement
        data = {
            "name": self.name,
            "type": "canary",
            "source": self.source,
            "target": self.target,
            "sides": self.sides,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "verdict": self.verdict,
            "score": j.score if j else None,
            "reasons": j.reasons if j else [],
            "inconclusive": self.not_measured
            if self.verdict == "inconclusive" and self.not_measured
            else ("; ".join(j.reasons) if j and self.verdict == "inconclusive" else None),
            "failed": j.reasons if j and self.outcome == "failed" else [],
            "warnings": self.warnings,
            "per_side": self.per_side,
            "metrics": [m.to_json() for m in j.metrics] if j else [],
            "drills": [d.to_json() for d in j.drills] if j else [],
            "window": self.window,
            "stats": self.stats,
        }
        return secrets.scrub_obj(data)  # type: ignore[no-any-return]

    def lines(self) -> list[str]:
        """A short human summary: the verdict, then one line per metric."""
        j = self.judgement
        head = f"canary {self.name!r} ({self.source}): {self.verdict.upper()}"
        if j and j.score is not None:
            head += f", score {j.score:.1f}"
        out = [head] + [f"  {side}" for side in self.sides.values()]
        if self.not_measured:
            out.append(f"  not measured: {self.not_measured}")
        for m in j.metrics if j else []:
            out.append(f"  {m.status.upper():12} {m.label}: {m.reason}")
        for d in j.drills if j else []:
            out.append(f"  drill on the canary {d.file}: {d.verdict}")
        out += [f"  warning: {w}" for w in self.warnings]
        return [secrets.scrub(x) for x in out]


def _measure(
    scenario: CanaryScenario,
    profile: TargetProfile,
    load: ProfileLoader,
    out_dir: Path,
    result: CanaryResult,
    confirm: str | None,
) -> tuple[dict[str, MetricData], SideTarget | None]:
    """Both sides' samples per metric, and the canary's target (for its drills)."""
    if scenario.source == "active":
        from omnidrill.canary.active import run_active

        baseline, canary = resolve_sides(scenario, profile, load)
        for side in (baseline, canary):
            if side.own_profile:  # --target's own was checked before the run began
                require_confirmation(side.profile, confirm)
        result.sides = {"baseline": baseline.describe(), "canary": canary.describe()}
        measured, warnings = run_active(scenario, baseline, canary, out_dir)
        result.warnings += warnings
        result.per_side = measured.per_side()
        result.stats = measured.stats.to_json() if measured.stats else None
        if measured.started_at:
            result.started_at = measured.started_at
        return measured.metric_data(scenario), canary
    from omnidrill.canary.passive import run_passive

    result.sides = {
        s: f"{s}: {scenario.datadog.version_tag if scenario.datadog else 'version'}:{v}"
        for s, v in (("baseline", scenario.baseline.version), ("canary", scenario.canary.version))
    }
    data, window = run_passive(scenario, profile)
    result.window = window
    canary_side = side_target("canary", scenario.canary, profile, load) if scenario.drills else None
    return data, canary_side


def run_canary(
    scenario: CanaryScenario,
    profile: TargetProfile,
    *,
    out_dir: Path,
    load_profile: ProfileLoader,
    run_drills: DrillRunner | None = None,
    confirm: str | None = None,
) -> CanaryResult:
    """Measure, run the drills against the canary, judge. Never raises for what the sides do:
    an outside failure (a side down, Datadog refusing) leaves the verdict inconclusive. A side
    on a production profile of its own needs `confirm` to name it (RunRefused, nothing sent)."""
    result = CanaryResult(
        scenario.name, scenario.source, profile.name, sides={}, started_at=time.time()
    )
    data: dict[str, MetricData] = {}
    canary_side: SideTarget | None = None
    try:
        data, canary_side = _measure(scenario, profile, load_profile, out_dir, result, confirm)
    except Inconclusive as exc:
        result.not_measured = secrets.scrub(str(exc))
        if scenario.drills and scenario.source == "active":
            canary_side = resolve_sides(scenario, profile, load_profile)[1]
    drills: list[DrillOnCanary] = []
    if scenario.drills and run_drills is not None and canary_side is not None:
        drills = run_drills(canary_side)
    result.judgement = judge(scenario, data, drills)
    if result.not_measured and result.judgement.verdict == "inconclusive":
        result.judgement.reasons.insert(0, result.not_measured)
    result.ended_at = time.time()
    return result


def post_to_datadog(
    result: CanaryResult,
    *,
    environment: str,
    run_id: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[int | None, list[str]]:
    """The canary's result as a drill event and `omnidrill.drill.*` metrics (drill
    `canary-<name>`, one line per metric); (event id, warnings). Nothing without DD_API_KEY;
    a refusal is a warning, never a changed verdict."""
    from omnidrill.observe.drill_events import ClauseResult, DrillOutcome, report_drill_result

    j = result.judgement
    lines = [ClauseResult(m.label, m.status == "pass", m.reason) for m in (j.metrics if j else [])]
    lines += [
        ClauseResult(f"contract {d.file}", d.verdict == "passed", d.verdict)
        for d in (j.drills if j else [])
    ]
    verdict = {"passed": "passed", "failed": "failed"}.get(result.outcome, "inconclusive")
    why = None if result.verdict == "pass" else f"canary {result.verdict}"
    if why and j and j.score is not None:
        why += f", score {j.score:.1f}"
    outcome = DrillOutcome(
        drill=f"canary-{result.name}",
        target=result.target,
        environment=environment,
        verdict=verdict,  # type: ignore[arg-type]
        duration_s=max(0.0, result.ended_at - result.started_at),
        clauses=lines,
        ended_at=result.ended_at or time.time(),
        run_id=run_id,
        error=why,
    )
    try:
        reported = report_drill_result(outcome, environ=environ)
    except Exception as exc:
        return None, [secrets.scrub(f"Datadog: canary result not posted ({exc})")]
    return (reported.event_id if reported else None), []


# --- inside `omnidrill run` -------------------------------------------------------------


def preflight(scenario_file: Path, scenario: CanaryScenario, profile: TargetProfile) -> None:
    """What refuses a run before anything is sent (exit 2): a missing drill file; a passive
    canary without Datadog keys, or with a query where the profile's telemetry goes to an
    intake (which keeps points, not queries)."""
    drill_paths(scenario_file, scenario)
    if scenario.source != "passive":
        return
    if profile.observe is not None and profile.observe.intake:
        queries = [m.label for m in scenario.metrics if m.query is not None]
        if queries:
            raise UsageError(
                f"{scenario_file}: metric(s) {', '.join(queries)} are Datadog queries, but "
                f"profile {profile.name!r} sends its telemetry to an intake "
                f"({profile.observe.intake}), which keeps points, not queries"
            )
        return
    from omnidrill.observe.ddclient import DatadogSettings

    DatadogSettings.from_env()


def drill_paths(scenario_file: Path, scenario: CanaryScenario) -> list[Path]:
    """The drill files: as given, or relative to the scenario's project (scenarios/..)."""
    out = []
    for name in scenario.drills:
        path = Path(name)
        if not path.exists() and not path.is_absolute():
            path = scenario_file.resolve().parent.parent / name
        if not path.exists():
            raise UsageError(f"{scenario_file}: drills: {name} does not exist")
        out.append(path)
    return out


def drills_on_canary(
    ctx: RunContext,
    files: Sequence[Path],
    variables: dict[str, Any],
    confirm: str | None,
    engine_outcomes: list[DrillOutcome],
) -> DrillRunner:
    """A DrillRunner that runs each drill with the run's engine against the canary only."""

    def run(side: SideTarget) -> list[DrillOnCanary]:
        from omnidrill.profile import resolve

        if not side.own_profile:  # the run's own target, narrowed to the canary's instances
            return _drills(replace(ctx, resolved=resolve(side.profile)), side)
        # another system: its own lock, controls, fault proxy and ledger, as `run` takes them
        from omnidrill.chaos.ledger import Ledger
        from omnidrill.chaos.lock import LocalLock
        from omnidrill.chaos.recover import reconcile
        from omnidrill.chaos.runner import open_world

        profile = side.profile
        require_confirmation(profile, confirm)
        lock = LocalLock(profile.name)
        lock.acquire()
        try:
            resolved = resolve(profile)
            world, ledger = open_world(resolved), Ledger(profile.name)
            try:
                for note in reconcile(world, ledger, profile.name):
                    ctx.printer.line(f"ledger: already undone elsewhere, marked done: {note}")
                sub = replace(ctx, resolved=resolved, target=profile.name, world=world)
                return _drills(replace(sub, ledger=ledger), side)
            finally:
                world.store.close()
                if world.faults is not None:
                    world.faults.close()
        finally:
            lock.release()

    def _drills(sub: RunContext, side: SideTarget) -> list[DrillOnCanary]:
        from omnidrill.chaos.engine import run_drill
        from omnidrill.profile import template_variables
        from omnidrill.spec.loader import load_file

        out = []
        context = template_variables(side.profile, variables)
        for path in files:
            drill = load_file(path, kind="drill", variables=context).model
            where = ", ".join(side.instances)
            drill = drill.model_copy(update={"title": f"{drill.title} (on the canary: {where})"})
            outcome = run_drill(sub, str(path), drill)
            engine_outcomes.append(outcome)
            failed = [c for c, v in outcome.clause_verdicts().items() if v == "failed"]
            first = outcome.evidence[0] if outcome.evidence else {}
            seen = "; ".join(str(x) for x in first.get("evidence") or [])
            reason = outcome.reason or (f"{first.get('step')}: {seen}" if first else "")
            out.append(DrillOnCanary(str(path), outcome.verdict, failed, secrets.scrub(reason)))
            if outcome.verdict in ("aborted", "rollback_failed"):
                break  # a halt, a signal or a failed undo stops the whole run
        return out

    return run


def run_in(
    ctx: RunContext,
    path: Path,
    scenario: CanaryScenario,
    report_dir: Path,
    opts: Any,  # chaos.runner.RunOptions
    engine_outcomes: list[DrillOutcome],
) -> tuple[dict[str, Any], int]:
    """A canary inside `omnidrill run`: its journal row and its exit code; the drills it ran
    against the canary join `engine_outcomes` (and the journal's drills) like any other."""
    import json

    from omnidrill.cliutil import load_profile

    ctx.printer.line(f"▶ canary {path}")
    out_dir = report_dir / "scenarios" / path.stem
    result = run_canary(
        scenario,
        ctx.resolved.profile,
        out_dir=out_dir,
        load_profile=lambda name: load_profile(name, opts.variables),
        run_drills=drills_on_canary(
            ctx, drill_paths(path, scenario), opts.variables, opts.confirm, engine_outcomes
        ),
        confirm=opts.confirm,
    )
    data = result.to_json()
    event_id, warnings = post_to_datadog(
        result, environment=ctx.resolved.profile.environment, run_id=ctx.run_id
    )
    if event_id is not None:
        data["datadog_event_id"] = event_id
    for w in warnings:
        ctx.printer.line(f"warning: {w}")
    data["warnings"] += warnings
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"canary-{scenario.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    # the clauses its drills checked are in their own journal records
    row = {"name": str(path), "verdict": result.outcome, "result": data, "clauses": []}
    ctx.journal.doc["scenarios"].append(row)
    ctx.journal.flush(force=True)
    for line in result.lines():
        ctx.printer.line(line)
    return row, result.exit_code


def plan_text(path: Path, scenario: CanaryScenario, profile: TargetProfile, opts: Any) -> str:
    """What `run --dry-run` prints of a canary: its sides, how it is measured, its metrics."""
    from omnidrill.cliutil import load_profile

    lines = [f"canary {path} ({scenario.source}): {scenario.description or scenario.name}"]
    if scenario.source == "active" and scenario.load is not None:
        baseline, canary = resolve_sides(
            scenario, profile, lambda name: load_profile(name, opts.variables)
        )
        lines += [f"  {baseline.describe()}", f"  {canary.describe()}"]
        load = scenario.load
        lines.append(
            f"  load: {load.users} users for {load.duration:g} s, each request to both sides; "
            f"requests of the first {scenario.warmup:g} s not judged"
        )
    elif scenario.datadog is not None:
        lines.append(
            f"  Datadog: the last {scenario.datadog.window:g} s before {scenario.datadog.end}, "
            f"one sample per {scenario.datadog.interval:g} s, "
            f"{scenario.datadog.version_tag}:{scenario.baseline.version} against "
            f"{scenario.datadog.version_tag}:{scenario.canary.version}"
        )
    alpha = (1 - scenario.confidence) / len(scenario.metrics)
    lines.append(f"  metrics (each tested at alpha {alpha:.2g}):")
    for m in scenario.metrics:
        need = m.needed_samples(series=scenario.judged_on_series)
        flag = ", critical" if m.critical else ""
        lines.append(f"    {m.label}: worse if {m.rule} (needs {need} a side{flag})")
    lines.append(
        f"  verdict: pass at score {scenario.scores.pass_:g}, marginal at "
        f"{scenario.scores.marginal:g}"
    )
    for d in scenario.drills:
        lines.append(f"  then against the canary only: {d}")
    return "\n".join(lines)
