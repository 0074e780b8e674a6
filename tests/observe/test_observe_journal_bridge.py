"""The chaos engine's journal record becomes the outcome Datadog and Sentry reporting take."""

from __future__ import annotations

from omnidrill.chaos.engine import DrillOutcome as EngineOutcome
from omnidrill.chaos.runtime import StepResult
from omnidrill.observe.drill_events import report_drill_result
from omnidrill.observe.journal_bridge import outcome_from_journal

from .fake_datadog import FakeDatadog


def _record(verdict: str) -> dict:
    out = EngineOutcome(file="chaos/kill-switch.yaml", title="t", contract=["C2", "C5", "C6"])
    out.started, out.ended, out.verdict = 1000.0, 1012.5, verdict
    refused = StepResult(phase="method", index=1, kind="http", name="all refuse", clause="C5")
    refused.verdict = "passed" if verdict == "passed" else "failed"
    refused.evidence = ["wallet_balance answered 200, expected 503"]
    refused.measurements = {"time_to_effect_s": 0.8, "resolution_s": 0.1}
    body = StepResult(phase="method", index=2, kind="http", name="503 body", clause="C2")
    body.verdict = "passed"
    out.steps = [refused, body]
    out.measurements = {"time_to_recover_s": 1.2}
    out.reason = "1 check(s) failed (clauses C5)" if verdict != "passed" else ""
    return out.to_json()


def test_a_failed_drill_record() -> None:
    o = outcome_from_journal(_record("failed"), target="local", environment="staging", run_id="r1")
    assert (o.drill, o.verdict, o.duration_s) == ("kill-switch", "failed", 12.5)
    by = {c.clause: c for c in o.clauses}
    assert by["C2"].passed and not by["C5"].passed
    assert "expected 503" in by["C5"].detail
    assert "C6" not in by  # in the drill's contract, but no step judged it
    assert (o.time_to_effect_s, o.time_to_recover_s, o.resolution_s) == (0.8, 1.2, 0.1)
    assert o.error == "1 check(s) failed (clauses C5)"


def test_rollback_failed_reports_as_failed_and_reaches_datadog(
    fake_dd: FakeDatadog, dd_env: dict[str, str]
) -> None:
    o = outcome_from_journal(_record("rollback_failed"), target="local", environment="staging")
    assert o.verdict == "failed"
    assert report_drill_result(o) is not None
    assert fake_dd.events[0]["title"] == "omnidrill: kill-switch FAILED on local"
