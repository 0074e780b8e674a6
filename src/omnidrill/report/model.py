"""What the renderers show: a run read from its journal, in the words of the reports.

`omnidrill.report.journal` builds these from `journal.json`; the renderers (HTML, JUnit,
Markdown, history) only ever see these, so each reads one small, typed structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A drill's or a run's verdict, worst first: the order the summaries sort by.
VERDICT_ORDER = (
    "rollback_failed",
    "error",
    "running",
    "aborted",
    "inconclusive",
    "failed",
    "not_run",
    "not_checked",
    "skipped",
    "passed",
    "done",
)


# The engine's phase names, as a runbook says them.
PHASE_WORDS = {
    "steady_state_before": "steady state before",
    "method": "method",
    "rollbacks": "rollback",
    "undo": "undo",
    "steady_state_after": "recovery",
}


def verdict_rank(verdict: str) -> int:
    return VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else 0


@dataclass
class Evidence:
    """One piece of a failed check's evidence: the request, what was expected, what came back."""

    text: str
    request: str | None = None
    expected: str | None = None
    got: str | None = None


@dataclass
class CheckView:
    """One step of a drill (a check or an action) and how it ended."""

    phase: str  # steady_state | method | rollback | undo | recovery | ...
    index: int
    kind: str  # http, rpc.tx_absent, controls.set, ...
    name: str
    is_check: bool
    verdict: str  # passed | failed | done | skipped | inconclusive | error | aborted | ...
    clause: str | None = None
    started_ts: float | None = None
    ended_ts: float | None = None
    evidence: list[Evidence] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    requests_total: int = 0
    measurements: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # a scenario's clause verdict: what was seen

    @property
    def duration_s(self) -> float | None:
        if self.started_ts is None or self.ended_ts is None:
            return None
        return max(0.0, self.ended_ts - self.started_ts)

    @property
    def failed(self) -> bool:
        return self.verdict in {"failed", "error", "inconclusive", "aborted"}

    @property
    def label(self) -> str:
        phase = PHASE_WORDS.get(self.phase, self.phase.replace("_", " "))
        return f"{phase} {self.index + 1}: {self.name or self.kind}"


@dataclass
class Measure:
    """A measured time (to effect, to recover) and the resolution it was measured at."""

    what: str  # "time to effect" | "time to recover"
    seconds: float | None
    resolution_s: float | None
    bound_s: float | None = None
    step: str | None = None

    def text(self) -> str:
        if self.seconds is None:
            return "not measured"
        res = f" (±{self.resolution_s:.3f} s)" if self.resolution_s is not None else ""
        return f"{self.seconds:.3f} s{res}"


@dataclass
class MonitorView:
    """One monitor a drill expected to trip (O1): how it did, with its times."""

    id: str
    title: str
    window: str
    verdict: str  # the O1 check's: passed | failed | skipped | ...
    outcome: str  # detected | undetected | late | unresolved | late resolve | not judged
    time_to_detect_s: float | None = None
    time_to_resolve_s: float | None = None
    resolution_s: float | None = None
    alerted_ts: float | None = None
    resolved_ts: float | None = None
    evidence: list[str] = field(default_factory=list)


@dataclass
class DetectionView:
    """Where a drill read its monitors, and how each expected one did."""

    source: str | None  # intake | datadog | None (no `observe:`)
    env: str | None
    skipped: str | None
    monitors: list[MonitorView] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    detect_timeout_s: float | None = None
    resolve_timeout_s: float | None = None

    @property
    def alerted(self) -> int:
        return sum(1 for m in self.monitors if m.time_to_detect_s is not None)


@dataclass
class TrafficSecond:
    """Every request of a drill that started in one second (probes, actions, load together)."""

    t: int
    count: int
    by_status: dict[str, int]
    by_code: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None


@dataclass
class ThresholdView:
    """A load threshold with what was measured."""

    scope: str
    expr: str
    measured: str
    passed: bool
    message: str
    phase: str | None = None


@dataclass
class DrillView:
    """One drill of the run."""

    name: str  # the file's stem or its id
    title: str
    file: str | None
    clauses: list[str]
    verdict: str
    reason: str = ""
    started_ts: float | None = None
    ended_ts: float | None = None
    steps: list[CheckView] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    traffic: list[TrafficSecond] = field(default_factory=list)
    thresholds: list[ThresholdView] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    clause_verdicts: dict[str, str] = field(default_factory=dict)  # the engine's, per clause
    skipped_checks: list[str] = field(default_factory=list)
    left_changed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # undos left alone: someone's change
    not_cleaned: list[str] = field(default_factory=list)  # what no undo could take back
    internal_error: str = ""
    detection: DetectionView | None = None

    def clause_verdict(self, clause: str) -> str:
        """The verdict of one clause in this drill; `not_checked` explained by the drill's own."""
        v = self.clause_verdicts.get(clause) or self.verdict
        if v == "not_checked" and self.verdict != "passed":
            return self.verdict
        return v

    @property
    def checks(self) -> list[CheckView]:
        return [s for s in self.steps if s.is_check]

    @property
    def failed_checks(self) -> list[CheckView]:
        return [s for s in self.checks if s.failed]

    @property
    def duration_s(self) -> float | None:
        if self.started_ts is None or self.ended_ts is None:
            return None
        return max(0.0, self.ended_ts - self.started_ts)

    def measure(self, what: str) -> Measure | None:
        return next((m for m in self.measures if m.what == what), None)


@dataclass
class CanaryMetricView:
    """One metric of a canary: both sides, the test, the verdict, what to draw."""

    label: str
    measure: str | None
    status: str  # pass | worse | inconclusive
    reason: str
    rule: str  # when it counts as worse: "it rises by more than 20 %"
    critical: bool
    baseline: str  # the metric's value on each side, with its unit
    canary: str
    change: str
    p_value: float | None
    alpha: float | None
    effect_a: float | None
    n_baseline: int
    n_canary: int
    needed: int
    series: bool
    distributions: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """In the words every report uses for checks."""
        return {"pass": "passed", "worse": "failed"}.get(self.status, "inconclusive")


@dataclass
class CanaryView:
    """A canary scenario: the verdict, the score, both sides and every metric."""

    verdict: str  # pass | marginal | fail | inconclusive
    source: str
    score: float | None
    reasons: list[str]
    sides: dict[str, str]
    per_side: dict[str, Any]
    metrics: list[CanaryMetricView]
    drills: list[dict[str, Any]]
    window: dict[str, Any] | None = None


@dataclass
class ScenarioView:
    """A load, rate-limit or canary scenario run on its own (not as a drill's background)."""

    name: str
    file: str | None
    verdict: str
    reason: str = ""
    started_ts: float | None = None
    ended_ts: float | None = None
    thresholds: list[ThresholdView] = field(default_factory=list)
    checks: list[CheckView] = field(default_factory=list)
    traffic: list[TrafficSecond] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    canary: CanaryView | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_ts is None or self.ended_ts is None:
            return None
        return max(0.0, self.ended_ts - self.started_ts)


@dataclass
class RunView:
    """A whole run: its verdict first, then everything it found."""

    run_id: str
    target: str
    environment: str
    status: str
    exit_code: int | None
    verdict: str
    started_at: str | None
    ended_at: str | None
    started_ts: float | None
    duration_s: float | None
    host: str = ""
    omnidrill_version: str = ""
    journal_version: str = ""
    argv: list[str] = field(default_factory=list)
    drills: list[DrillView] = field(default_factory=list)
    scenarios: list[ScenarioView] = field(default_factory=list)
    pending_undos: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def mean_time_to_detect(self) -> tuple[float, int] | None:
        """Mean of the drills' times to detect (first expected alert), and over how many."""
        times = [
            m.seconds
            for d in self.drills
            if (m := d.measure("time to detect")) is not None and m.seconds is not None
        ]
        return (sum(times) / len(times), len(times)) if times else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in [*self.drills, *self.scenarios]:
            out[item.verdict] = out.get(item.verdict, 0) + 1
        return out

    def coverage(self) -> list[tuple[str, list[Covering], str]]:
        """Clause -> the drills and scenarios that check it -> its verdict (the worst of them).

        A drill covers the clauses it lists; a scenario the clauses of its verdicts, each with
        that verdict's own status.
        """
        by_clause: dict[str, list[Covering]] = {}
        for d in self.drills:
            for c in d.clauses:
                by_clause.setdefault(c, []).append(
                    Covering(d.title or d.name, f"drill-{d.name}", d.clause_verdict(c), d.verdict)
                )
        for s in self.scenarios:
            for check in s.checks:
                if check.clause:
                    by_clause.setdefault(check.clause, []).append(
                        Covering(
                            f"scenario {s.name}", f"scenario-{s.name}", check.verdict, s.verdict
                        )
                    )
        rows = []
        for clause in sorted(by_clause, key=clause_sort_key):
            items = by_clause[clause]
            verdict = min((i.verdict for i in items), key=verdict_rank)
            rows.append((clause, items, verdict))
        return rows


@dataclass(frozen=True)
class Covering:
    """A drill or a scenario that checks a clause, and its verdict."""

    name: str
    anchor: str
    verdict: str  # of the clause in that drill or scenario
    overall: str  # of the drill or scenario as a whole


_CLAUSE_ORDER = "SCARIPO"


def clause_sort_key(clause: str) -> tuple[int, int, str]:
    """Clauses in CONTRACT.md's order: S, C, A, R, I, P, O, then by number."""
    head, num = clause[:1], clause[1:]
    return (
        _CLAUSE_ORDER.index(head) if head in _CLAUSE_ORDER else 99,
        int(num) if num.isdigit() else 0,
        clause,
    )
