"""k6-style thresholds (`p95 < 300ms`, `error_rate < 1%`, `rps > 50`): parsing and judging.

A threshold is `<metric> <op> <value>[unit]`:

- `p50`, `p95`, `p99.9`, `p(95)`, `med`, `min`, `max`, `avg`: latency of the requests in
  scope, in `us`, `ms` (default) or `s`;
- `error_rate`: share of requests whose status was not expected (or that got no answer),
  as `%` or a fraction 0-1;
- `rps`: requests per second over the run; `requests`, `failures`: counts.

Percentiles are nearest-rank over latencies kept exactly to the microsecond.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["<", "<=", ">", ">="]
LATENCY_METRICS = ("min", "max", "avg", "med")
RATE_METRICS = ("error_rate",)
PLAIN_METRICS = ("rps", "requests", "failures")
KNOWN_METRICS = (
    "a percentile (p50, p95, p99.9, p(95): any N in 0-100), med, avg, min, max, "
    "error_rate, rps, requests, failures"
)

_EXPR = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*(?:\(\s*[0-9.]+\s*\))?|p[0-9]+(?:\.[0-9]+)?)\s*"
    r"(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(?P<unit>[A-Za-z%]*)\s*$"
)
_PCT = re.compile(r"^p(?:\((?P<a>[0-9.]+)\)|(?P<b>[0-9]+(?:\.[0-9]+)?))$")
_LATENCY_UNITS_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001}


class ThresholdError(ValueError):
    """A threshold that cannot be parsed; the message says what was expected."""


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold: `metric op limit`, the limit in the metric's base unit."""

    expr: str
    metric: str  # canonical: "p95", "p99.9", "avg", "error_rate", "rps", ...
    op: Op
    limit: float  # ms for latency metrics, a fraction for error_rate, plain otherwise
    percentile: float | None = None  # 95.0 for p95

    @property
    def unit(self) -> str:
        if self.percentile is not None or self.metric in LATENCY_METRICS:
            return "ms"
        if self.metric == "error_rate":
            return "%"
        return "/s" if self.metric == "rps" else ""

    def evaluate(
        self, data: Any, *, scope: str = "all", duration_s: float | None = None
    ) -> ThresholdResult:
        """Judge this threshold on stats: a `Slice` (`LoadStats.total()`, `.phase(name)`; its
        `scope` is "all" or a function) or an `Agg`. rps needs the slice's duration."""
        agg = data.scope(scope) if hasattr(data, "scope") else data
        if duration_s is None:
            duration_s = getattr(data, "duration_s", None)
        measured = measure(self, agg, duration_s)
        return ThresholdResult(scope, self, measured, measured is not None and self.holds(measured))

    def holds(self, measured: float) -> bool:
        return {
            "<": measured < self.limit,
            "<=": measured <= self.limit,
            ">": measured > self.limit,
            ">=": measured >= self.limit,
        }[self.op]


def parse_threshold(expr: str) -> Threshold:
    """Parse one threshold expression or raise ThresholdError saying what was expected."""
    if not isinstance(expr, str):
        raise ThresholdError(f"expected a threshold string like 'p95 < 300ms', found {expr!r}")
    m = _EXPR.match(expr)
    if not m:
        raise ThresholdError(
            f"malformed threshold {expr!r}: expected '<metric> <op> <value>[unit]' "
            "with op one of <, <=, >, >= (e.g. 'p95 < 300ms', 'error_rate < 1%', 'rps > 50')"
        )
    metric, op, num, unit = m["metric"], m["op"], float(m["num"]), m["unit"]
    pm = _PCT.match(metric)
    if pm:
        pct = float(pm["a"] or pm["b"])
        if not 0 < pct <= 100:
            raise ThresholdError(f"percentile in {expr!r} must be in (0, 100], found {pct:g}")
        return Threshold(expr, f"p{pct:g}", op, _latency_ms(expr, num, unit), pct)  # type: ignore[arg-type]
    if metric == "med":
        return Threshold(expr, "med", op, _latency_ms(expr, num, unit), 50.0)  # type: ignore[arg-type]
    if metric in LATENCY_METRICS:
        return Threshold(expr, metric, op, _latency_ms(expr, num, unit))  # type: ignore[arg-type]
    if metric == "error_rate":
        if unit == "%":
            limit = num / 100.0
        elif unit == "":
            if num > 1:
                raise ThresholdError(
                    f"error_rate in {expr!r} is a fraction 0-1 or a percentage; write '{num:g}%'"
                )
            limit = num
        else:
            raise ThresholdError(f"unit {unit!r} in {expr!r}: error_rate takes '%' or a fraction")
        return Threshold(expr, metric, op, limit)  # type: ignore[arg-type]
    if metric in PLAIN_METRICS:
        if unit:
            raise ThresholdError(f"unit {unit!r} in {expr!r}: {metric} takes a plain number")
        return Threshold(expr, metric, op, num)  # type: ignore[arg-type]
    raise ThresholdError(f"unknown metric {metric!r} in {expr!r}: expected one of {KNOWN_METRICS}")


def _latency_ms(expr: str, num: float, unit: str) -> float:
    if unit not in _LATENCY_UNITS_MS:
        raise ThresholdError(f"unit {unit!r} in {expr!r}: latency takes us, ms (default) or s")
    return num * _LATENCY_UNITS_MS[unit]


@dataclass(frozen=True)
class ThresholdResult:
    """A judged threshold: what was measured, whether it held and by how much it missed."""

    scope: str  # "all" or a task name
    threshold: Threshold
    measured: float | None  # None: no request in scope, so nothing to judge
    passed: bool

    @property
    def miss(self) -> float | None:
        """How far the measured value is on the wrong side of the limit (0 when it held)."""
        if self.measured is None or self.passed:
            return None if self.measured is None else 0.0
        return abs(self.measured - self.threshold.limit)

    def describe(self) -> str:
        t = self.threshold
        where = "" if self.scope == "all" else f"[{self.scope}] "
        if self.measured is None:
            why = "no duration to divide by" if t.metric == "rps" else "no request in scope"
            return f"{where}{t.expr}: FAILED, nothing to measure ({why})"
        shown = _show(t, self.measured)
        if self.passed:
            return f"{where}{t.expr}: ok (measured {shown})"
        miss = self.miss or 0.0
        rel = f", {miss / t.limit * 100:.1f}% of the limit" if t.limit else ""
        side = "over" if t.op in ("<", "<=") else "under"
        return f"{where}{t.expr}: FAILED, measured {shown}, {_show(t, miss)} {side}{rel}"

    def to_json(self) -> dict[str, object]:
        t = self.threshold
        return {
            "scope": self.scope,
            "threshold": t.expr,
            "metric": t.metric,
            "op": t.op,
            "limit": t.limit,
            "unit": t.unit,
            "measured": self.measured,
            "passed": self.passed,
            "miss": self.miss,
            "message": self.describe(),
        }


def _show(t: Threshold, v: float) -> str:
    if t.unit == "ms":
        return f"{v:.3f} ms"
    if t.unit == "%":
        return f"{v * 100:.3f}%"
    if t.metric == "rps":
        return f"{v:.2f}/s"
    return f"{v:g}" if not math.isnan(v) else "nan"


def measure(t: Threshold, agg: Any, duration_s: float | None) -> float | None:
    """The value of t's metric over an Agg; None when there is nothing to measure."""
    if t.metric == "requests":
        return float(agg.requests)
    if t.metric == "failures":
        return float(agg.failures)
    if agg.requests == 0:
        return None
    if t.percentile is not None:
        return agg.percentile_ms(t.percentile)  # type: ignore[no-any-return]
    if t.metric in ("min", "max", "avg"):
        return agg.latency_ms(t.metric)  # type: ignore[no-any-return]
    if t.metric == "error_rate":
        return agg.error_rate  # type: ignore[no-any-return]
    if t.metric == "rps":
        return agg.requests / duration_s if duration_s else None
    raise ValueError(f"unknown metric {t.metric!r}")
