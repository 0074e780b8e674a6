"""Drill results reach the fake Datadog API (event, metrics, downtime cancelled) and the
Sentry sink, with every planted secret scrubbed from what was sent."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnidrill.observe.drill_events import (
    ClauseResult,
    DrillOutcome,
    monitors_tripped_by,
    mute_monitors,
    report_drill_result,
    unmute,
)

from .conftest import ROOT
from .fake_datadog import FakeDatadog
from .sentry_sink import SentrySink


def _outcome(verdict: str = "failed", **kw: object) -> DrillOutcome:
    return DrillOutcome(
        drill="kill-switch",
        target="local",
        environment="staging",
        verdict=verdict,  # type: ignore[arg-type]
        duration_s=42.5,
        clauses=[
            ClauseResult("C2", passed=verdict == "passed", detail="503 KILL_SWITCH expected"),
            ClauseResult("C5", passed=True, detail="effect after 0.8 s"),
        ],
        time_to_effect_s=0.8,
        time_to_recover_s=1.3,
        resolution_s=0.1,
        run_id="run-1",
        **kw,  # type: ignore[arg-type]
    )


def test_drill_event_and_metrics_reach_datadog(fake_dd: FakeDatadog, dd_env, tmp_path) -> None:
    report = tmp_path / "report.html"
    sent = report_drill_result(_outcome("failed"), report_url=str(report))
    assert sent is not None and sent.event_id is not None
    (event,) = fake_dd.events
    assert event["title"] == "omnidrill: kill-switch FAILED on local"
    assert event["alert_type"] == "error"
    assert {"drill:kill-switch", "target:local", "env:staging", "verdict:failed"} <= set(
        event["tags"]
    )
    assert "FAIL C2" in event["text"] and "PASS C5" in event["text"]
    assert report.as_uri() in event["text"]
    by_name = {s["metric"]: s for s in fake_dd.series}
    assert set(by_name) == {
        "omnidrill.drill.passed",
        "omnidrill.drill.duration",
        "omnidrill.drill.time_to_effect",
        "omnidrill.drill.time_to_recover",
    }
    assert by_name["omnidrill.drill.passed"]["points"][0]["value"] == 0
    assert by_name["omnidrill.drill.duration"]["points"][0]["value"] == 42.5
    assert "drill:kill-switch" in by_name["omnidrill.drill.passed"]["tags"]
    # events and metrics need the API key only
    assert ("POST", "/api/v2/series", 202) in fake_dd.requests


def test_without_keys_nothing_is_sent(fake_dd: FakeDatadog, monkeypatch) -> None:
    monkeypatch.delenv("DD_API_KEY", raising=False)
    assert report_drill_result(_outcome()) is None
    assert mute_monitors(["x"], env="staging", duration_s=60, drill="d") is None
    assert fake_dd.requests == []


def test_downtime_for_the_tripped_monitors_is_scheduled_then_cancelled(
    fake_dd: FakeDatadog, dd_env
) -> None:
    ids = monitors_tripped_by(ROOT, "staging", "controls-outage")
    assert "controls-failsafe" in ids and "dlq-not-empty" not in ids
    downtimes = mute_monitors(ids, env="staging", duration_s=120, drill="controls-outage")
    assert downtimes is not None and len(downtimes) == len(ids)
    for did in downtimes:
        rec = fake_dd.downtimes[did]
        assert rec["status"] == "active"
        assert "omnidrill-env:staging" in rec["monitor_identifier"]["monitor_tags"]
    tags = {
        t for d in downtimes for t in fake_dd.downtimes[d]["monitor_identifier"]["monitor_tags"]
    }
    assert "omnidrill-id:controls-failsafe" in tags
    # `recover` holds only the ids from the ledger: cancelling works from them alone, twice too
    assert unmute(downtimes) == downtimes
    assert all(fake_dd.downtimes[d]["status"] == "canceled" for d in downtimes)
    fake_dd.downtimes.pop(downtimes[0])  # gone already: still counts as undone
    assert unmute(downtimes) == downtimes


def test_a_failed_mute_leaves_no_downtime_behind(fake_dd: FakeDatadog, dd_env) -> None:
    from omnidrill.observe.ddclient import DatadogApiError

    # the first downtime is created, the second refused: the first must be cancelled again
    fake_dd.fail_next(400, errors=["scope is invalid"], path_prefix="/api/v2/downtime", after=1)
    with pytest.raises(DatadogApiError, match="scope is invalid"):
        mute_monitors(["a", "b"], env="staging", duration_s=60, drill="d")
    assert [d["status"] for d in fake_dd.downtimes.values()] == ["canceled"]


@pytest.fixture
def sink() -> Iterator[SentrySink]:
    s = SentrySink()
    yield s
    s.stop()


# Runs in a child process, as the harness would: sentry-sdk imports gevent.monkey to look for
# patching, which this test session must not have, and its client is process-global.
_SENTRY_CHILD = r"""
import sys
from omnidrill.observe.drill_events import ClauseResult, DrillOutcome
from omnidrill.observe.sentry_report import (
    capture_drill_failure, capture_harness_error, flush, init_sentry,
)
from omnidrill.profile import TargetProfile, resolve

dsn, profile_secret, report = sys.argv[1:4]
profile = TargetProfile(
    name="local",
    base_url="http://127.0.0.1:1",
    keys={"anon": {"value": profile_secret}, "service_role": {"env": "OMNIHUB_SERVICE_ROLE_KEY"}},
    controls={"kind": "postgrest", "url": "http://127.0.0.1:1/rest/v1"},
)
resolved = resolve(profile)  # as the engine does: registers the profile's secrets
assert init_sentry(dsn=dsn, environment="staging")
outcome = DrillOutcome(
    drill="kill-switch", target="local", environment="staging", verdict="failed",
    duration_s=3.0, clauses=[ClauseResult("C2", False, "got 200, expected 503")],
    error=f"401 with apikey {profile_secret}",
)
capture_drill_failure(outcome, report_url=report, context={
    "profile": profile.model_dump(mode="json"),
    "service_role_key": resolved.service_role_key,
    "env_copy": dict(__import__("os").environ),
})
try:
    raise RuntimeError(
        "harness failed: postgresql://app:" + sys.argv[4] + "@db:5432/x, Authorization: Bearer "
        + sys.argv[4] + ", api_key=" + sys.argv[4] + ", anon " + profile_secret
    )
except RuntimeError as exc:
    capture_harness_error(exc, context={"DD_API_KEY": sys.argv[5]})
flush(5)
"""


def test_drill_failure_reaches_sentry_with_secrets_scrubbed(
    sink: SentrySink, tmp_path: Path
) -> None:
    profile_secret = "prof-" + base64.b32encode(b"profile-secret!").decode()
    env_secret = "envs-" + base64.b32encode(b"environment-key").decode()
    exc_secret = "exc-" + base64.b32encode(b"exception-token").decode()
    dd_secret = "dd-" + base64.b32encode(b"datadog-api-key").decode()
    dsn_key = "0123456789abcdef0123456789abcdef"
    env = {
        **os.environ,
        "OMNIHUB_SERVICE_ROLE_KEY": env_secret,
        "DATABASE_URL": f"postgresql://app:{env_secret}@db:5432/x",
        "DD_API_KEY": dd_secret,
    }
    env.pop("SENTRY_DSN", None)
    args = [sink.dsn(dsn_key), profile_secret, str(tmp_path / "report.html"), exc_secret, dd_secret]
    proc = subprocess.run(
        [sys.executable, "-c", _SENTRY_CHILD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    events = sink.events()
    assert len(events) == 2, sink.raw
    drill_event = next(e for e in events if e.get("tags", {}).get("drill") == "kill-switch")
    assert "C2 did not hold" in drill_event["message"]
    assert drill_event["contexts"]["drill"]["clauses"][0]["detail"] == "got 200, expected 503"
    harness = next(e for e in events if e is not drill_event)
    assert harness["exception"]["values"][0]["type"] == "RuntimeError"
    everything = b"".join(sink.raw) + str(sink.headers).encode()
    for planted in (profile_secret, env_secret, exc_secret, dd_secret):
        assert planted.encode() not in everything, planted


def test_sentry_is_off_without_a_dsn(monkeypatch) -> None:
    from omnidrill.observe.sentry_report import capture_drill_failure, init_sentry

    monkeypatch.delenv("SENTRY_DSN", raising=False)
    assert init_sentry() is False
    assert capture_drill_failure(_outcome()) is None
