"""The verdict rule on samples of known distributions: identical passes, worse fails naming the
metric, too little is inconclusive, the contract and critical metrics rule."""

from __future__ import annotations

import random

import pytest

from omnidrill.canary.judge import DrillOnCanary, MetricData, judge, judge_metric
from omnidrill.canary.models import CanaryMetric, CanaryScenario
from omnidrill.canary.stats import Sample

LOAD = {"users": 2, "duration": "10s", "tasks": [{"function": "wallet-balance"}]}


def scenario(metrics: list[dict], **kw: object) -> CanaryScenario:
    return CanaryScenario.model_validate(
        {"type": "canary", "name": "t", "load": LOAD, "metrics": metrics, **kw}
    )


def latencies(rng: random.Random, n: int, factor: float = 1.0) -> Sample:
    # lognormal latencies around 20 ms, to the microsecond like the load runner's
    return Sample.of(round(rng.lognormvariate(3.0, 0.35) * factor, 3) for _ in range(n))


def outcomes(rng: random.Random, n: int, error_rate: float) -> Sample:
    return Sample.of(1.0 if rng.random() < error_rate else 0.0 for _ in range(n))


P95 = {"function": "wallet-balance", "measure": "p95", "tolerance": "20%"}
P50 = {"function": "wallet-balance", "measure": "p50", "tolerance": "20%"}
ERR = {"function": "wallet-balance", "measure": "error_rate", "tolerance": "0.5%"}


def data_for(rng: random.Random, n: int, slower: float = 1.0, errors: float = 0.0) -> dict:
    return {
        "wallet-balance p95": MetricData(latencies(rng, n), latencies(rng, n, slower)),
        "wallet-balance p50": MetricData(latencies(rng, n), latencies(rng, n, slower)),
        "wallet-balance error_rate": MetricData(outcomes(rng, n, 0.0), outcomes(rng, n, errors)),
    }


def test_identical_canaries_pass_every_time() -> None:
    sc = scenario([P95, P50, ERR])
    rng = random.Random(11)
    verdicts = [judge(sc, data_for(rng, 1500)).verdict for _ in range(30)]
    assert verdicts == ["pass"] * 30


def test_thirty_percent_slower_fails_naming_the_metrics() -> None:
    j = judge(scenario([P95, P50, ERR]), data_for(random.Random(5), 1500, slower=1.3))
    assert j.verdict == "fail" and j.exit_code == 1
    worse = {m.label for m in j.metrics if m.status == "worse"}
    assert worse == {"wallet-balance p95", "wallet-balance p50"}
    p95 = next(m for m in j.metrics if m.label == "wallet-balance p95")
    assert p95.relative_change == pytest.approx(0.3, abs=0.08) and p95.p_value < p95.alpha
    assert p95.effect_a > 0.6
    assert any("wallet-balance p95" in r for r in j.reasons)


def test_a_two_percent_error_rate_fails_on_the_critical_metric() -> None:
    err = {**ERR, "critical": True}
    j = judge(scenario([P95, P50, err]), data_for(random.Random(8), 1500, errors=0.02))
    assert j.verdict == "fail"
    bad = next(m for m in j.metrics if m.status == "worse")
    assert bad.label == "wallet-balance error_rate" and bad.change == pytest.approx(0.02, abs=0.01)
    assert "(critical)" in " ".join(j.reasons)


def test_one_metric_worse_of_several_is_marginal_and_exits_one() -> None:
    metrics = [{**P50, "name": f"m{i}"} for i in range(5)] + [{**P95, "name": "slow"}]
    rng = random.Random(2)
    data = {f"m{i}": MetricData(latencies(rng, 1500), latencies(rng, 1500)) for i in range(5)}
    data["slow"] = MetricData(latencies(rng, 1500), latencies(rng, 1500, 1.5))
    j = judge(scenario(metrics, scores={"pass": 95, "marginal": 75}), data)
    assert (j.verdict, round(j.score or 0, 1), j.exit_code) == ("marginal", 83.3, 1)


def test_too_few_samples_is_inconclusive_and_says_how_many_are_needed() -> None:
    rng = random.Random(1)
    data = data_for(rng, 1500)
    data["wallet-balance p95"] = MetricData(latencies(rng, 1500), latencies(rng, 150))
    j = judge(scenario([P95, P50, ERR]), data)
    assert (j.verdict, j.exit_code) == ("inconclusive", 5)
    assert "canary 150, needs 200 on each side" in " ".join(j.reasons)


def test_a_side_without_data_is_inconclusive() -> None:
    j = judge(
        scenario([P95]),
        {"wallet-balance p95": MetricData(latencies(random.Random(), 500), Sample())},
    )
    assert j.verdict == "inconclusive" and "canary 0" in j.reasons[0]


def test_significant_but_within_tolerance_holds() -> None:
    # 5 % slower with plenty of samples: the U test sees it, the tolerance forgives it
    rng = random.Random(4)
    res = judge_metric(
        CanaryMetric.model_validate(P50),
        MetricData(latencies(rng, 20000), latencies(rng, 20000, 1.05)),
        alpha=0.001,
    )
    assert res.p_value < 0.001 and res.status == "pass" and "within the tolerance" in res.reason


def test_beyond_tolerance_but_not_significant_holds() -> None:
    # 30 % slower on 25 requests: not enough evidence to fail anyone
    base = Sample.of([10.0, 12.0, 30.0, 11.0, 9.0] * 5)
    can = Sample.of([13.0, 15.6, 39.0, 14.3, 8.0] * 5)
    res = judge_metric(CanaryMetric.model_validate(P50), MetricData(base, can), alpha=0.001)
    assert res.status == "pass" and "not significant" in res.reason


def test_a_decrease_is_worse_only_when_the_metric_says_so() -> None:
    rng = random.Random(9)
    faster = MetricData(latencies(rng, 2000), latencies(rng, 2000, 0.6))
    up = judge_metric(CanaryMetric.model_validate(P50), faster, alpha=0.001)
    either = judge_metric(
        CanaryMetric.model_validate({**P50, "worse": "either"}), faster, alpha=0.001
    )
    assert (up.status, either.status) == ("pass", "worse")


def test_a_drill_that_fails_on_the_canary_fails_it_whatever_its_latency() -> None:
    drills = [DrillOnCanary("chaos/kill-switch.yaml", "failed", ["C2"], "503 expected, got 500")]
    j = judge(scenario([P95, P50, ERR]), data_for(random.Random(3), 1500), drills)
    assert j.verdict == "fail" and j.reasons[0].startswith("contract: chaos/kill-switch.yaml")


def test_an_inconclusive_drill_leaves_the_canary_inconclusive() -> None:
    drills = [DrillOnCanary("chaos/kill-switch.yaml", "inconclusive")]
    assert judge(scenario([P95]), data_for(random.Random(3), 1500), drills).verdict == (
        "inconclusive"
    )


def test_multiple_comparisons_split_the_error_budget() -> None:
    metrics = [{**P50, "name": f"m{i}"} for i in range(4)]
    j = judge(scenario(metrics, confidence=0.99), {})
    assert [m.alpha for m in j.metrics] == pytest.approx([0.0025] * 4)


def test_the_report_gets_distributions_of_both_sides() -> None:
    j = judge(scenario([P95, ERR]), data_for(random.Random(6), 500, errors=0.01))
    p95, err = j.metrics
    assert len(p95.distributions["baseline"]["percentiles"]) == 101
    assert set(err.distributions["canary"]) == {"ok", "errors"}
    assert j.to_json()["metrics"][0]["samples"] == {"baseline": 500, "canary": 500}
