"""Passive source: both versions' metrics from Datadog over one window, as a real rollout has them.

Each metric becomes one query per version, split by the version tag (`version:1.4.2`), rolled
up to one value per `interval` (`GET /api/v1/query` through `datadog-api-client`; DD_API_KEY,
DD_APP_KEY, DD_SITE as for monitors; DD_SITE may be a URL). The contract's metrics (section 7):

- `p50` ... `p99.9`: `pNN:omnihub.agent.duration{function:F,version:V}.rollup(I)`, one
  percentile per interval (the distribution's, over every request of the interval);
- `mean`: `avg:omnihub.agent.duration{...}.rollup(avg, I)`;
- `error_rate`: `sum:omnihub.agent.requests{...,status:error}.as_count()` over
  `sum:omnihub.agent.requests{...}.as_count()`, summed over the window: every request is a
  sample (1 failed, 0 not), as in the active source;
- `query`: any query, its `$version` replaced by `version_tag:V`; every point of every series
  it returns is a sample (add a rollup to choose the interval).

`function` is the value of the `function` tag (the reference stack tags the operation name,
`wallet_balance`); `all` leaves it out. A version without a point gives an empty side: that
metric is inconclusive, never passed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from omnidrill.canary.judge import MetricData
from omnidrill.canary.models import CanaryMetric, CanaryScenario, DatadogWindow
from omnidrill.canary.stats import Sample
from omnidrill.errors import UsageError

DURATION = "omnihub.agent.duration"
REQUESTS = "omnihub.agent.requests"


def window_bounds(window: DatadogWindow, now: float | None = None) -> tuple[int, int]:
    """(from, to) in whole epoch seconds."""
    end_value = window.end
    if isinstance(end_value, int | float):
        end = float(end_value)
    elif end_value.strip().lower() == "now":
        end = time.time() if now is None else now
    else:
        try:
            parsed = datetime.fromisoformat(end_value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"datadog.end: expected 'now', epoch seconds or an ISO 8601 time, "
                f"found {end_value!r}"
            ) from None
        if parsed.tzinfo is None:
            raise UsageError(f"datadog.end: {end_value!r} needs its time zone (e.g. Z, +01:00)")
        end = parsed.timestamp()
    return int(end - window.window), int(end)


def queries_for(metric: CanaryMetric, window: DatadogWindow, version: str) -> dict[str, str]:
    """The query (or, for an error rate, the two queries) of one metric for one version."""
    tag = f"{window.version_tag}:{version}"
    interval = int(window.interval)
    if metric.query is not None:
        return {"values": metric.query.replace("$version", tag)}
    scope = tag if metric.function == "all" else f"function:{metric.function},{tag}"
    if metric.measure == "error_rate":
        return {
            "errors": f"sum:{REQUESTS}{{{scope},status:error}}.as_count()",
            "total": f"sum:{REQUESTS}{{{scope}}}.as_count()",
        }
    if metric.measure == "mean":
        return {"values": f"avg:{DURATION}{{{scope}}}.rollup(avg, {interval})"}
    return {"values": f"{metric.measure}:{DURATION}{{{scope}}}.rollup({interval})"}


def _values(response: Mapping[str, Any]) -> list[float]:
    return [
        float(pt[1])
        for s in response.get("series") or []
        for pt in s.get("pointlist") or []
        if len(pt) > 1 and pt[1] is not None
    ]


def run_passive(
    scenario: CanaryScenario, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, MetricData], dict[str, Any]]:
    """Both versions' samples per metric from Datadog, and the window with every query sent."""
    from datadog_api_client.v1.api.metrics_api import MetricsApi

    from omnidrill.observe.ddclient import DatadogSettings, api_client, call, plain

    window = scenario.datadog
    assert window is not None and scenario.baseline.version and scenario.canary.version
    start, end = window_bounds(window)
    settings = DatadogSettings.from_env(environ)
    sent: list[str] = []
    data: dict[str, MetricData] = {}
    with api_client(settings) as client:
        api = MetricsApi(client)

        def values(query: str) -> list[float]:
            sent.append(query)
            resp = call(settings, f"querying {query}", api.query_metrics, start, end, query)
            return _values(plain(resp))

        for m in scenario.metrics:
            sides: list[Sample] = []
            for version in (scenario.baseline.version, scenario.canary.version):
                q = queries_for(m, window, version)
                if m.measure == "error_rate":
                    errors, total = round(sum(values(q["errors"]))), round(sum(values(q["total"])))
                    errors = min(errors, total)
                    sides.append(Sample.from_counts({0.0: total - errors, 1.0: errors}))
                else:
                    sides.append(Sample.of(values(q["values"])))
            versions = (scenario.baseline.version, scenario.canary.version)
            note = "; ".join(
                f"no data for {window.version_tag}:{v}"
                for v, side in zip(versions, sides, strict=True)
                if side.n == 0
            )
            series = m.measure != "error_rate"
            data[m.label] = MetricData(sides[0], sides[1], series=series, note=note)
    bounds = {"from": start, "to": end, "interval_s": window.interval, "queries": sent}
    return data, bounds
