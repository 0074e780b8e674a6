"""The canary scenario (`type: canary` under scenarios/): baseline, canary, the load or the
Datadog window that measures both, and the metrics that judge the canary against the baseline.
"""

from __future__ import annotations

import contextvars
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ModelWrapValidatorHandler, field_validator, model_validator

from omnidrill.load.models import LoadShape, repeated
from omnidrill.spec.base import SpecModel
from omnidrill.spec.units import parse_duration

Measure = Literal["p50", "p75", "p90", "p95", "p99", "p99.9", "mean", "error_rate"]
Worse = Literal["increase", "decrease", "either"]
PERCENTILES: dict[str, float] = {
    "p50": 50.0,
    "p75": 75.0,
    "p90": 90.0,
    "p95": 95.0,
    "p99": 99.0,
    "p99.9": 99.9,
}
# A series from Datadog holds one value per interval: fewer than this many is no comparison.
MIN_SERIES_POINTS = 10
VERSION_PLACEHOLDER = "$version"
_TOLERANCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|ms|s|us)?\s*$")
_TIME_UNIT_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001}


@dataclass(frozen=True)
class _Surroundings:
    """What a metric is checked against: its scenario's source and task names."""

    source: str
    tasks: tuple[str, ...] | None  # None: the load is missing or not a list of tasks


# Set while a CanaryScenario validates, so that a metric's mistake is reported at its own line.
_SURROUNDINGS: contextvars.ContextVar[_Surroundings | None] = contextvars.ContextVar(
    "canary_surroundings", default=None
)


def _raw_task_labels(load: Any) -> tuple[str, ...] | None:
    tasks = load.get("tasks") if isinstance(load, dict) else None
    if not isinstance(tasks, list):
        return None
    return tuple(
        str(t.get("name") or t.get("function") or t.get("path") or "?")
        for t in tasks
        if isinstance(t, dict)
    )


def min_samples_floor(measure: str | None, *, series: bool) -> int:
    """The fewest samples per side a metric needs before it is judged at all.

    A percentile needs ten samples beyond it (p95: 200 requests), the U test twenty on a side
    (its normal approximation), an error rate a hundred requests; a series from Datadog ten
    intervals.
    """
    if measure == "error_rate":
        return 100
    if series:
        return MIN_SERIES_POINTS
    if measure in PERCENTILES:
        share_above = 1.0 - PERCENTILES[measure] / 100.0
        return max(20, math.ceil(10 / share_above - 1e-9))
    return 20


@dataclass(frozen=True)
class Tolerance:
    """How much worse the canary may be: a share of the baseline's value, or an absolute
    amount in the metric's unit (milliseconds for latencies, a fraction for error rates)."""

    relative: float | None = None
    absolute: float | None = None

    def describe(self, measure: str | None) -> str:
        if self.relative is not None:
            return f"{self.relative * 100:g} %"
        if measure == "error_rate":
            return f"{(self.absolute or 0) * 100:g} percentage points"
        unit = " ms" if measure in PERCENTILES or measure == "mean" else ""
        return f"{self.absolute:g}{unit}"


def parse_tolerance(value: str | float, measure: str | None) -> Tolerance:
    """`20%` (of the baseline), `5ms` / `0.2s` (latencies), `0.5%` for an error rate
    (percentage points), a plain number for a query (its own unit)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a tolerance like '20%' or '5ms', found {value!r}")
    if isinstance(value, int | float):
        if measure is not None and measure != "error_rate":
            raise ValueError(
                f"a {measure} tolerance needs a unit: '20%' of the baseline or '5ms', "
                f"found {value!r}"
            )
        if value < 0:
            raise ValueError(f"a tolerance is >= 0, found {value!r}")
        return Tolerance(absolute=float(value))
    m = _TOLERANCE.match(value)
    if not m:
        raise ValueError(f"expected a tolerance like '20%', '5ms' or a number, found {value!r}")
    number, unit = float(m.group(1)), m.group(2)
    if measure == "error_rate":
        if unit != "%":
            raise ValueError(
                f"an error-rate tolerance is in percentage points, like '0.5%', found {value!r}"
            )
        return Tolerance(absolute=number / 100.0)
    if unit == "%":
        return Tolerance(relative=number / 100.0)
    if unit is None:
        if measure is not None:
            raise ValueError(
                f"a {measure} tolerance needs a unit: '20%' of the baseline or '5ms', "
                f"found {value!r}"
            )
        return Tolerance(absolute=number)
    if measure is None:
        raise ValueError(
            f"a query's tolerance is '10%' of the baseline or a plain number in the query's "
            f"unit, found {value!r}"
        )
    return Tolerance(absolute=number * _TIME_UNIT_MS[unit])


class CanaryMetric(SpecModel):
    """One comparison: a measure of a function's requests, or (passive) any Datadog query."""

    name: str | None = Field(None, description="label in the report; default from the measure")
    measure: Measure | None = Field(
        None, description="p50 ... p99.9 or mean latency, or error_rate"
    )
    function: str = Field(
        "all",
        description="active: a task's name (or 'all'); passive: the value of the function tag",
    )
    query: str | None = Field(
        None,
        description="passive only: a Datadog metric query holding $version in its scope, "
        "e.g. avg:trace.http.request.duration{service:omnihub,$version}",
    )
    worse: Worse | None = Field(
        None, description="the direction that is worse (latency and error rate: increase)"
    )
    tolerance: str | float = Field(
        description="how much worse is tolerated: '20%' of the baseline, '5ms', "
        "for error_rate '0.5%' (percentage points)"
    )
    critical: bool = Field(False, description="worse on this metric fails the canary alone")
    weight: float = Field(1.0, gt=0, description="its share of the score")
    min_samples: int | None = Field(
        None, ge=1, description="samples per side needed to judge it (default: see README)"
    )

    @model_validator(mode="after")
    def _check(self) -> CanaryMetric:
        if (self.measure is None) == (self.query is None):
            raise ValueError("expected exactly one of 'measure' or 'query'")
        if self.query is not None:
            if VERSION_PLACEHOLDER not in self.query:
                raise ValueError(
                    f"query must hold {VERSION_PLACEHOLDER} in its scope (it becomes "
                    "version_tag:<each side's version>), found {self.query!r}"
                )
            if self.worse is None:
                raise ValueError("a query metric needs 'worse': increase, decrease or either")
            if self.function != "all":
                raise ValueError("'function' applies to a measure, not to a query")
        parse_tolerance(self.tolerance, self.measure)  # raises ValueError with the reason
        around = _SURROUNDINGS.get()
        if around is not None and around.source == "active":
            if self.query is not None:
                raise ValueError(
                    "a Datadog query needs source: passive; an active canary compares "
                    "p50 ... p99.9, mean or error_rate"
                )
            if around.tasks is not None and self.function not in ("all", *around.tasks):
                raise ValueError(
                    f"function {self.function!r} is not a task of the load: expected 'all' "
                    f"or one of {', '.join(around.tasks)}"
                )
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.query is not None:
            return self.query
        return f"{self.function} {self.measure}"

    @property
    def worse_direction(self) -> Worse:
        return self.worse or "increase"

    @property
    def rule(self) -> str:
        """When it counts as worse, in words."""
        moves = {"increase": "it rises", "decrease": "it falls", "either": "it moves"}
        return f"{moves[self.worse_direction]} by more than {self.bound.describe(self.measure)}"

    @property
    def bound(self) -> Tolerance:
        return parse_tolerance(self.tolerance, self.measure)

    def needed_samples(self, *, series: bool) -> int:
        return max(self.min_samples or 0, min_samples_floor(self.measure, series=series))


class Side(SpecModel):
    """Where one side runs (active) or which version it is (passive)."""

    instances: list[int] | None = Field(
        None,
        description="positions in the profile's instances list: 0 the first, -1 the last "
        "(default: every instance of the side's profile)",
    )
    profile: str | None = Field(
        None, description="another target profile (a path or a name); default: --target"
    )
    version: str | None = Field(None, description="passive: this side's value of the version tag")


class DatadogWindow(SpecModel):
    """Passive source: both versions' metrics from Datadog over one window."""

    window: float = Field(description="how far back from `end`, e.g. 30m")
    end: str | float = Field(
        "now", description="'now', epoch seconds or an ISO 8601 time (with its zone)"
    )
    interval: float = Field(60.0, description="one sample per side per interval (the rollup)")
    version_tag: str = Field("version", description="the tag that tells the versions apart")

    @field_validator("window", "interval", mode="before")
    @classmethod
    def _durations(cls, v: object) -> float:
        seconds = parse_duration(v)
        if seconds < 1:
            raise ValueError(f"expected a duration of at least 1s, found {v!r}")
        return seconds

    @field_validator("version_tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z][\w./-]*", v):
            raise ValueError(f"expected a Datadog tag name, found {v!r}")
        return v


class Scores(SpecModel):
    """The score (weighted share of metrics that pass, 0-100) that splits the verdicts."""

    pass_: float = Field(95.0, alias="pass", ge=0, le=100, description="at or above: pass")
    marginal: float = Field(75.0, ge=0, le=100, description="at or above: marginal; below: fail")

    @model_validator(mode="after")
    def _order(self) -> Scores:
        if self.marginal > self.pass_:
            raise ValueError(f"marginal ({self.marginal:g}) must not exceed pass ({self.pass_:g})")
        return self


class CanaryScenario(SpecModel):
    """A canary judged against its baseline, metric by metric, and against the contract."""

    type: Literal["canary"]
    name: str
    description: str = ""
    source: Literal["active", "passive"] = Field(
        "active",
        description="active: omnidrill sends the same load to both; passive: Datadog's metrics",
    )
    baseline: Side = Field(default_factory=lambda: Side(instances=[0]))
    canary: Side = Field(default_factory=lambda: Side(instances=[-1]))
    load: LoadShape | None = Field(
        None,
        description="active: the load every user sends to both sides in turn "
        "(a load scenario's fields without type, name and thresholds)",
    )
    warmup: float = Field(2.0, description="active: requests started earlier are not judged")
    datadog: DatadogWindow | None = Field(None, description="passive: where the metrics come from")
    metrics: list[CanaryMetric] = Field(min_length=1)
    confidence: float = Field(
        0.99,
        gt=0.5,
        lt=1,
        description="for the whole canary: each of the M metrics is tested at (1 - confidence)/M",
    )
    scores: Scores = Field(default_factory=Scores)
    drills: list[str] = Field(
        default_factory=list,
        description="drill files run against the canary only, after the comparison; "
        "one that fails fails the canary",
    )

    @field_validator("warmup", mode="before")
    @classmethod
    def _warmup(cls, v: object) -> float:
        return parse_duration(v)

    @model_validator(mode="wrap")
    @classmethod
    def _surroundings(cls, data: Any, handler: ModelWrapValidatorHandler[CanaryScenario]) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        source = str(data.get("source") or "active")
        token = _SURROUNDINGS.set(_Surroundings(source, _raw_task_labels(data.get("load"))))
        try:
            return handler(data)
        finally:
            _SURROUNDINGS.reset(token)

    @model_validator(mode="after")
    def _check(self) -> CanaryScenario:
        if self.source == "active":
            self._check_active()
        else:
            self._check_passive()
        dupes = repeated([m.label for m in self.metrics])
        if dupes:
            raise ValueError(f"metric names must be unique; give 'name:' to {', '.join(dupes)}")
        return self

    def _check_active(self) -> None:
        if self.load is None:
            raise ValueError("an active canary needs 'load' (what to send to both sides)")
        if self.datadog is not None:
            raise ValueError("'datadog' is for source: passive; an active canary measures itself")
        for side, name in ((self.baseline, "baseline"), (self.canary, "canary")):
            if side.version is not None:
                raise ValueError(f"{name}.version is for source: passive")

    def _check_passive(self) -> None:
        if self.datadog is None:
            raise ValueError("a passive canary needs 'datadog' (window, interval, version_tag)")
        if self.load is not None:
            raise ValueError("'load' is for source: active; a passive canary sends nothing")
        for side, name in ((self.baseline, "baseline"), (self.canary, "canary")):
            if side.version is None:
                raise ValueError(f"a passive canary needs {name}.version (its version tag value)")
        if self.baseline.version == self.canary.version:
            raise ValueError("baseline.version and canary.version must differ")

    @property
    def judged_on_series(self) -> bool:
        """Passive metrics are series of one value per interval, active ones every request."""
        return self.source == "passive"
