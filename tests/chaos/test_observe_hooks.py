"""Drill results reach Datadog (the real SDK against the observe tests' fake API), and
--mute-monitors mutes the monitors a drill trips, with the downtime undone like any change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.drillkit import ROOT, run_drills, start_stack
from observe.fake_datadog import FakeDatadog


@pytest.fixture
def fake_dd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatadog]:
    fake = FakeDatadog().start()
    env = {
        "DD_API_KEY": fake.api_key,
        "DD_APP_KEY": fake.app_key,
        "DD_SITE": fake.url,
        "OMNIDRILL_DD_BACKOFF_S": "0.01",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.slow
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
