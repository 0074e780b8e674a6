"""Passive canaries: both versions' metrics, split by the version tag, from Datadog (the fake
API) or from the local intake (`omnidrill intake`, real), both fed through the real SDK with
series of known distributions."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.v1.api.metrics_api import MetricsApi as MetricsV1
from datadog_api_client.v1.model.distribution_point import DistributionPoint
from datadog_api_client.v1.model.distribution_points_payload import DistributionPointsPayload
from datadog_api_client.v1.model.distribution_points_series import DistributionPointsSeries
from datadog_api_client.v2.api.metrics_api import MetricsApi
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_series import MetricSeries

from observe.fake_datadog import FakeDatadog
from omnidrill.canary.models import CanaryScenario
from omnidrill.canary.passive import queries_for, window_bounds
from omnidrill.canary.runner import run_canary
from omnidrill.errors import UsageError
from omnidrill.observe.intake.server import ThreadedIntake
from omnidrill.profile import Observe, TargetProfile, development_profile

# The window ends at the last whole minute: an intake (like Datadog) drops points more than an
# hour old, and the series sit in the 30 minutes before it.
END = int(time.time()) // 60 * 60
MINUTES = 30


@pytest.fixture
def dd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatadog]:
    fake = FakeDatadog().start()
    for k, v in fake.sdk_env().items():
        monkeypatch.setenv(k, v)
    yield fake
    fake.stop()


@dataclass
class Source:
    """Where the telemetry goes, and the profile that says so."""

    url: str
    api_key: str
    profile: TargetProfile


@pytest.fixture(params=["datadog", "intake"])
def source(request: pytest.FixtureRequest) -> Iterator[Source]:
    if request.param == "datadog":
        fake = request.getfixturevalue("dd")
        yield Source(fake.url, fake.api_key, development_profile())
        return
    intake = ThreadedIntake().start()
    profile = development_profile().model_copy(
        update={"observe": Observe.model_validate({"intake": intake.url})}
    )
    try:
        yield Source(intake.url, "any-key", profile)
    finally:
        intake.stop()


def feed(
    dd: FakeDatadog | Source,
    version: str,
    *,
    slower: float = 1.0,
    error_rate: float = 0.0,
    seed: int = 0,
    per_minute: int = 300,
) -> None:
    """One version's telemetry, as the functions send it: a latency per request (a
    distribution) and a request count per status, every 10 s for 30 minutes."""
    rng = random.Random(seed)
    cfg = Configuration(api_key={"apiKeyAuth": dd.api_key})
    cfg.host = dd.url
    tags = ["function:wallet_balance", f"version:{version}", "env:test"]
    dist, counts = [], []
    for i in range(MINUTES * 6):
        ts = END - MINUTES * 60 + i * 10 + 5
        n = per_minute // 6
        values = [rng.lognormvariate(3.0, 0.35) * slower for _ in range(n)]
        dist.append(DistributionPoint([float(ts), values]))
        errors = sum(rng.random() < error_rate for _ in range(n))
        counts += [(ts, n - errors, "success"), (ts, errors, "error")]
    series = [
        MetricSeries(
            metric="omnihub.agent.requests",
            type=MetricIntakeType.COUNT,
            points=[MetricPoint(timestamp=ts, value=float(c))],
            tags=[*tags, f"status:{status}"],
        )
        for ts, c, status in counts
    ]
    with ApiClient(cfg) as client:
        MetricsV1(client).submit_distribution_points(
            DistributionPointsPayload(
                series=[
                    DistributionPointsSeries(
                        metric="omnihub.agent.duration", points=dist, tags=tags
                    )
                ]
            )
        )
        MetricsApi(client).submit_metrics(body=MetricPayload(series=series))


def scenario(canary: str = "v2", **kw: object) -> CanaryScenario:
    return CanaryScenario.model_validate(
        {
            "type": "canary",
            "name": "rollout",
            "source": "passive",
            "baseline": {"version": "v1"},
            "canary": {"version": canary},
            "datadog": {"window": "30m", "end": END, "interval": "1m"},
            "metrics": [
                {"function": "wallet_balance", "measure": "p95", "tolerance": "20%"},
                {"function": "wallet_balance", "measure": "p50", "tolerance": "20%"},
                {
                    "function": "wallet_balance",
                    "measure": "error_rate",
                    "tolerance": "0.5%",
                    "critical": True,
                },
            ],
            **kw,
        }
    )


def run(sc: CanaryScenario, tmp_path: Path, profile: TargetProfile | None = None):  # type: ignore[no-untyped-def]
    chosen = profile or development_profile()
    return run_canary(sc, chosen, out_dir=tmp_path, load_profile=lambda n: chosen)


def test_an_identical_version_passes(source: Source, tmp_path: Path) -> None:
    feed(source, "v1", seed=1)
    feed(source, "v2", seed=2)
    result = run(scenario(), tmp_path, source.profile)
    assert result.verdict == "pass", result.lines()
    p95 = result.judgement.metrics[0]  # type: ignore[union-attr]
    # one p95 per minute and version: 30 samples a side
    assert (p95.n_baseline, p95.n_canary, p95.series) == (30, 30, True)
    err = result.judgement.metrics[2]  # type: ignore[union-attr]
    assert (err.n_baseline, err.n_canary) == (9000, 9000)
    assert result.window is not None
    if source.profile.observe is not None:
        assert result.window["source"] == source.url
        return
    assert len(result.window["queries"]) == 8
    assert (
        "p95:omnihub.agent.duration{function:wallet_balance,version:v2}.rollup(60)"
        in (result.window["queries"])
    )


def test_thirty_percent_slower_fails_on_its_latency(source: Source, tmp_path: Path) -> None:
    feed(source, "v1", seed=1)
    feed(source, "v2", seed=2, slower=1.3)
    result = run(scenario(), tmp_path, source.profile)
    assert result.verdict == "fail" and result.exit_code == 1
    worse = {m.label for m in result.judgement.metrics if m.status == "worse"}  # type: ignore[union-attr]
    assert worse == {"wallet_balance p95", "wallet_balance p50"}
    p95 = result.judgement.metrics[0]  # type: ignore[union-attr]
    assert p95.relative_change == pytest.approx(0.3, abs=0.05) and p95.effect_a > 0.9


def test_a_two_percent_error_rate_fails(source: Source, tmp_path: Path) -> None:
    feed(source, "v1", seed=1)
    feed(source, "v2", seed=2, error_rate=0.02)
    result = run(scenario(), tmp_path, source.profile)
    assert result.verdict == "fail"
    err = result.judgement.metrics[2]  # type: ignore[union-attr]
    assert err.status == "worse" and err.canary_value == pytest.approx(0.02, abs=0.005)
    assert any("wallet_balance error_rate (critical)" in r for r in result.judgement.reasons)  # type: ignore[union-attr]


def test_a_version_with_no_data_is_inconclusive(source: Source, tmp_path: Path) -> None:
    feed(source, "v1", seed=1)
    result = run(scenario(canary="v3"), tmp_path, source.profile)
    assert result.verdict == "inconclusive" and result.exit_code == 5
    assert all(m.status == "inconclusive" for m in result.judgement.metrics)  # type: ignore[union-attr]
    assert "no data for version:v3" in result.judgement.metrics[0].reason  # type: ignore[union-attr]


def test_any_query_split_by_version(dd: FakeDatadog, tmp_path: Path) -> None:
    cfg = Configuration(api_key={"apiKeyAuth": dd.api_key})
    cfg.host = dd.url
    rng = random.Random(4)
    series = [
        MetricSeries(
            metric="omnihub.queue.lag",
            type=MetricIntakeType.GAUGE,
            points=[
                MetricPoint(timestamp=END - 1800 + 60 * i, value=rng.gauss(level, 1.0))
                for i in range(30)
            ],
            tags=[f"version:{v}"],
        )
        for v, level in (("v1", 50.0), ("v2", 40.0))
    ]
    with ApiClient(cfg) as client:
        MetricsApi(client).submit_metrics(body=MetricPayload(series=series))
    lag = {"name": "lag", "query": "avg:omnihub.queue.lag{$version}.rollup(avg, 60)"}
    falls = scenario(metrics=[{**lag, "worse": "decrease", "tolerance": "10%"}])
    rises = scenario(metrics=[{**lag, "worse": "increase", "tolerance": "10%"}])
    assert run(falls, tmp_path).verdict == "fail"  # 20 % lower where lower is worse
    assert run(rises, tmp_path).verdict == "pass"  # lower is better there


def test_datadog_refusing_is_inconclusive(dd: FakeDatadog, tmp_path: Path) -> None:
    dd.fail_next(500, times=10, path_prefix="/api/v1/query")
    result = run(scenario(), tmp_path)
    assert result.verdict == "inconclusive"
    assert "Datadog refused querying" in (result.not_measured or "")


def test_window_and_queries() -> None:
    sc = scenario()
    assert sc.datadog is not None
    assert window_bounds(sc.datadog) == (END - 1800, END)
    iso = sc.datadog.model_copy(update={"end": "2026-12-02T10:00:00Z"})
    assert window_bounds(iso)[1] == 1796205600
    with pytest.raises(UsageError, match="time zone"):
        window_bounds(sc.datadog.model_copy(update={"end": "2026-12-02T10:00:00"}))
    err = queries_for(sc.metrics[2], sc.datadog, "v9")
    assert err == {
        "errors": "sum:omnihub.agent.requests{function:wallet_balance,version:v9,status:error}"
        ".as_count()",
        "total": "sum:omnihub.agent.requests{function:wallet_balance,version:v9}.as_count()",
    }


def test_the_documented_example_loads() -> None:
    from omnidrill.load.runner import load_scenario
    from omnidrill.profile import template_variables

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "canary-passive.yaml"
    context = template_variables(development_profile(), {"baseline": "1.4.2", "canary": "1.5.0"})
    sc = load_scenario(example, context)
    assert sc.source == "passive" and sc.canary.version == "1.5.0" and len(sc.metrics) == 7


def test_a_query_is_refused_up_front_where_telemetry_goes_to_an_intake(tmp_path: Path) -> None:
    from omnidrill.canary.runner import preflight

    profile = development_profile().model_copy(
        update={"observe": Observe.model_validate({"intake": "http://127.0.0.1:9"})}
    )
    lag = {"query": "avg:omnihub.queue.lag{$version}", "worse": "increase", "tolerance": 1}
    with pytest.raises(UsageError, match="keeps points, not queries"):
        preflight(tmp_path / "c.yaml", scenario(metrics=[lag]), profile)
    preflight(tmp_path / "c.yaml", scenario(), profile)  # measures are computed from the points


def test_the_report_says_the_window_and_draws_both_series(dd: FakeDatadog, tmp_path: Path) -> None:
    from omnidrill.report.canary_charts import canary_metric_svg
    from omnidrill.report.journal import _canary

    feed(dd, "v1", seed=1)
    feed(dd, "v2", seed=2, slower=1.3)
    view = _canary(run(scenario(), tmp_path).to_json())
    assert view.window is not None and view.window["to_utc"].endswith("+00:00")
    p95 = view.metrics[0]
    assert len(p95.distributions["canary"]["series"]) == 30
    svg = canary_metric_svg(p95)
    assert svg is not None and svg.startswith("<svg") and "interval (in time order)" in svg
