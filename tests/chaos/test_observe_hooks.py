"""Drill results reach Datadog (the real SDK against the observe tests' fake API), and
--mute-monitors mutes the monitors a drill trips, with the downtime undone like any change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.drillkit import HOLD_KILL_SWITCH, ROOT, run_drills, start_stack
from observe.fake_datadog import FakeDatadog


@pytest.fixture
def fake_dd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatadog]:
    fake = FakeDatadog().start()
    for k, v in fake.sdk_env().items():
        monkeypatch.setenv(k, v)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.serial
def test_drill_result_posted_and_monitors_muted_then_unmuted(
    fake_dd: FakeDatadog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # monitors/ is read from the working folder
    with start_stack(tmp_path / "stack") as stack:
        result = run_drills(stack, "kill-switch", report=tmp_path / "r", mute_monitors=True)
    assert result.code == 0, result.output
    titles = [e["title"] for e in fake_dd.events]
    assert any("kill-switch" in t and "PASSED" in t for t in titles), titles
    assert fake_dd.downtimes, "the monitors tripped by kill-switch were muted"
    assert all(d["status"] == "canceled" for d in fake_dd.downtimes.values())
    kinds = [e["kind"] for e in result.journal["events"]]
    assert "mute" in kinds


GUARDED = """title: Kill switch guarded by a Datadog monitor
description: holds the kill switch on; the monitor alerting aborts the drill
contract: [C2]
abort_if:
  - monitor_alerts: {monitor}
"""
GUARDED += HOLD_KILL_SWITCH


@pytest.mark.serial
def test_a_datadog_monitor_alerting_aborts_the_drill(fake_dd: FakeDatadog, tmp_path: Path) -> None:
    import threading
    import time

    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.cliutil import load_profile

    mid = 4242
    fake_dd.monitors[mid] = {
        "id": mid,
        "name": "omnihub errors",
        "overall_state": "OK",
        "type": "query alert",
        "query": "x",
        "options": {},
        "tags": [],
    }
    drill = tmp_path / "chaos" / "guarded.yaml"
    drill.parent.mkdir()
    drill.write_text(GUARDED.format(monitor=mid))

    def alert_soon() -> None:
        time.sleep(4)
        fake_dd.monitors[mid]["overall_state"] = "Alert"

    with start_stack(tmp_path / "stack") as stack:
        threading.Thread(target=alert_soon, daemon=True).start()
        t0 = time.monotonic()
        code = run(
            [drill],
            load_profile(str(stack.profile_path)),
            RunOptions(target="x", report_dir=tmp_path / "r"),
            printer=Progress(),
        )
        took = time.monotonic() - t0
    import json

    record = json.loads((tmp_path / "r" / "journal.json").read_text())["drills"][0]
    assert code == 3
    assert record["verdict"] == "aborted"
    assert f"Datadog monitor {mid}" in record["reason"]
    assert took < 20, "the guardrail is read every 5 s, not after the 30 s wait"
