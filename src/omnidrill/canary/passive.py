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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from omnidrill.canary.judge import MetricData
from omnidrill.canary.models import PERCENTILES, CanaryMetric, CanaryScenario, DatadogWindow
from omnidrill.canary.stats import Sample
from omnidrill.errors import UsageError
from omnidrill.profile import TargetProfile

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


def _error_sample(errors: float, total: float) -> Sample:
    total_n = round(total)
    errors_n = min(round(errors), total_n)
    return Sample.from_counts({0.0: total_n - errors_n, 1.0: errors_n})


# One side of one metric: (metric, version) -> its samples.
SideReader = Callable[[CanaryMetric, str], Sample]


@contextmanager
def datadog_reader(
    window: DatadogWindow, start: int, end: int, sent: list[str], environ: Mapping[str, str] | None
) -> Iterator[SideReader]:
    """Samples from Datadog's query API, one query per metric and version (recorded in `sent`)."""
    from datadog_api_client.v1.api.metrics_api import MetricsApi

    from omnidrill.observe.ddclient import DatadogSettings, api_client, call, plain

    settings = DatadogSettings.from_env(environ)
    with api_client(settings) as client:
        api = MetricsApi(client)

        def values(query: str) -> list[float]:
            sent.append(query)
            resp = call(settings, f"querying {query}", api.query_metrics, start, end, query)
            return _values(plain(resp))

        def read(metric: CanaryMetric, version: str) -> Sample:
            q = queries_for(metric, window, version)
            if metric.measure == "error_rate":
                return _error_sample(sum(values(q["errors"])), sum(values(q["total"])))
            return Sample.of(values(q["values"]))

        yield read


@contextmanager
def intake_reader(
    url: str, window: DatadogWindow, start: int, end: int, sent: list[str]
) -> Iterator[SideReader]:
    """Samples from what the target sent to a local intake (`omnidrill intake`): the same
    measures as the queries above, computed from the points themselves (one percentile or mean
    of every value per interval; error counts summed). A `query:` metric needs live Datadog."""
    from omnidrill.observe.evaluate import percentile
    from omnidrill.observe.intake.client import IntakeClient

    client = IntakeClient(url)
    try:
        rows = [r for r in client.new_points() if start <= r.ts <= end]
    finally:
        client.close()
    sent.append(f"{url}: {len(rows)} points between {start} and {end}")
    interval = int(window.interval)

    def read(metric: CanaryMetric, version: str) -> Sample:
        if metric.query is not None:
            raise UsageError(
                f"metric {metric.label!r}: a query needs live Datadog; the profile's "
                "observe.intake keeps points, not queries (use a measure, or Datadog)"
            )
        wanted = {f"{window.version_tag}:{version}"}
        if metric.function != "all":
            wanted.add(f"function:{metric.function}")
        name = REQUESTS if metric.measure == "error_rate" else DURATION
        mine = [r for r in rows if r.metric == name and wanted <= set(r.tags)]
        if metric.measure == "error_rate":
            total = sum(float(r.value) for r in mine if isinstance(r.value, float))
            bad = [r for r in mine if "status:error" in r.tags and isinstance(r.value, float)]
            return _error_sample(sum(float(r.value) for r in bad), total)
        buckets: dict[int, list[float]] = {}
        for r in mine:
            vals = list(r.value) if isinstance(r.value, tuple) else [r.value]
            buckets.setdefault(int(r.ts) // interval, []).extend(vals)
        if metric.measure == "mean":
            return Sample.of(sum(v) / len(v) for v in buckets.values() if v)
        pct = PERCENTILES[metric.measure or "p50"]
        return Sample.of(percentile(v, pct) for v in buckets.values() if v)

    yield read


def run_passive(
    scenario: CanaryScenario,
    profile: TargetProfile | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, MetricData], dict[str, Any]]:
    """Both versions' samples per metric, from the profile's intake (`observe.intake`) when it
    has one, else from Datadog; and the window with what was asked."""
    window = scenario.datadog
    versions = (scenario.baseline.version, scenario.canary.version)
    assert window is not None and versions[0] and versions[1]
    start, end = window_bounds(window)
    sent: list[str] = []
    intake = profile.observe.intake if profile and profile.observe else None
    reader = (
        intake_reader(intake, window, start, end, sent)
        if intake
        else datadog_reader(window, start, end, sent, environ)
    )
    data: dict[str, MetricData] = {}
    with reader as read:
        for m in scenario.metrics:
            sides = [read(m, v) for v in versions]
            note = "; ".join(
                f"no data for {window.version_tag}:{v}"
                for v, side in zip(versions, sides, strict=True)
                if side.n == 0
            )
            data[m.label] = MetricData(*sides, series=m.measure != "error_rate", note=note)
    bounds = {
        "source": intake or "datadog",
        "from": start,
        "to": end,
        "from_utc": datetime.fromtimestamp(start, UTC).isoformat(),
        "to_utc": datetime.fromtimestamp(end, UTC).isoformat(),
        "interval_s": window.interval,
    }
    return data, {**bounds, "queries": sent}
