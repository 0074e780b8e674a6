"""`omnidrill monitors test`: the shipped tests pass; a wrong threshold fails with time and state;
the evaluator's semantics on small cases; queries outside the subset are not testable."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnidrill.observe.evaluate import (
    MetricEvaluator,
    MonitorModel,
    NotTestable,
    Series,
    expand_values,
    parse_metric_query,
)
from omnidrill.observe.models import MonitorSpec
from omnidrill.observe.monitor_tests import run_tests

from .conftest import ROOT


@pytest.mark.parametrize("env", ["staging", "production", "local"])
def test_every_shipped_monitor_is_tested_and_passes(env: str) -> None:
    report = run_tests(ROOT, env)
    assert report.failures == [] and report.blocked == []
    assert report.not_testable == {}
    assert report.untested == []
    assert report.checked >= 80


def test_cli_monitors_test_passes(run_cli) -> None:
    code, out, _ = run_cli("monitors", "test", "--root", str(ROOT))
    assert code == 0, out
    assert "0 failed" in out


def test_a_wrong_threshold_fails_naming_time_and_state(project: Path, run_cli) -> None:
    controls = project / "monitors" / "controls.yaml"
    # a fail-safe monitor that needs the gauge at 2 can never fire on a 0/1 gauge
    text = controls.read_text().replace('source:failsafe}) >= 1"', 'source:failsafe}) >= 2"')
    head, _, tail = text.rpartition("thresholds: {critical: 1}")  # the fail-safe's is last
    controls.write_text(head + "thresholds: {critical: 2}" + tail)
    code, out, _ = run_cli("monitors", "test", "--root", str(project))
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert fails, out
    assert any(
        "monitor controls-failsafe at 6m: expected Alert, found OK (value 1)" in line
        for line in fails
    ), fails


def test_series_notation() -> None:
    assert expand_values("0 0 1x3") == [0, 0, 1, 1, 1, 1]
    assert expand_values("1+2x2 _ 5-1x1 _x2") == [1, 3, 5, None, 5, 4, None, None]
    with pytest.raises(ValueError, match="expected a number"):
        expand_values("1 two")


def _series(metric: str, tags: str, values: str) -> Series:
    kv = dict(t.split(":", 1) for t in tags.split(",") if t)
    return Series(metric, kv, expand_values(values), 60)


def test_as_count_arithmetic_sums_each_side_before_dividing() -> None:
    q = parse_metric_query(
        "sum(last_5m):sum:req{status:error}.as_count() / sum:req{*}.as_count() > 0.5"
    )
    # per-minute ratios would average 0.55; the ratio of sums is 10 / 1010
    s = [
        _series("req", "status:error", "0 0 0 0 0 10"),
        _series("req", "status:ok", "0 200 200 200 200 200"),
        _series("req", "status:ok,x:y", "0 0 0 0 0 0"),
    ]
    ev = MetricEvaluator(q, s)
    assert ev.value((), 300) == pytest.approx(10 / 1010)


def test_without_as_count_the_ratio_is_per_timestamp_then_averaged() -> None:
    q = parse_metric_query("avg(last_2m):sum:a{*} / sum:b{*} > 1")
    ev = MetricEvaluator(q, [_series("a", "", "1 2 6"), _series("b", "", "1 1 2")])
    assert ev.value((), 120) == pytest.approx((2 / 1 + 6 / 2) / 2)


def test_groups_and_tag_filters() -> None:
    q = parse_metric_query("max(last_5m):max:g{env:a,!source:x} by {queue} > 0")
    s = [
        _series("g", "env:a,queue:q1", "0 0 2"),
        _series("g", "env:a,queue:q2", "0 0 0"),
        _series("g", "env:a,queue:q3,source:x", "9 9 9"),
        _series("g", "env:b,queue:q4", "9 9 9"),
    ]
    ev = MetricEvaluator(q, s)
    assert ev.groups() == {(("queue", "q1"),), (("queue", "q2"),)}
    assert ev.value((("queue", "q1"),), 120) == 2


def _spec(query: str, **options: object) -> MonitorSpec:
    return MonitorSpec(id="m", name="m", type="query alert", query=query, options=options)


def test_no_data_keeps_state_unless_notify_no_data() -> None:
    s = [_series("x", "", "5 5 5 _x10")]
    keep = MonitorModel(_spec("avg(last_2m):avg:x{*} > 1"), {}).run(s, [1, 180, 600], 60)
    assert [keep.overall(t) for t in (180, 600)] == ["Alert", "Alert"]
    nd = MonitorModel(
        _spec("avg(last_2m):avg:x{*} > 1", notify_no_data=True, no_data_timeframe=5), {}
    ).run(s, [180, 360, 600], 60)
    assert [nd.overall(t) for t in (180, 360, 600)] == ["Alert", "Alert", "No Data"]


def test_warning_and_comparators() -> None:
    s = [_series("x", "", "1 2 3 4 5")]
    m = MonitorModel(
        _spec("last(last_1m):avg:x{*} < 3", thresholds={"critical": 3, "warning": 4}), {}
    )
    ev = m.run(s, [0, 60, 120, 180], 60)
    assert [ev.overall(t) for t in (0, 60, 120, 180)] == ["Alert", "Alert", "Warn", "OK"]


@pytest.mark.parametrize(
    "query",
    [
        "avg(last_5m):anomalies(avg:x{*}, 'basic', 2) >= 1",
        "avg(last_5m):avg:x{*}.rollup(sum, 60) > 1",
        "avg(last_5m):avg:x{host:web*} > 1",
        "avg(last_5m):avg:x{*}.as_rate() > 1",
        "avg(last_5m):p95:x{*} > 1",
        "change(avg(last_5m),last_5m):avg:x{*} > 1",
    ],
)
def test_queries_outside_the_subset_are_not_testable(query: str) -> None:
    with pytest.raises(NotTestable):
        MonitorModel(_spec(query), {})


def test_options_that_change_evaluation_are_not_testable() -> None:
    with pytest.raises(NotTestable, match="critical_recovery"):
        MonitorModel(
            _spec(
                "avg(last_5m):avg:x{*} > 1", thresholds={"critical": 1, "critical_recovery": 0.5}
            ),
            {},
        )
    with pytest.raises(NotTestable, match="require_full_window"):
        MonitorModel(_spec("avg(last_5m):avg:x{*} > 1", require_full_window=True), {})


def test_an_untestable_monitor_blocks_its_tests(project: Path, run_cli) -> None:
    (project / "monitors" / "odd.yaml").write_text(
        "monitors:\n  - id: odd\n    name: odd\n    type: query alert\n"
        "    query: \"avg(last_5m):anomalies(avg:x{*}, 'basic', 2) >= 1\"\n"
    )
    (project / "monitors" / "tests" / "odd.yaml").write_text(
        "tests:\n  - name: odd\n    input_series: [{series: 'x{a:b}', values: '1x5'}]\n"
        "    expect: [{monitor: odd, at: 5m, state: OK}]\n"
    )
    code, out, _ = run_cli("monitors", "test", "--root", str(project))
    assert code == 1
    assert "NOT TESTABLE" in out and "monitor odd is not testable" in out


def test_a_test_naming_an_unknown_monitor_is_bad_input(project: Path, run_cli) -> None:
    (project / "monitors" / "tests" / "typo.yaml").write_text(
        "tests:\n  - name: typo\n    expect:\n      - {monitor: dlq-not-emtpy, at: 5m, state: OK}\n"
    )
    code, _, err = run_cli("monitors", "test", "--root", str(project))
    assert code == 2
    assert "typo.yaml:4" in err and "no monitor 'dlq-not-emtpy'" in err


def _burn_spec(slo_id: str) -> MonitorSpec:
    return MonitorSpec(
        id="burn",
        name="burn",
        type="slo alert",
        burn_rate={"slo": slo_id, "long_window": "1h", "short_window": "5m", "threshold": 5},
    )


def test_burn_rate_of_a_metric_slo_by_hand() -> None:
    from omnidrill.observe.evaluate import BurnRateEvaluator
    from omnidrill.observe.models import SLOSpec

    slo = SLOSpec(
        id="avail",
        name="a",
        type="metric",
        numerator="sum:req{status:ok}.as_count()",
        denominator="sum:req{*}.as_count()",
        thresholds=[{"timeframe": "30d", "target": 99}],
    )
    s = [_series("req", "status:ok", "100x60"), _series("req", "status:error", "0x55 10x4")]
    ev = BurnRateEvaluator(_burn_spec("avail"), slo, s)
    # long window (0, 60m]: 50 bad of 6050; short (55m, 60m]: 50 bad of 550; budget 1%
    assert ev._rate(3600, 3600) == pytest.approx((50 / 6050) / 0.01)
    assert ev._rate(3600, 300) == pytest.approx((50 / 550) / 0.01)
    assert ev.value((), 3600) == pytest.approx((50 / 6050) / 0.01)
    state = MonitorModel(_burn_spec("avail"), {"avail": slo}).run(s, [3600], 60)
    assert state.overall(3600) == "OK"  # 0.83x over the hour: the long window holds it back


def test_burn_rate_of_a_time_slice_slo_by_hand() -> None:
    from omnidrill.observe.evaluate import BurnRateEvaluator
    from omnidrill.observe.models import SLOSpec

    slo = SLOSpec(
        id="lat",
        name="l",
        type="time_slice",
        time_slice={"query": "p95:lat{*}", "comparator": "<=", "threshold": 500},
        thresholds=[{"timeframe": "30d", "target": 99}],
    )
    # minutes 51-55 are slow: the slice (50m, 55m] is bad, every other slice good
    s = [_series("lat", "", "100x50 900x4 100x5")]
    ev = BurnRateEvaluator(_burn_spec("lat"), slo, s)
    assert ev._rate(3600, 3600) == pytest.approx((1 / 12) / 0.01)
    assert ev._rate(3300, 300) == pytest.approx(1 / 0.01)
    assert ev._rate(3600, 300) == 0
    m = MonitorModel(_burn_spec("lat"), {"lat": slo})
    ev2 = m.run(s, [3300, 3600], 60)
    assert [ev2.overall(3300), ev2.overall(3600)] == ["Alert", "OK"]


@pytest.mark.parametrize("env", ["staging", "production", "local"])
def test_each_shipped_monitor_has_a_firing_and_a_quiet_case(env: str) -> None:
    from omnidrill.observe.compile import compile_monitors
    from omnidrill.observe.source import env_variables, files_of, load

    variables = env_variables(ROOT, env)
    states: dict[str, set[str]] = {m: set() for m in compile_monitors(ROOT, env).monitor_specs()}
    for path in files_of(ROOT, "monitor_test"):
        for case in load(path, "monitor_test", variables).model.tests:
            for exp in case.expect:
                states[exp.monitor].add(exp.state)
    lacking = {m: s for m, s in states.items() if not {"Alert", "OK"} <= s}
    assert lacking == {}


def test_a_series_without_the_group_tag_is_not_guessed(project: Path, run_cli) -> None:
    (project / "monitors" / "tests" / "untagged.yaml").write_text(
        "tests:\n  - name: untagged\n    input_series:\n"
        "      - {series: 'omnihub.dlq.depth{env:staging}', values: '3x10'}\n"
        "    expect: [{monitor: dlq-not-empty, at: 5m, state: Alert}]\n"
    )
    code, out, _ = run_cli("monitors", "test", "--root", str(project))
    assert code == 1
    assert "cannot be evaluated" in out and "['queue'] tag" in out


def test_as_count_with_another_time_aggregator_is_not_testable() -> None:
    with pytest.raises(NotTestable, match="as_count"):
        parse_metric_query("avg(last_5m):sum:x{*}.as_count() > 1")
