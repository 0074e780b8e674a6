"""The fake Datadog's metrics: points as the SDKs submit them, and `GET /api/v1/query` over them.

Stored as submitted: v2 series (`/api/v2/series`: gauge, count, rate points) and v1
distribution points (`/api/v1/distribution_points`: [ts, [values]]). Queried in the subset a
canary uses, with Datadog's meaning:

    AGG:metric{k:v,!k:v,*}[.as_count()][.rollup([AGG,] SECONDS)]

- AGG `avg` `sum` `min` `max` over gauge/count points, or `pNN` (`p50` ... `p99.9`) over the
  values of distribution points: the percentile of every value in the interval (a
  distribution's percentiles are global over the values, not an average of averages);
- the interval is the rollup's, else Datadog's default for the span (20 s up to an hour,
  60 s up to four hours, 300 s up to a day, 3600 s beyond);
- one series per query (no `by`): every matching series pooled; intervals without a point
  are left out; a query that matches nothing answers no series.
Anything else is answered 400 with Datadog's "Error parsing query", never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from omnidrill.observe.evaluate import percentile

_QUERY = re.compile(
    r"^(?P<agg>avg|sum|min|max|p\d{1,2}(?:\.\d{1,2})?):(?P<metric>[A-Za-z_][\w.]*)"
    r"\{(?P<scope>[^}]*)\}(?P<mods>(?:\.as_count\(\)|\.rollup\([^)]*\))*)$"
)
_ROLLUP = re.compile(r"\.rollup\(\s*(?:(avg|sum|min|max|count)\s*,\s*)?(\d+)?\s*\)")


class QueryError(ValueError):
    """A query outside the subset: answered 400, as Datadog answers what it cannot parse."""


@dataclass
class Point:
    metric: str
    tags: dict[str, str]
    ts: int
    values: list[float]  # one for a gauge or a count, every value for a distribution
    distribution: bool


def _tags(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in items or []:
        k, _, v = str(t).partition(":")
        out[k] = v
    return out


@dataclass
class MetricStore:
    """Every point submitted to the fake, and queries over them."""

    points: list[Point] = field(default_factory=list)

    def add_v2_series(self, series: list[dict[str, Any]]) -> None:
        for s in series:
            tags = _tags(s.get("tags"))
            for pt in s.get("points") or []:
                self.points.append(
                    Point(s["metric"], tags, int(pt["timestamp"]), [float(pt["value"])], False)
                )

    def add_distributions(self, series: list[dict[str, Any]]) -> None:
        for s in series:
            tags = _tags(s.get("tags"))
            for ts, values in s.get("points") or []:
                self.points.append(
                    Point(s["metric"], tags, int(ts), [float(v) for v in values], True)
                )

    def query(self, query: str, start: int, end: int) -> dict[str, Any]:
        """The body of `GET /api/v1/query?from=&to=&query=` (seconds; points in ms)."""
        m = _QUERY.match(query.replace(" ", ""))
        if not m:
            raise QueryError(f"Error parsing query: {query!r} is outside the fake's subset")
        agg, metric, scope, mods = m.group("agg", "metric", "scope", "mods")
        include, exclude = [], []
        for f in filter(None, scope.split(",")):
            if f == "*":
                continue
            neg = f.startswith("!")
            k, sep, v = f.lstrip("!").partition(":")
            if not sep:
                raise QueryError(f"Error parsing query: tag filter {f!r} needs key:value")
            (exclude if neg else include).append((k, v))
        rollups = _ROLLUP.findall(mods)
        interval = int(rollups[-1][1]) if rollups and rollups[-1][1] else _default(end - start)
        chosen = [
            p
            for p in self.points
            if p.metric == metric
            and start <= p.ts <= end
            and all(p.tags.get(k) == v for k, v in include)
            and not any(p.tags.get(k) == v for k, v in exclude)
        ]
        if agg.startswith("p") and not all(p.distribution for p in chosen):
            raise QueryError(f"Error parsing query: {agg} needs a distribution metric")
        buckets: dict[int, list[float]] = {}
        for p in chosen:
            buckets.setdefault(p.ts // interval * interval, []).extend(p.values)
        pointlist = [[t * 1000.0, _aggregate(agg, buckets[t])] for t in sorted(buckets)]
        series = []
        if pointlist:
            series.append(
                {
                    "metric": metric,
                    "display_name": metric,
                    "expression": query,
                    "scope": ",".join(f"{k}:{v}" for k, v in include) or "*",
                    "tag_set": [],
                    "aggr": None if agg.startswith("p") else agg,
                    "interval": interval,
                    "length": len(pointlist),
                    "start": int(pointlist[0][0]),
                    "end": int(pointlist[-1][0]) + interval * 1000 - 1,
                    "pointlist": pointlist,
                    "query_index": 0,
                }
            )
        return {
            "status": "ok",
            "res_type": "time_series",
            "query": query,
            "from_date": start * 1000,
            "to_date": end * 1000,
            "group_by": [],
            "series": series,
            "message": "",
        }


def _default(span_s: int) -> int:
    for limit, step in ((3600, 20), (4 * 3600, 60), (86400, 300)):
        if span_s <= limit:
            return step
    return 3600


def _aggregate(agg: str, values: list[float]) -> float:
    simple = {"sum": sum, "min": min, "max": max, "avg": lambda v: sum(v) / len(v)}
    if agg in simple:
        return float(simple[agg](values))
    return percentile(values, float(agg[1:]))  # interpolated, as the monitors' evaluator does
