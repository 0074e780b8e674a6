"""Typed shapes of the monitor, dashboard and monitor-test YAML kinds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from omnidrill.spec.base import SpecModel

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
WINDOW_PATTERN = r"^[1-9][0-9]*[mhd]$"


class BurnRate(SpecModel):
    """A Datadog SLO burn-rate alert on an SLO defined in YAML (referenced by its YAML id)."""

    slo: str = Field(pattern=ID_PATTERN, description="id of an SLO in the `slos` list")
    over: Literal["7d", "30d", "90d"] = "30d"
    long_window: str = Field(pattern=WINDOW_PATTERN, description="e.g. 1h")
    short_window: str = Field(pattern=WINDOW_PATTERN, description="e.g. 5m")
    threshold: float = Field(gt=0, description="burn rate that alerts, e.g. 14.4")


class MonitorSpec(SpecModel):
    """One Datadog monitor; `options` is Datadog's own `MonitorOptions` JSON."""

    id: str = Field(pattern=ID_PATTERN, description="stable id: file name and tag")
    name: str = Field(min_length=1)
    type: str = Field(description="Datadog monitor type, e.g. 'query alert'")
    query: str | None = None
    burn_rate: BurnRate | None = None
    message: str = ""
    tags: list[str] = Field(default_factory=list)
    priority: int | None = Field(default=None, ge=1, le=5)
    options: dict[str, Any] = Field(default_factory=dict)
    tripped_by: list[str] = Field(
        default_factory=list, description="drills expected to trip it (muted during them)"
    )

    @model_validator(mode="after")
    def _query_or_burn_rate(self) -> MonitorSpec:
        if (self.query is None) == (self.burn_rate is None):
            raise ValueError("give exactly one of `query` or `burn_rate`")
        if self.burn_rate is not None and self.type != "slo alert":
            raise ValueError("a `burn_rate` monitor must have type 'slo alert'")
        return self


class SLOThresholdSpec(SpecModel):
    timeframe: Literal["7d", "30d", "90d"]
    target: float = Field(gt=0, lt=100)
    warning: float | None = Field(default=None, gt=0, lt=100)


class TimeSliceSpec(SpecModel):
    """A time-slice SLI: a slice is good when `query` `comparator` `threshold` holds."""

    query: str = Field(min_length=1, description="metric query, e.g. p95:omnihub.agent.duration{*}")
    comparator: Literal[">", ">=", "<", "<="]
    threshold: float
    query_interval_seconds: Literal[60, 300] = 300


class SLOSpec(SpecModel):
    """One Datadog service level objective, metric-based or time-slice."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    description: str = ""
    type: Literal["metric", "time_slice"]
    numerator: str | None = Field(default=None, description="good events (metric type)")
    denominator: str | None = Field(default=None, description="total events (metric type)")
    time_slice: TimeSliceSpec | None = None
    thresholds: list[SLOThresholdSpec] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape_matches_type(self) -> SLOSpec:
        if self.type == "metric" and not (self.numerator and self.denominator):
            raise ValueError("a metric SLO needs `numerator` and `denominator`")
        if self.type == "metric" and self.time_slice is not None:
            raise ValueError("a metric SLO takes no `time_slice`")
        if self.type == "time_slice" and (self.time_slice is None or self.numerator):
            raise ValueError("a time_slice SLO needs `time_slice` and no numerator/denominator")
        return self


class MonitorFile(SpecModel):
    """A file in monitors/: monitors and SLOs."""

    monitors: list[MonitorSpec] = Field(default_factory=list)
    slos: list[SLOSpec] = Field(default_factory=list)


class DashboardSpec(SpecModel):
    """One Datadog dashboard; `widgets` and `template_variables` are Datadog's own JSON."""

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    description: str = ""
    layout_type: str = "ordered"
    reflow_type: str | None = None
    widgets: list[dict[str, Any]] = Field(min_length=1)
    template_variables: list[dict[str, Any]] = Field(default_factory=list)
    notify_list: list[str] = Field(default_factory=list)


class DashboardFile(SpecModel):
    """A file in dashboards/."""

    dashboards: list[DashboardSpec] = Field(min_length=1)


class InputSeries(SpecModel):
    """One input series: `metric{tag:v,...}` and its values in compact notation."""

    series: str = Field(min_length=1)
    values: str = Field(description="e.g. '0 0 1x10 _x3 1+2x4'")


class Expectation(SpecModel):
    """The state a monitor (or one group of it) must be in at a time."""

    monitor: str = Field(pattern=ID_PATTERN)
    at: str = Field(pattern=r"^[0-9]+[smh]$", description="evaluation time, e.g. 10m")
    state: Literal["OK", "Warn", "Alert", "No Data"]
    group: str | None = Field(default=None, description="e.g. 'function:execute_trade'")


class MonitorTestCase(SpecModel):
    name: str = Field(min_length=1)
    interval: str = Field(default="1m", pattern=r"^[0-9]+[smh]$")
    input_series: list[InputSeries] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)


class MonitorTestFile(SpecModel):
    """A file in monitors/tests/: unit tests of monitors, as `promtool test rules` has them."""

    tests: list[MonitorTestCase] = Field(min_length=1)

    @field_validator("tests")
    @classmethod
    def _unique_names(cls, v: list[MonitorTestCase]) -> list[MonitorTestCase]:
        names = [t.name for t in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"test names must be unique, repeated: {sorted(dup)}")
        return v
