"""From a drill's journal record (the chaos engine's `DrillOutcome.to_json()`) to the
`observe.drill_events.DrillOutcome` that Datadog and Sentry reporting take."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omnidrill.observe.drill_events import ClauseResult, DrillOutcome, MonitorResult, Verdict

# The journal's verdicts onto the five the reports know; a failed rollback is a failure.
_VERDICTS: dict[str, Verdict] = {
    "passed": "passed",
    "failed": "failed",
    "rollback_failed": "failed",
    "aborted": "aborted",
    "inconclusive": "inconclusive",
    "skipped": "skipped",
}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _first(steps: list[Mapping[str, Any]], key: str) -> float | None:
    for s in steps:
        v = (s.get("measurements") or {}).get(key)
        if isinstance(v, int | float):
            return float(v)
    return None


def outcome_from_journal(
    record: Mapping[str, Any],
    *,
    target: str,
    environment: str,
    run_id: str | None = None,
) -> DrillOutcome:
    """The drill's name is its file's stem (chaos/kill-switch.yaml -> kill-switch)."""
    steps = list(record.get("steps") or [])
    clauses: dict[str, ClauseResult] = {}
    for s in steps:
        clause = s.get("clause")
        if not clause or s.get("verdict") in ("skipped", "not_run"):
            continue
        ok = s.get("verdict") == "passed"
        prev = clauses.get(clause)
        if prev is None or (prev.passed and not ok):
            detail = (
                s.get("name", "")
                if ok
                else f"{s.get('name', '')}: " + "; ".join((s.get("evidence") or [])[-1:])
            )
            clauses[clause] = ClauseResult(clause, ok, detail.strip())
    started = float(record.get("started_ts") or 0.0)
    ended = float(record.get("ended_ts") or started)
    measurements = record.get("measurements") or {}
    ttr = measurements.get("time_to_recover_s")
    resolution = [
        float(v)
        for s in steps
        if isinstance(v := (s.get("measurements") or {}).get("resolution_s"), int | float)
    ]
    verdict = _VERDICTS.get(str(record.get("verdict")), "inconclusive")
    monitors = [
        MonitorResult(
            monitor=str((s.get("detail") or {}).get("monitor")),
            outcome=str((s.get("detail") or {}).get("outcome") or "not judged"),
            time_to_detect_s=_num((s.get("measurements") or {}).get("time_to_detect_s")),
            time_to_resolve_s=_num((s.get("measurements") or {}).get("time_to_resolve_s")),
        )
        for s in steps
        if s.get("kind") == "monitor.detected" and (s.get("detail") or {}).get("monitor")
    ]
    error = record.get("internal_error") or (record.get("reason") if verdict != "passed" else None)
    return DrillOutcome(
        drill=Path(str(record.get("file", "drill"))).stem,
        target=target,
        environment=environment,
        verdict=verdict,
        duration_s=max(0.0, ended - started),
        clauses=sorted(clauses.values(), key=lambda c: c.clause),
        time_to_effect_s=_first(steps, "time_to_effect_s"),
        time_to_recover_s=float(ttr) if isinstance(ttr, int | float) else None,
        resolution_s=max(resolution) if resolution else None,
        ended_at=ended,
        run_id=run_id,
        error=str(error) if error else None,
        time_to_detect_s=_num(measurements.get("time_to_detect_s")),
        time_to_resolve_s=_num(measurements.get("time_to_resolve_s")),
        monitors=monitors,
    )
