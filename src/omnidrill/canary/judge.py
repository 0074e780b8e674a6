"""The canary's judgement: per metric a Mann-Whitney U test and an effect against the metric's
tolerance, then a weighted score and the verdict pass / marginal / fail / inconclusive.

A metric is `worse` only when both hold (Kayenta's rule, statistical and practical):
- significant: the one-sided U test of the canary being worse in the metric's direction has
  p < (1 - confidence) / M, M the number of metrics (Bonferroni: an identical canary fails
  any metric with probability at most 1 - confidence, whatever M);
- beyond tolerance: the metric's value on the canary differs from the baseline's by more than
  the tolerance, in the worse direction.
Below the samples a metric needs it is `inconclusive`: it is never judged on too little.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from omnidrill.canary.models import PERCENTILES, CanaryMetric, CanaryScenario, Tolerance
from omnidrill.canary.stats import Sample, mann_whitney

MetricStatus = Literal["pass", "worse", "inconclusive"]
Verdict = Literal["pass", "marginal", "fail", "inconclusive"]
# What each verdict exits with (README "Exit codes"): a marginal canary has not shown it is as
# good as its baseline, so it stops a rollout like a failed one; the report tells them apart.
VERDICT_EXIT = {"pass": 0, "marginal": 1, "fail": 1, "inconclusive": 5}
DISTRIBUTION_POINTS = tuple(range(101))  # percentiles kept per side for the report's charts
MAX_SERIES_KEPT = 2000


@dataclass(frozen=True)
class MetricData:
    """What was measured for one metric on each side.

    `series` is true for one value per interval (passive); otherwise the values are every
    request (latencies in ms; for an error rate 1 per failed request and 0 per good one).
    """

    baseline: Sample
    canary: Sample
    series: bool = False
    note: str = ""  # why a side has no data, when it has none


def statistic(metric: CanaryMetric, sample: Sample, *, series: bool) -> float | None:
    """The metric's own value on one side: its percentile, mean or error rate over the
    requests; over a series, the median interval (a p95 series' typical p95)."""
    if metric.measure == "error_rate":
        return sample.mean()
    if series:
        return sample.percentile(50.0)
    if metric.measure in PERCENTILES:
        return sample.percentile(PERCENTILES[metric.measure])
    return sample.mean()


def beyond(change: float, bound: float, worse: str) -> bool:
    if worse == "increase":
        return change > bound
    if worse == "decrease":
        return change < -bound
    return abs(change) > bound


def _bound(tol: Tolerance, baseline_value: float) -> float:
    if tol.relative is not None:
        return tol.relative * abs(baseline_value)
    return tol.absolute or 0.0


@dataclass
class MetricResult:
    """One metric's comparison and its classification."""

    label: str
    measure: str | None
    function: str
    query: str | None
    worse: str
    tolerance: str
    rule: str  # when it counts as worse, in words
    critical: bool
    weight: float
    status: MetricStatus
    reason: str
    n_baseline: int
    n_canary: int
    needed: int
    series: bool
    alpha: float
    baseline_value: float | None = None
    canary_value: float | None = None
    change: float | None = None  # canary - baseline, in the metric's unit
    relative_change: float | None = None  # change / baseline
    p_value: float | None = None  # of the canary being worse, one-sided (two for `either`)
    effect_a: float | None = None  # P(canary value > baseline value), ties half
    distributions: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        if self.measure == "error_rate":
            return "%"
        return "ms" if self.measure is not None else ""

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.measure == "error_rate":
            return f"{value * 100:.3g} %"
        return f"{value:.4g}{' ms' if self.unit == 'ms' else ''}"

    def change_text(self) -> str:
        if self.change is None:
            return "-"
        if self.measure == "error_rate":
            return f"{self.change * 100:+.3g} points"
        rel = f" ({self.relative_change * 100:+.1f} %)" if self.relative_change is not None else ""
        return f"{self.change:+.4g}{' ms' if self.unit == 'ms' else ''}{rel}"

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.label,
            "measure": self.measure,
            "function": self.function,
            "query": self.query,
            "worse": self.worse,
            "tolerance": self.tolerance,
            "rule": self.rule,
            "critical": self.critical,
            "weight": self.weight,
            "status": self.status,
            "reason": self.reason,
            "samples": {"baseline": self.n_baseline, "canary": self.n_canary},
            "needed": self.needed,
            "series": self.series,
            "alpha": self.alpha,
            "baseline": self.baseline_value,
            "canary": self.canary_value,
            "change": self.change,
            "relative_change": self.relative_change,
            "p_value": self.p_value,
            "effect_a": self.effect_a,
            "shown": {
                "baseline": self.show(self.baseline_value),
                "canary": self.show(self.canary_value),
                "change": self.change_text(),
            },
            "distributions": self.distributions,
        }


def _distribution(metric: CanaryMetric, sample: Sample, *, series: bool) -> dict[str, Any]:
    """What the report draws of one side: the series itself, the outcome counts of an error
    rate, or every percentile of the requests' latencies."""
    if metric.measure == "error_rate":
        counts = dict(zip(sample.values, sample.counts, strict=True))
        return {"ok": int(counts.get(0.0, 0)), "errors": int(counts.get(1.0, 0))}
    if series:
        return {"series": sample.expanded()[:MAX_SERIES_KEPT]}
    return {"percentiles": [sample.percentile(p) for p in DISTRIBUTION_POINTS]}


def judge_metric(
    metric: CanaryMetric, data: MetricData, *, alpha: float, needed: int | None = None
) -> MetricResult:
    """Classify one metric: inconclusive below its samples, else worse or pass."""
    need = needed if needed is not None else metric.needed_samples(series=data.series)
    tol = metric.bound
    res = MetricResult(
        label=metric.label,
        measure=metric.measure,
        function=metric.function,
        query=metric.query,
        worse=metric.worse_direction,
        tolerance=tol.describe(metric.measure),
        rule=metric.rule,
        critical=metric.critical,
        weight=metric.weight,
        status="inconclusive",
        reason="",
        n_baseline=data.baseline.n,
        n_canary=data.canary.n,
        needed=need,
        series=data.series,
        alpha=alpha,
    )
    what = "intervals" if data.series else "requests"
    short = [
        f"{side} {n}"
        for side, n in (("baseline", res.n_baseline), ("canary", res.n_canary))
        if n < need
    ]
    if short:
        res.reason = f"too few {what} to judge: {', '.join(short)}, needs {need} on each side" + (
            f" ({data.note})" if data.note else ""
        )
        return res
    res.distributions = {
        "baseline": _distribution(metric, data.baseline, series=data.series),
        "canary": _distribution(metric, data.canary, series=data.series),
    }
    b = statistic(metric, data.baseline, series=data.series)
    c = statistic(metric, data.canary, series=data.series)
    assert b is not None and c is not None  # both sides have samples here
    res.baseline_value, res.canary_value = b, c
    res.change = c - b
    res.relative_change = (c - b) / b if b else None
    mw = mann_whitney(data.baseline, data.canary)
    res.p_value, res.effect_a = mw.p(res.worse), mw.a
    significant = res.p_value < alpha
    outside = beyond(res.change, _bound(tol, b), res.worse)
    res.status = "worse" if significant and outside else "pass"
    res.reason = _reason(res, significant, outside)
    return res


def _reason(res: MetricResult, significant: bool, outside: bool) -> str:
    sig = f"p = {res.p_value:.2g} {'<' if significant else '>='} {res.alpha:.2g}"
    change = f"{res.show(res.baseline_value)} -> {res.show(res.canary_value)}, {res.change_text()}"
    if res.status == "worse":
        return f"worse: {change}, beyond the tolerance of {res.tolerance}; {sig}"
    if outside:
        return f"held: {change} is beyond {res.tolerance} but not significant ({sig})"
    if significant:
        return f"held: a significant difference ({sig}) within the tolerance of {res.tolerance}"
    return f"held: {change}, within {res.tolerance}; {sig}"


@dataclass
class DrillOnCanary:
    """A drill run against the canary only, and how it ended."""

    file: str
    verdict: str  # the engine's: passed, failed, skipped, inconclusive, aborted, ...
    clauses: list[str] = field(default_factory=list)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "verdict": self.verdict,
            "clauses": self.clauses,
            "reason": self.reason,
        }


@dataclass
class CanaryJudgement:
    """Every metric's result, the score and the verdict, with why."""

    metrics: list[MetricResult]
    drills: list[DrillOnCanary]
    score: float | None
    verdict: Verdict
    reasons: list[str]

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "reasons": self.reasons,
            "metrics": [m.to_json() for m in self.metrics],
            "drills": [d.to_json() for d in self.drills],
        }


def score_of(results: Sequence[MetricResult]) -> float | None:
    """Weighted share (0-100) of the judged metrics that held; None when none was judged."""
    judged = [r for r in results if r.status != "inconclusive"]
    total = sum(r.weight for r in judged)
    if not total:
        return None
    return 100.0 * sum(r.weight for r in judged if r.status == "pass") / total


def _best_case(results: Sequence[MetricResult]) -> float:
    """The score if every inconclusive metric had held: below marginal, no data can save it."""
    total = sum(r.weight for r in results)
    held = sum(r.weight for r in results if r.status != "worse")
    return 100.0 * held / total if total else 100.0


def judge(
    scenario: CanaryScenario,
    data: Mapping[str, MetricData],
    drills: Sequence[DrillOnCanary] = (),
) -> CanaryJudgement:
    """The canary's verdict from what was measured per metric (keyed by label) and the drills.

    In order: a drill that failed on the canary fails it (the contract rules, whatever its
    latency); a critical metric that is worse fails it, and so does a score below marginal
    even if every undecided metric had held; a metric without enough samples, or a drill with
    no verdict, leaves it inconclusive; otherwise the score decides.
    """
    alpha = (1.0 - scenario.confidence) / len(scenario.metrics)
    empty = MetricData(Sample(), Sample(), scenario.judged_on_series, "not measured")
    results = [judge_metric(m, data.get(m.label, empty), alpha=alpha) for m in scenario.metrics]
    score = score_of(results)
    reasons: list[str] = []
    broken = [d for d in drills if d.verdict == "failed"]
    critical = [r for r in results if r.critical and r.status == "worse"]
    undecided = [r for r in results if r.status == "inconclusive"]
    no_drill_verdict = [d for d in drills if d.verdict in ("inconclusive", "error", "aborted")]
    worse = [r for r in results if r.status == "worse"]
    verdict: Verdict
    if broken:
        verdict = "fail"
        reasons += [
            f"contract: {d.file} failed on the canary"
            + (f" ({', '.join(d.clauses)})" if d.clauses else "")
            + (f": {d.reason}" if d.reason else "")
            for d in broken
        ]
    elif critical or _best_case(results) < scenario.scores.marginal:
        verdict = "fail"
    elif undecided or no_drill_verdict:
        verdict = "inconclusive"
        reasons += [f"{r.label}: {r.reason}" for r in undecided]
        reasons += [f"{d.file}: {d.verdict} on the canary" for d in no_drill_verdict]
    elif score is not None and score >= scenario.scores.pass_:
        verdict = "pass"
    elif score is not None and score >= scenario.scores.marginal:
        verdict = "marginal"
    else:
        verdict = "fail"
    reasons += [
        f"{r.label}{' (critical)' if r.critical else ''}: {r.reason}"
        for r in worse
        if verdict != "inconclusive" or r.critical
    ]
    if score is not None and verdict in ("pass", "marginal", "fail") and not broken:
        reasons.insert(
            0,
            f"score {score:.1f} (pass at {scenario.scores.pass_:g}, marginal at "
            f"{scenario.scores.marginal:g}); {len(worse)} of {len(results)} metric(s) worse",
        )
    return CanaryJudgement(results, list(drills), score, verdict, reasons)
