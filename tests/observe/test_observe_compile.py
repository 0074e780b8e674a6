"""The shipped YAML validates, renders and round-trips; bad YAML is refused with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.service_level_objective import ServiceLevelObjective

from omnidrill.observe.compile import compile_dashboards, compile_monitors, render
from omnidrill.observe.ddmodels import round_trip
from omnidrill.spec.errors import SpecError

from .conftest import ROOT

ENVS = ["staging", "production", "local"]


@pytest.mark.parametrize("env", ENVS)
def test_shipped_yaml_renders_and_round_trips(env: str, tmp_path: Path) -> None:
    monitors = compile_monitors(ROOT, env)
    dashboards = compile_dashboards(ROOT, env)
    assert len(monitors.monitors) >= 12 and len(monitors.slos) == 2
    assert {d.id for d in dashboards.dashboards} == {
        "omnihub-slos",
        "omnihub-emergency-controls",
        "omnihub-approval-queue",
        "omnihub-rpc-providers",
        "omnidrill-drills",
    }
    files = render(monitors, tmp_path) + render(dashboards, tmp_path)
    model_of = {"monitors": Monitor, "slos": ServiceLevelObjective, "dashboards": Dashboard}
    names = set()
    for f in files:
        text = f.read_text()
        model = round_trip(model_of[f.parent.name], text)
        assert not model._unparsed, f
        assert json.loads(text)  # plain JSON, usable as-is by datadog_*_json resources
        names.add(f"{f.parent.name}/{f.name}")
    assert "monitors/controls-failsafe.json" in names
    assert "dashboards/omnihub-slos.json" in names
    failsafe = json.loads((tmp_path / "monitors/controls-failsafe.json").read_text())
    assert "managed-by:omnidrill" in failsafe["tags"]
    assert "omnidrill-id:controls-failsafe" in failsafe["tags"]
    assert f"omnidrill-env:{env}" in failsafe["tags"]
    assert failsafe["options"]["thresholds"]["critical"] == 1


def test_environments_differ_in_thresholds_and_handles() -> None:
    st = {d.id: d.body for d in compile_monitors(ROOT, "staging").monitors}
    pr = {d.id: d.body for d in compile_monitors(ROOT, "production").monitors}
    assert st["agent-error-rate"]["options"]["thresholds"]["critical"] == 0.05
    assert pr["agent-error-rate"]["options"]["thresholds"]["critical"] == 0.02
    assert "@pagerduty-omnihub" in pr["controls-failsafe"]["message"]
    assert "@pagerduty" not in st["controls-failsafe"]["message"]


def _project_with(tmp_path: Path, body: str, name: str = "extra.yaml") -> Path:
    (tmp_path / "monitors" / "env").mkdir(parents=True)
    (tmp_path / "monitors" / "env" / "staging.yaml").write_text("scope: 'env:staging'\n")
    (tmp_path / "monitors" / name).write_text(body)
    return tmp_path


def _problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        compile_monitors(root, "staging")
    return [p.format() for p in info.value.problems]


GOOD = """\
monitors:
  - id: m1
    name: one
    type: query alert
    query: "avg(last_5m):avg:x{ {{- scope }}} > 2"
    options:
      thresholds: {critical: 2, warning: 1}
"""


def test_a_good_file_compiles(tmp_path: Path) -> None:
    c = compile_monitors(_project_with(tmp_path, GOOD), "staging")
    assert c.monitors[0].body["query"] == "avg(last_5m):avg:x{env:staging} > 2"


@pytest.mark.parametrize(
    ("edit", "line", "expected"),
    [
        (("critical: 2", "critical: 3"), 7, "Alert threshold (3) does not match"),
        (("critical: 2", 'critical: "high"'), 7, "Required value type is float"),
        (("type: query alert", "type: bogus alert"), 4, "'bogus alert' is not accepted"),
        (("warning: 1", "warning: 1, notfy: 3"), 7, "unknown field for MonitorThresholds"),
        (("    options:", "    optons:"), 6, "unknown field 'optons'"),
        (("name: one", "name: one\n    priority: 9"), 4, "less than or equal to 5"),
        (("warning: 1", "warning: 5"), 7, "warning threshold (5) must be below"),
    ],
)
def test_what_datadog_refuses_is_refused_with_file_and_line(
    tmp_path: Path, edit: tuple[str, str], line: int, expected: str
) -> None:
    root = _project_with(tmp_path, GOOD.replace(*edit))
    problems = _problems(root)
    assert any(expected in p for p in problems), problems
    assert any(f"extra.yaml:{line}" in p for p in problems if expected in p), problems


def test_unknown_widget_type_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "monitors" / "env").mkdir(parents=True)
    (tmp_path / "monitors" / "env" / "staging.yaml").write_text("{}\n")
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "d.yaml").write_text(
        "dashboards:\n  - id: d\n    title: t\n    widgets:\n"
        "      - definition: {type: note, content: hi}\n"
        "      - definition: {type: pie_in_the_sky, requests: []}\n"
    )
    with pytest.raises(SpecError) as info:
        compile_dashboards(tmp_path, "staging")
    text = str(info.value)
    assert "d.yaml:6" in text and "pie_in_the_sky" in text


def test_duplicate_ids_and_dangling_slo_reference(tmp_path: Path) -> None:
    body = (
        GOOD
        + GOOD.split("monitors:\n")[1]
        + (
            "  - id: burn\n    name: b\n    type: slo alert\n"
            "    burn_rate: {slo: nope, long_window: 1h, short_window: 5m, threshold: 14.4}\n"
        )
    )
    problems = _problems(_project_with(tmp_path, body))
    assert any("monitor id 'm1' is also defined" in p for p in problems)
    assert any("no SLO with id 'nope'" in p for p in problems)


def test_undefined_variable_names_the_file(tmp_path: Path) -> None:
    root = _project_with(tmp_path, GOOD.replace("{{- scope }}", "{{- nowhere }}"))
    problems = _problems(root)
    assert any("extra.yaml" in p and "nowhere" in p for p in problems), problems


def test_cli_validate_bad_yaml_exits_2(project: Path, run_cli) -> None:
    (project / "monitors" / "agent.yaml").write_text(
        (project / "monitors" / "agent.yaml").read_text().replace("type: query alert", "type: 7")
    )
    code, _out, err = run_cli("monitors", "validate", "--root", str(project))
    assert code == 2
    assert "agent.yaml:" in err and "type" in err


def test_cli_validate_and_render(project: Path, run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("monitors", "validate", "--root", str(project))
    assert code == 0 and "valid for staging" in out
    dest = tmp_path / "out"
    code, out, _ = run_cli("dashboards", "render", "--root", str(project), "--out", str(dest))
    assert code == 0
    assert (dest / "dashboards" / "omnihub-slos.json").is_file()
    code, _, err = run_cli("monitors", "validate", "--root", str(project), "--env", "qa")
    assert code == 2 and "no environment 'qa'" in err


def test_shared_validator_accepts_every_shipped_file_with_environment_variables() -> None:
    """What `omnidrill validate` needs to pass on monitors/, monitors/tests/ and dashboards/."""
    from omnidrill.observe.source import validation_variables
    from omnidrill.spec.loader import validate_paths

    files = [
        *sorted((ROOT / "monitors").glob("*.yaml")),
        *sorted((ROOT / "monitors" / "tests").glob("*.yaml")),
        *sorted((ROOT / "dashboards").glob("*.yaml")),
    ]
    for env in ENVS:
        loaded, problems = validate_paths(
            files, lambda _p, env=env: validation_variables(ROOT, {"env": env})
        )
        assert problems == [], [p.format() for p in problems]
        assert {s.kind for s in loaded} == {"monitor", "monitor_test", "dashboard"}


def test_cli_validate_checks_the_test_files_too(project: Path, run_cli) -> None:
    (project / "monitors" / "tests" / "bad.yaml").write_text(
        "tests:\n  - name: bad\n    input_series: [{series: 'x{a:b}', values: '1 one'}]\n"
        "    expect: [{monitor: dlq-not-empty, at: 5m, state: OK}]\n"
    )
    code, _, err = run_cli("monitors", "validate", "--root", str(project))
    assert code == 2 and "bad.yaml:3" in err and "value 'one'" in err


def test_tripped_by_must_name_a_drill_or_a_scenario(project: Path, run_cli) -> None:
    import shutil
    import subprocess
    import sys

    for folder in ("chaos", "scenarios"):
        shutil.copytree(ROOT / folder, project / folder)
    rpc = project / "monitors" / "rpc.yaml"
    text = rpc.read_text()
    assert "tripped_by: [rpc-primary-outage," in text
    rpc.write_text(
        text.replace("tripped_by: [rpc-primary-outage,", "tripped_by: [rpc-primary-down,")
    )
    code, _, err = run_cli("monitors", "validate", "--root", str(project), "--env", "local")
    assert code == 2
    assert (
        "monitors[0].tripped_by[0]: 'rpc-primary-down' names no drill (chaos/) or scenario "
        "(scenarios/)" in err
    )
    res = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "validate", "monitors/rpc.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert (
        res.stderr.startswith("monitors/rpc.yaml:")
        and "'rpc-primary-down' names no drill" in res.stderr
    )
    # a scenario is a valid name: ratelimit-429-spike names scenarios/rate-limit.yaml
    assert "rate-limit" in (project / "monitors" / "rpc.yaml").read_text()


def test_shipped_tripped_by_names_are_drills_or_scenarios() -> None:
    from omnidrill.observe.compile import drill_names

    known = drill_names(ROOT)
    assert known is not None
    for env in ENVS:
        for mon in compile_monitors(ROOT, env).monitor_specs().values():
            assert set(mon.tripped_by) <= known, (env, mon.id, mon.tripped_by)
