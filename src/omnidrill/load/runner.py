"""Running scenarios and judging them: `run_scenario()`, `BackgroundLoad` for drills, exit codes.

```python
result = run_scenario(scenario, profile, workers=0, out_dir=Path("reports/x"))
result.passed, result.thresholds, result.verdicts, result.stats.to_json()
exit_code(result)   # 0 passed, 1 a threshold or verdict failed, 5 inconclusive

with BackgroundLoad(steady_read, profile, out_dir=d) as load:   # a drill's background load
    load.phase("fault")      # requests started from now on count in phase "fault"
    ...
    load.phase("recovery")
result = load.result   # split per phase: result.stats.phase("fault"), to_json()["by_phase"]
```
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from omnidrill import secrets
from omnidrill.errors import ExitCode, Inconclusive, UsageError
from omnidrill.load.models import LoadScenario, RateLimitScenario
from omnidrill.load.plan import Target, as_target, build_plan
from omnidrill.load.process import LoadProcess, Role
from omnidrill.load.stats import LoadStats
from omnidrill.load.thresholds import ThresholdResult, parse_threshold
from omnidrill.scenarios import ScenarioFile

Scenario = LoadScenario | RateLimitScenario


@dataclass
class Verdict:
    """The judgement of one contract clause, with what it rests on."""

    clause: str
    status: str  # passed | failed | skipped | inconclusive
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "clause": self.clause,
            "status": self.status,
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass
class ScenarioResult:
    """What a scenario run found: thresholds or verdicts, and the exact stats."""

    name: str
    type: str
    target: str
    started_at: float
    ended_at: float
    thresholds: list[ThresholdResult] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    stats: LoadStats | None = None
    warnings: list[str] = field(default_factory=list)
    inconclusive: str | None = None
    out_dir: Path | None = None

    @property
    def failed(self) -> list[str]:
        """One line per failed threshold or clause, saying which and by how much."""
        out = [t.describe() for t in self.thresholds if not t.passed]
        out += [f"{v.clause}: {v.summary}" for v in self.verdicts if v.status == "failed"]
        return out

    @property
    def passed(self) -> bool:
        return self.inconclusive is None and not self.failed

    @property
    def outcome(self) -> str:
        """failed wins over inconclusive: a clause that failed is a finding either way."""
        return "failed" if self.failed else "inconclusive" if self.inconclusive else "passed"

    @property
    def skipped(self) -> list[str]:
        return [f"{v.clause}: {v.summary}" for v in self.verdicts if v.status == "skipped"]

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "type": self.type,
            "target": self.target,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "inconclusive": self.inconclusive,
            "failed": self.failed,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "thresholds": [t.to_json() for t in self.thresholds],
            "verdicts": [v.to_json() for v in self.verdicts],
            "stats": self.stats.to_json() if self.stats else None,
        }
        return secrets.scrub_obj(data)  # type: ignore[no-any-return]

    def lines(self) -> list[str]:
        """A short human summary, one line each."""
        head = self.outcome.upper()
        out = [f"{self.type} scenario {self.name!r} against {self.target}: {head}"]
        if self.inconclusive:
            out.append(f"  {self.inconclusive}")
        if self.stats is not None:
            tot = self.stats.total().all
            dur = self.stats.duration_s or 0
            p95 = tot.percentile_ms(95)
            out.append(
                f"  {tot.requests} requests in {dur:.1f}s, {tot.failures} failed"
                + (f", p95 {p95:.3f} ms" if p95 is not None else "")
            )
        out += [f"  {t.describe()}" for t in self.thresholds]
        out += [f"  {v.clause} {v.status}: {v.summary}" for v in self.verdicts]
        out += [f"  warning: {w}" for w in self.warnings]
        return [secrets.scrub(x) for x in out]


def exit_code(result: ScenarioResult | list[ScenarioResult], strict: bool = False) -> int:
    """0 every threshold and clause held, 1 one failed, 5 no verdict could be given.

    With strict, a skipped clause counts as a failure (README "Exit codes")."""
    results = result if isinstance(result, list) else [result]
    if any(r.failed for r in results):
        return int(ExitCode.FAILED)
    if any(r.inconclusive for r in results):
        return int(ExitCode.INCONCLUSIVE)
    if strict and any(r.skipped for r in results):
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def judge_thresholds(scenario: LoadScenario, stats: LoadStats) -> list[ThresholdResult]:
    """Every threshold of the scenario against the exact stats of the whole run."""
    total = stats.total()
    return [
        parse_threshold(expr).evaluate(total, scope=scope)
        for scope, exprs in scenario.thresholds.items()
        for expr in exprs
    ]


def probe(target: Target, timeout: float = 5.0) -> None:
    """Raise Inconclusive when the target does not answer at all (no verdict is possible)."""
    url = f"{target.base_url}/functions/v1/healthz"
    try:
        with httpx.Client(timeout=timeout, verify=target.verify_tls) as client:
            client.get(url, headers=target.headers)
    except httpx.HTTPError as exc:
        raise Inconclusive(f"target {target.name!r} does not answer at {url}: {exc}") from None


def load_scenario(path: Path | str, variables: dict[str, Any] | None = None) -> Any:
    """Load a scenario file (load, rate_limit or canary) through the one spec loader (errors
    name file:line:col)."""
    from omnidrill.spec.loader import load_file

    spec = load_file(path, kind="scenario", variables=variables or {})
    model = spec.model
    return model.root if isinstance(model, ScenarioFile) else model  # type: ignore[no-any-return]


def refuse_other_types(scenario: Any) -> None:
    """The load runner takes load and rate-limit scenarios; a canary is `omnidrill run`'s."""
    if not isinstance(scenario, LoadScenario | RateLimitScenario):
        raise UsageError(
            f"scenario {scenario.name!r} is a {scenario.type}: run it with `omnidrill run`"
        )


def run_scenario(
    scenario: Scenario,
    profile: Any,
    *,
    workers: int = 0,
    out_dir: Path,
    role: Role = "local",
    master_host: str = "127.0.0.1",
    master_port: int | None = None,
    expect_workers: int | None = None,
    raw: bool = False,
    duration_s: float | None = None,
) -> ScenarioResult:
    """Run one scenario against a profile and judge it; files go to out_dir.

    workers=N runs a Locust master and N workers here; role="master"/"worker" runs one side of
    a run across machines (the worker side returns a result without verdicts)."""
    refuse_other_types(scenario)
    target = as_target(profile)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(scenario, RateLimitScenario):
        from omnidrill.load.ratelimit import verify_rate_limit

        if workers or role != "local":
            raise UsageError(
                "a rate-limit check runs from this machine only; drop --workers/--master"
            )
        result = verify_rate_limit(scenario, target)
        _write(result, out_dir)
        return result
    probe(target)
    plan, warnings = build_plan(scenario, target, duration_s=duration_s)
    proc = LoadProcess(
        plan,
        out_dir,
        workers=workers,
        role=role,
        master_host=master_host,
        master_port=master_port,
        expect_workers=expect_workers,
        raw=raw,
    )
    started = time.time()
    proc.start()
    try:
        budget = float(plan["duration_s"]) + scenario.users / plan["spawn_rate"] + 90
        if role != "worker":
            proc.wait_started(timeout=90 if (workers or role == "master") else 60)
        stats = proc.wait(timeout=budget)
    except BaseException:
        proc.kill()
        raise
    result = _judge(scenario, target, stats, started, warnings, out_dir, proc, role)
    _write(result, out_dir)
    return result


def _judge(
    scenario: LoadScenario,
    target: Target,
    stats: LoadStats,
    started: float,
    warnings: list[str],
    out_dir: Path,
    proc: LoadProcess,
    role: Role,
) -> ScenarioResult:
    result = ScenarioResult(
        name=scenario.name,
        type="load",
        target=target.name,
        started_at=stats.started_at or started,
        ended_at=stats.ended_at or time.time(),
        stats=stats,
        warnings=list(warnings),
        out_dir=out_dir,
    )
    if role == "worker":
        result.warnings.append("worker side of a distributed run: the master judges")
        result.stats = None
        return result
    bad_exit = [c for c in proc.exit_codes() if c not in (0, None)]
    problems = stats.errors + [
        f"workers that never reported their end: {stats.missing_workers}"
    ] * (bool(stats.missing_workers))
    if bad_exit and not problems:
        problems.append(f"a load process exited with {bad_exit}: {proc.log_tail()}")
    total = stats.total().all
    if problems:
        result.inconclusive = "; ".join(problems)
    elif total.requests == 0:
        result.inconclusive = "no request was made (see the locust-*.log files)"
    elif total.statuses.get(0, 0) == total.requests:
        result.inconclusive = f"the target never answered ({dict(total.codes)})"
    else:
        result.thresholds = judge_thresholds(scenario, stats)
    return result


def _write(result: ScenarioResult, out_dir: Path) -> None:
    path = out_dir / f"scenario-{result.name}.json"
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")


class BackgroundLoad:
    """A scenario run for the length of a drill, with its stats split at phase boundaries."""

    def __init__(
        self,
        scenario: LoadScenario,
        profile: Any,
        *,
        out_dir: Path,
        workers: int = 0,
        max_duration_s: float = 3600.0,
        phase: str = "baseline",
    ) -> None:
        if not isinstance(scenario, LoadScenario):
            raise UsageError(
                f"background load needs a load scenario, got {type(scenario).__name__}"
            )
        self.scenario = scenario
        self.target = as_target(profile)
        self.out_dir = Path(out_dir)
        self.workers = workers
        self.max_duration_s = max_duration_s  # a safety stop, should the drill never call stop()
        self.first_phase = phase
        self.proc: LoadProcess | None = None
        self.result: ScenarioResult | None = None
        self._warnings: list[str] = []
        self._started = 0.0

    def start(self) -> BackgroundLoad:
        probe(self.target)
        plan, self._warnings = build_plan(
            self.scenario,
            self.target,
            duration_s=self.max_duration_s,
            phase=self.first_phase,
        )
        self.proc = LoadProcess(plan, self.out_dir, workers=self.workers)
        self._started = time.time()
        self.proc.start()
        self.proc.wait_started()
        return self

    def phase(self, name: str) -> None:
        """Requests started from now on count in phase `name` (names may repeat)."""
        if self.proc is None:
            raise RuntimeError("BackgroundLoad.phase() before start()")
        self.proc.phase(name)

    def stats(self) -> LoadStats:
        """The stats so far (records arrive about once a second)."""
        if self.proc is None:
            raise RuntimeError("BackgroundLoad.stats() before start()")
        return self.proc.reader.poll()

    def stop(self) -> ScenarioResult:
        """Stop the load, judge the scenario's thresholds over the whole run, return it all."""
        if self.proc is None:
            raise RuntimeError("BackgroundLoad.stop() before start()")
        if self.result is not None:
            return self.result
        self.proc.stop()
        stats = self.proc.wait(timeout=60)
        self.result = _judge(
            self.scenario,
            self.target,
            stats,
            self._started,
            self._warnings,
            self.out_dir,
            self.proc,
            "local",
        )
        _write(self.result, self.out_dir)
        return self.result

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
