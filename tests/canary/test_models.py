"""The canary scenario through the one spec loader: the shipped file loads, mistakes name
file:line and say what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnidrill.canary.models import CanaryScenario, min_samples_floor, parse_tolerance
from omnidrill.load.runner import load_scenario
from omnidrill.profile import development_profile, template_variables
from omnidrill.spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
type: canary
name: c
load:
  users: 2
  duration: 10s
  tasks:
    - function: wallet-balance
      name: balance
metrics:
  - {function: balance, measure: p95, tolerance: 20%}
"""


def variables(broadcast: bool = True) -> dict:
    p = development_profile()
    p.trade.allow_broadcast = broadcast
    return template_variables(p, {})


@pytest.mark.parametrize("broadcast", [True, False])
def test_shipped_canary_loads(broadcast: bool) -> None:
    sc = load_scenario(ROOT / "scenarios" / "canary.yaml", variables(broadcast))
    assert isinstance(sc, CanaryScenario) and sc.source == "active"
    assert (sc.baseline.instances, sc.canary.instances) == ([0], [-1])
    functions = {m.function for m in sc.metrics}
    assert ("execute-trade" in functions) is broadcast
    assert sc.drills == ["chaos/kill-switch.yaml"]


def test_defaults(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("kind: scenario\n" + GOOD)
    sc = load_scenario(tmp_path / "c.yaml")
    assert (sc.confidence, sc.scores.pass_, sc.scores.marginal, sc.warmup) == (0.99, 95, 75, 2)
    assert sc.metrics[0].bound.relative == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        ("  - {function: balanse, measure: p95, tolerance: 20%}", 10, "'balanse' is not a task"),
        ("  - {function: balance, measure: p95, tolerance: 20}", 10, "needs a unit"),
        ("  - {function: balance, measure: error_rate, tolerance: 2ms}", 10, "percentage points"),
        ("  - {function: balance, measure: p96, tolerance: 5%}", 10, "unknown measure 'p96'"),
        ("  - {query: 'avg:x{$version}', worse: increase, tolerance: 1}", 10, "source: passive"),
        ("  - {function: balance, measure: p95, tolerence: 5%}", 10, "did you mean 'tolerance'"),
    ],
)
def test_a_bad_metric_names_its_line(tmp_path: Path, change: str, line: int, message: str) -> None:
    text = GOOD.replace("  - {function: balance, measure: p95, tolerance: 20%}", change)
    (tmp_path / "c.yaml").write_text("kind: scenario\n" + text)
    with pytest.raises(SpecError) as err:
        load_scenario(tmp_path / "c.yaml")
    problem = next((p for p in err.value.problems if message in p.message), None)
    assert problem is not None, [p.format() for p in err.value.problems]
    assert problem.line == line + 1, problem.format()


def test_passive_needs_versions_and_a_window(tmp_path: Path) -> None:
    text = """\
kind: scenario
type: canary
name: p
source: passive
baseline: {version: "1.4"}
canary: {version: "1.4"}
datadog: {window: 30m}
metrics:
  - {measure: p95, function: wallet_balance, tolerance: 20%}
"""
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(SpecError, match="must differ"):
        load_scenario(tmp_path / "p.yaml")
    text = text.replace('canary: {version: "1.4"}', 'canary: {version: "1.5"}')
    (tmp_path / "p.yaml").write_text(text.replace("datadog: {window: 30m}\n", ""))
    with pytest.raises(SpecError, match="needs 'datadog'"):
        load_scenario(tmp_path / "p.yaml")


def test_tolerances_and_sample_floors() -> None:
    assert parse_tolerance("5ms", "p95").absolute == 5
    assert parse_tolerance("0.2s", "p95").absolute == 200
    assert parse_tolerance("0.5%", "error_rate").absolute == pytest.approx(0.005)
    assert parse_tolerance(3, None).absolute == 3
    assert parse_tolerance("10%", None).relative == pytest.approx(0.1)
    with pytest.raises(ValueError, match="query's tolerance"):
        parse_tolerance("5ms", None)
    floors = [min_samples_floor(m, series=False) for m in ("p50", "p95", "p99", "error_rate")]
    assert floors == [20, 200, 1000, 100]
    assert min_samples_floor("p95", series=True) == 10


def test_dry_run_says_sides_metrics_and_drills() -> None:
    from types import SimpleNamespace

    from omnidrill.canary.runner import plan_text
    from omnidrill.profile import TargetProfile

    profile = TargetProfile.model_validate(
        {
            "name": "two",
            "base_url": "http://127.0.0.1:1",
            "instances": ["http://127.0.0.1:1", "http://127.0.0.1:2"],
            "keys": {"anon": {"value": "a"}, "service_role": {"value": "s"}},
            "controls": {"url": "http://127.0.0.1:3/rest/v1"},
        }
    )
    sc = load_scenario(ROOT / "scenarios" / "canary.yaml", variables(False))
    text = plan_text(Path("scenarios/canary.yaml"), sc, profile, SimpleNamespace(variables={}))
    assert "baseline: http://127.0.0.1:1 (profile two)" in text
    assert "canary: http://127.0.0.1:2 (profile two)" in text
    assert "wallet-balance p95: worse if it rises by more than 20 % (needs 200 a side)" in text
    assert "alpha 0.0014" in text and "then against the canary only: chaos/kill-switch.yaml" in text
