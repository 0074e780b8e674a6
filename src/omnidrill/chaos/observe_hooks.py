"""Drill results to Datadog (event + metrics) and Sentry, and monitors muted during a drill.

Each is a no-op without its keys (DD_API_KEY, SENTRY_DSN). A failure to report never changes
a verdict: it is a warning in the console and the journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnidrill import secrets
from omnidrill.errors import UsageError


def report_drill(
    record: dict[str, Any], *, target: str, environment: str, run_id: str
) -> list[str]:
    """Post one drill's result; return warnings (empty when all went well or nothing is set)."""
    from omnidrill.observe.drill_events import report_drill_result
    from omnidrill.observe.journal_bridge import outcome_from_journal
    from omnidrill.observe.sentry_report import capture_drill_failure

    warnings: list[str] = []
    outcome = outcome_from_journal(record, target=target, environment=environment, run_id=run_id)
    try:
        reported = report_drill_result(outcome)
        if reported is not None:
            record["datadog_event_id"] = reported.event_id
    except Exception as exc:
        warnings.append(secrets.scrub(f"Datadog: drill result not posted ({exc})"))
    if outcome.verdict not in ("passed", "skipped"):
        try:
            event = capture_drill_failure(outcome)
            if event:
                record["sentry_event_id"] = event
        except Exception as exc:
            warnings.append(secrets.scrub(f"Sentry: drill failure not sent ({exc})"))
    return warnings


def monitor_env(profile_name: str, environment: str, root: Path) -> str:
    """The monitors' environment for a profile: its name, else its environment."""
    for candidate in (profile_name, environment):
        if (root / "monitors" / "env" / f"{candidate}.yaml").exists():
            return candidate
    raise UsageError(
        f"--mute-monitors: no monitors/env/{profile_name}.yaml or {environment}.yaml under "
        f"{root}; run from the project folder or drop --mute-monitors"
    )


def monitors_for(drill_file: str, env: str, root: Path) -> list[str]:
    """Ids of the monitors whose `tripped_by` names this drill (read-only)."""
    from omnidrill.observe.drill_events import monitors_tripped_by

    return monitors_tripped_by(root, env, Path(drill_file).stem)


def mute(ids: list[str], drill_file: str, env: str, duration_s: float) -> list[str] | None:
    """Mute them (a Datadog downtime each); the downtime ids, or None without DD_API_KEY."""
    from omnidrill.observe.drill_events import mute_monitors

    return mute_monitors(ids, env=env, duration_s=duration_s, drill=Path(drill_file).stem)
