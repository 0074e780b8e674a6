"""CONTRACT O1 and O2 against the reference stack as `omnidrill up` runs it, sending its
telemetry to the intake it starts: the monitors that name a drill alert and resolve, with time
to detect and time to resolve; `up --no-metrics` (the target sends nothing), or a monitor
watching a metric nobody sends, fails O1 as `undetected` while every other clause keeps its
verdict; without `observe:` both are skipped and nothing else changes; unexpected alerts are
noise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from chaos.drillkit import Stack, declared, run_drills, start_stack, unobserved
from chaos.observekit import o1_steps, project_copy

pytestmark = pytest.mark.serial  # live stacks, timing bounds


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`up`'s default: metrics and errors go to its intake; the profile says so."""
    with start_stack(tmp_path_factory.mktemp("observed"), "--instances", "2") as stack:
        assert stack.profile["observe"]["intake"].startswith("http://")
        yield stack


@pytest.fixture(scope="module")
def silent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`up --no-metrics`: the target sends nothing (no metrics, no Sentry); the profile still
    says where to look. Shorter O1 bounds: nothing will come, so every wait runs to its end."""
    with start_stack(tmp_path_factory.mktemp("silent"), "--no-metrics") as stack:
        yield declared(stack, {"limits": {"detect_timeout_s": 3, "resolve_timeout_s": 3}})


def test_kill_switch_is_detected_and_resolves(observed: Stack, tmp_path: Path) -> None:
    result = run_drills(observed, "kill-switch", report=tmp_path / "r")
    drill = result.drill("kill-switch")
    assert result.code == 0, result.output
    assert drill["clauses"]["O1"] == "passed"
    det = drill["detection"]
    assert det["source"] == "intake" and det["env"] == "local"
    assert {"kill-switch-on", "agent-error-rate"} <= set(det["expected"])
    assert det["windows"]["kill-switch-on"].startswith("last 2s")
    assert "the monitor's is last 5m" in det["windows"]["kill-switch-on"]
    checks = o1_steps(drill)
    assert set(checks) == set(det["expected"])
    for mid, step in checks.items():
        m = step["measurements"]
        assert step["verdict"] == "passed", (mid, step["evidence"])
        assert 0 <= m["time_to_detect_s"] <= 15 and 0 <= m["time_to_resolve_s"] <= 15
        assert m["resolution_s"] == 0.2
        # measured from the fault's first action and from the end of the rollbacks
        assert m["fault_ts"] in det["fault_actions_ts"]
        assert m["alerted_ts"] == pytest.approx(m["fault_ts"] + m["time_to_detect_s"])
    quiet = next(s for s in drill["steps"] if s["kind"] == "monitors.quiet")
    assert quiet["phase"] == "steady_state_before" and quiet["verdict"] == "passed"
    assert drill["measurements"]["time_to_detect_s"] == min(
        s["measurements"]["time_to_detect_s"] for s in checks.values()
    )
    assert det["noise"] == []
    assert "kill-switch: 4/4 alerted" in result.output or "alerted:" in result.output


def test_errors_of_the_target_reach_sentry_with_their_trace_id(
    observed: Stack, tmp_path: Path
) -> None:
    result = run_drills(observed, "rpc-both-down", report=tmp_path / "r")
    drill = result.drill("rpc-both-down")
    assert result.code == 0, result.output
    assert drill["clauses"]["O2"] == "passed" and drill["clauses"]["O1"] == "passed"
    o2 = next(s for s in drill["steps"] if s["clause"] == "O2")
    assert o2["measurements"]["answers"] == o2["measurements"]["reported"] > 0
    assert "RPC_UNAVAILABLE" in o2["name"]


def test_a_target_that_sends_nothing_fails_o1_as_undetected(silent: Stack, tmp_path: Path) -> None:
    drills = ["kill-switch", "controls-outage", "rpc-primary-outage", "rpc-both-down"]
    result = run_drills(silent, *drills, report=tmp_path / "r")
    assert result.code == 1
    for name in drills:
        drill = result.drill(name)
        assert drill["verdict"] == "failed", name
        assert drill["clauses"]["O1"] == "failed"
        others = {c: v for c, v in drill["clauses"].items() if c not in ("O1", "O2")}
        assert set(others.values()) == {"passed"}, (name, others)
        expected = drill["detection"]["expected"]
        assert expected and set(o1_steps(drill)) == set(expected), name
        # the closing lines name every monitor that stayed silent
        shown = f"{name}: 0/{len(expected)} alerted: " + ", ".join(
            f"{mid} undetected" for mid in expected
        )
        assert shown in result.output, result.output[-2000:]
        for mid, step in o1_steps(drill).items():
            assert step["verdict"] == "failed"
            assert step["detail"]["outcome"] == "undetected"
            assert step["evidence"][0].startswith(f"undetected: monitor {mid} (")
            # the evidence says what reached the intake: nothing
            assert any("nothing under that metric name" in e for e in step["evidence"])
        assert drill["reason"] == "1 check(s) failed (clauses O1)" or "O1" in drill["reason"]
    o2 = next(s for s in result.drill("rpc-both-down")["steps"] if s["clause"] == "O2")
    assert o2["verdict"] == "failed"
    assert "no Sentry event tagged with it" in o2["evidence"][0]


def _with_controls_edited(tmp: Path, old: str, new: str) -> Path:
    """A copy of the project whose monitors/controls.yaml has `old` replaced by `new`."""
    project = project_copy(tmp)
    controls = project / "monitors" / "controls.yaml"
    text = controls.read_text()
    assert old in text
    controls.write_text(text.replace(old, new))
    return project / "chaos"


def test_a_monitor_watching_a_metric_never_sent_is_undetected(
    observed: Stack, tmp_path: Path
) -> None:
    chaos = _with_controls_edited(
        tmp_path, "omnihub.emergency.{{ control }}{", "omnihub.control.{{ control }}{"
    )
    result = run_drills(observed, "kill-switch", report=tmp_path / "r", chaos=chaos)
    drill = result.drill("kill-switch")
    assert result.code == 1
    checks = o1_steps(drill)
    bad = checks["kill-switch-on"]
    assert bad["verdict"] == "failed" and bad["detail"]["outcome"] == "undetected"
    assert any(
        "omnihub.control.kill_switch{service:omnihub-local,source:table}: no such series" in e
        and "nothing under that metric name at all" in e
        for e in bad["evidence"]
    ), bad["evidence"]
    assert checks["agent-error-rate"]["verdict"] == "passed"
    assert {c: v for c, v in drill["clauses"].items() if c != "O1"} == {
        "C2": "passed",
        "C5": "passed",
        "C6": "passed",
        "C7": "passed",
    }


def test_without_observe_o1_and_o2_are_skipped_and_nothing_else_changes(
    observed: Stack, tmp_path: Path
) -> None:
    stack = unobserved(observed)
    result = run_drills(stack, "kill-switch", "rpc-both-down", report=tmp_path / "r")
    strict = run_drills(stack, "kill-switch", "rpc-both-down", report=tmp_path / "s", strict=True)
    assert result.code == 0, result.output
    assert strict.code == 0, "a target without telemetry passes, --strict or not"
    for name in ("kill-switch", "rpc-both-down"):
        drill = result.drill(name)
        assert drill["verdict"] == "passed"
        assert drill["clauses"]["O1"] == "skipped"
        assert drill["skipped_checks"] == []
        (step,) = [s for s in drill["steps"] if s["clause"] == "O1"]
        assert "O1 not checked: the profile has no `observe:` section" in step["evidence"][0]
        assert drill["detection"]["skipped"]
    assert result.drill("rpc-both-down")["clauses"]["O2"] == "skipped"


def test_an_alert_nobody_expected_is_noise(observed: Stack, tmp_path: Path) -> None:
    chaos = _with_controls_edited(
        tmp_path, 'tripped_by: [{{ control | replace("_", "-") }}]', "tripped_by: []"
    )
    result = run_drills(observed, "kill-switch", report=tmp_path / "r", chaos=chaos)
    drill = result.drill("kill-switch")
    assert result.code == 0, result.output
    assert drill["detection"]["noise"] == ["kill-switch-on"]
    assert "noise: monitor kill-switch-on alerted during the drill" in result.output
    strict = run_drills(observed, "kill-switch", report=tmp_path / "s", chaos=chaos, strict=True)
    assert strict.code == 1, "noise fails the run under --strict"


def test_dry_run_lists_the_monitors_each_drill_expects(
    observed: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from chaos.drillkit import CHAOS
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.cliutil import load_profile

    profile = load_profile(str(observed.profile_path))
    opts = RunOptions(target=str(observed.profile_path), dry_run=True)
    assert run([CHAOS / "kill-switch.yaml"], profile, opts) == 0
    out = capsys.readouterr().out
    assert "monitors that must alert (O1, tripped_by): agent-error-rate, kill-switch-on" in out
    assert "evaluated at the intake" in out and "drill window" in out


def test_profile_observe_must_name_one_source(tmp_path: Path) -> None:
    from omnidrill.profile import TargetProfile

    base = yaml.safe_load(
        "name: x\nbase_url: http://127.0.0.1:1\nkeys: {anon: {value: a}, service_role: "
        "{value: b}}\ncontrols: {url: http://127.0.0.1:1/rest/v1}\n"
    )
    with pytest.raises(ValueError, match="exactly one of `intake: URL` or `datadog: true`"):
        TargetProfile.model_validate({**base, "observe": {"intake": "http://x", "datadog": True}})
    with pytest.raises(ValueError, match="intake must be an http"):
        TargetProfile.model_validate({**base, "observe": {"intake": "127.0.0.1:8125"}})
    ok = TargetProfile.model_validate({**base, "observe": {"datadog": True}})
    assert ok.observe is not None and ok.observe.source == "datadog"


def test_reports_show_time_to_detect_and_resolve(observed: Stack, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    report = tmp_path / "r"
    result = run_drills(observed, "kill-switch", report=report)
    assert result.code == 0, result.output
    checks = o1_steps(result.drill("kill-switch"))
    html = (report / "report.html").read_text()
    assert 'class="detection"' in html
    for mid in checks:
        assert f'data-monitor="{mid}"' in html
        assert f"monitor {mid} alerts" in html, "the alert is a numbered mark on the timeline"
    assert "mean time to detect" in html
    summary = (report / "summary.md").read_text()
    assert "| time to detect | time to resolve |" in summary
    assert "- kill-switch: 4/4: `" in summary
    cases = ET.parse(report / "junit.xml").getroot().iter("testcase")
    o1 = [c for c in cases if "monitor" in c.get("name", "") and "alerts within" in c.get("name")]
    assert {c.get("name").split("monitor ", 1)[1].split(" ")[0] for c in o1} == set(checks)
    assert all(c.find("failure") is None for c in o1)


def test_the_datadog_drill_event_carries_the_detection(
    observed: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from observe.fake_datadog import FakeDatadog

    fake = FakeDatadog().start()
    try:
        for k, v in fake.sdk_env().items():
            monkeypatch.setenv(k, v)
        result = run_drills(observed, "kill-switch", report=tmp_path / "r")
    finally:
        fake.stop()
    assert result.code == 0, result.output
    (event,) = fake.events
    assert "- monitor kill-switch-on: alerted after " in event["text"]
    assert "s after the rollbacks" in event["text"]
    sent = {s["metric"] for s in fake.series}
    assert {"omnidrill.drill.time_to_detect", "omnidrill.drill.time_to_resolve"} <= sent


def _datadog_stand_in(fake, controls_url: str, key: str, ids: list[str], stop) -> None:
    """Datadog's own evaluation, stood in for: the deployed monitors alert while the kill
    switch is on, as the real ones would once its gauge arrives."""
    import httpx

    headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    while not stop.wait(0.1):
        try:
            row = httpx.get(
                f"{controls_url}/emergency_controls?select=*", headers=headers, timeout=2
            ).json()[0]
        except (httpx.HTTPError, ValueError, IndexError, KeyError):
            continue
        state = "Alert" if row["omnihub_kill_switch"] else "OK"
        for mon in fake.monitors.values():
            if any(f"omnidrill-id:{i}" in mon["tags"] for i in ids):
                mon["overall_state"] = state


def test_live_datadog_states_by_managed_id(
    observed: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from chaos.drillkit import ROOT
    from observe.fake_datadog import FakeDatadog
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.cliutil import load_profile
    from omnidrill.errors import UsageError
    from omnidrill.observe.cli import _apply

    fake = FakeDatadog().start()
    stop = threading.Event()
    try:
        for k, v in fake.sdk_env().items():
            monkeypatch.setenv(k, v)
        _apply("monitors", ROOT, "staging", None, None)  # as `omnidrill monitors apply` does
        profile = {
            **observed.profile,
            "observe": {"datadog": True, "env": "staging", "poll_s": 0.2},
        }
        path = tmp_path / "live.yaml"
        path.write_text(yaml.safe_dump(profile), encoding="utf-8")
        live = Stack(path, profile, observed.tmp)
        key = profile["keys"]["service_role"]["value"]
        expected = ["agent-error-rate", "kill-switch-on"]  # staging: no SLO burn in a drill
        for mon in fake.monitors.values():
            mon["overall_state"] = "OK"
        watcher = threading.Thread(
            target=_datadog_stand_in,
            args=(fake, profile["controls"]["url"], key, expected, stop),
            daemon=True,
        )
        watcher.start()
        result = run_drills(live, "kill-switch", report=tmp_path / "r")
        assert result.code == 0, result.output
        drill = result.drill("kill-switch")
        assert drill["detection"]["source"] == "datadog"
        checks = o1_steps(drill)
        assert set(checks) == set(expected)
        for step in checks.values():
            assert step["verdict"] == "passed", step["evidence"]
            assert step["measurements"]["time_to_detect_s"] >= 0
            assert step["measurements"]["time_to_resolve_s"] >= 0
        reads = [p for m, p, _ in fake.requests if m == "GET" and p == "/api/v1/monitor"]
        assert len(reads) > 5, "states are polled from the monitors apply manages"
        # a monitor the drill expects but Datadog does not have is an error, not a pass
        gone = next(m for m in fake.monitors.values() if "omnidrill-id:kill-switch-on" in m["tags"])
        del fake.monitors[gone["id"]]
        with pytest.raises(UsageError, match=r"\['kill-switch-on'\] are not deployed in Datadog"):
            run(
                [ROOT / "chaos" / "kill-switch.yaml"],
                load_profile(str(path)),
                RunOptions(target=str(path), report_dir=tmp_path / "gone"),
            )
    finally:
        stop.set()
        fake.stop()


def test_an_intake_that_does_not_answer_is_no_verdict(observed: Stack, tmp_path: Path) -> None:
    from omnidrill.netutil import free_port

    profile = {**observed.profile, "observe": {"intake": f"http://127.0.0.1:{free_port()}"}}
    path = tmp_path / "nowhere.yaml"
    path.write_text(yaml.safe_dump(profile), encoding="utf-8")
    result = run_drills(Stack(path, profile, observed.tmp), "kill-switch", report=tmp_path / "r")
    drill = result.drill("kill-switch")
    assert result.code == 5, result.output
    assert drill["verdict"] == "inconclusive"
    assert (
        "the intake at http://127.0.0.1:" in drill["reason"]
        and "does not answer" in drill["reason"]
    )
    assert [s for s in drill["steps"] if s["kind"] != "http"] == [], "nothing was touched"


def test_a_folder_without_monitors_skips_o1_and_o2_with_that_reason(
    observed: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team's own drills run against `up`'s profile: nothing to judge the telemetry by."""
    from omnidrill.chaos.detection import open_setup, plan_lines
    from omnidrill.profile import TargetProfile, resolve

    resolved = resolve(TargetProfile.model_validate(observed.profile))
    setup = open_setup(resolved, tmp_path)
    assert setup.states is None and setup.events is None
    assert "there are no monitors (monitors/env/*.yaml) under" in (setup.skip_reason or "")
    monkeypatch.chdir(tmp_path)  # neither the drill's folder nor the working one has monitors
    drill = tmp_path / "chaos" / "mine.yaml"
    assert plan_lines(resolved, str(drill)) == [
        "  monitors: none (no monitors/env/ under the project)"
    ]
