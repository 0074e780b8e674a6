"""Drill results into Datadog: an event and `omnidrill.drill.*` metrics per drill, and
downtimes that keep on-call from being paged for what a drill causes on purpose.

The chaos engine calls these; each is a no-op returning None when DD_API_KEY is not set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from omnidrill import secrets
from omnidrill.observe.compile import ENV_TAG, ID_TAG
from omnidrill.observe.ddclient import DatadogApiError, DatadogSettings, api_client, call, plain

Verdict = Literal["passed", "failed", "aborted", "inconclusive", "skipped"]
_ALERT_TYPE = {
    "passed": "success",
    "failed": "error",
    "aborted": "warning",
    "inconclusive": "warning",
    "skipped": "info",
}


@dataclass(frozen=True)
class ClauseResult:
    """One contract clause a drill checked (e.g. "C2") and whether it held."""

    clause: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class MonitorResult:
    """A monitor the drill expected to trip (O1): after how long it alerted and cleared."""

    monitor: str
    outcome: str  # detected | undetected | late | unresolved | late resolve | not judged
    time_to_detect_s: float | None = None
    time_to_resolve_s: float | None = None


@dataclass(frozen=True)
class DrillOutcome:
    """What the chaos engine knows at the end of one drill.

    `environment` is the target profile's (dev, staging, production) and becomes the `env`
    tag; times are seconds; `resolution_s` is the polling resolution times were measured at.
    """

    drill: str
    target: str
    environment: str
    verdict: Verdict
    duration_s: float
    clauses: Sequence[ClauseResult] = ()
    time_to_effect_s: float | None = None
    time_to_recover_s: float | None = None
    resolution_s: float | None = None
    ended_at: float = field(default_factory=time.time)
    run_id: str | None = None
    error: str | None = None
    time_to_detect_s: float | None = None
    time_to_resolve_s: float | None = None
    monitors: Sequence[MonitorResult] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def tags(self) -> list[str]:
        return [
            f"drill:{self.drill}",
            f"target:{self.target}",
            f"env:{self.environment}",
            f"verdict:{self.verdict}",
            f"{ENV_TAG}:{self.environment}",
            "omnidrill",
        ]


@dataclass(frozen=True)
class Reported:
    """What reached Datadog for one drill."""

    event_id: int | None
    metrics: list[str]


def _event_text(outcome: DrillOutcome, report_url: str | None) -> str:
    lines = [
        f"**{outcome.drill}** on **{outcome.target}** ({outcome.environment}): "
        f"**{outcome.verdict.upper()}** in {outcome.duration_s:.1f} s",
        "",
    ]
    for c in outcome.clauses:
        mark = "PASS" if c.passed else "FAIL"
        lines.append(f"- {mark} {c.clause}" + (f": {c.detail}" if c.detail else ""))
    res = f" (polled every {outcome.resolution_s:g} s)" if outcome.resolution_s else ""
    if outcome.time_to_effect_s is not None:
        lines.append(f"- time to effect: {outcome.time_to_effect_s:.2f} s{res}")
    if outcome.time_to_recover_s is not None:
        lines.append(f"- time to recover: {outcome.time_to_recover_s:.2f} s{res}")
    for m in outcome.monitors:
        if m.time_to_detect_s is None:
            lines.append(f"- monitor {m.monitor}: {m.outcome.upper()}")
            continue
        cleared = (
            f", OK {m.time_to_resolve_s:.2f} s after the rollbacks"
            if m.time_to_resolve_s is not None
            else f", {m.outcome}"
        )
        lines.append(f"- monitor {m.monitor}: alerted after {m.time_to_detect_s:.2f} s{cleared}")
    if outcome.error:
        lines.append(f"- error: {outcome.error}")
    if outcome.run_id:
        lines.append(f"- run: {outcome.run_id}")
    if report_url:
        lines.append(f"- report: {report_url}")
    text = "\n".join(lines)
    if len(text) > 3900:  # Datadog caps event text at 4000 characters
        text = text[:3880] + "\n- (truncated)"
    return "%%% \n" + text + "\n %%%"


def report_drill_result(
    result: DrillOutcome,
    *,
    report_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Reported | None:
    """Post the drill's event and metrics; None when DD_API_KEY is not set.

    Raises DatadogApiError (exit 5) when Datadog refuses them after retries.
    """
    if not DatadogSettings.present(environ):
        return None
    settings = DatadogSettings.from_env(environ, need_app_key=False)
    if report_url and "://" not in report_url:
        report_url = Path(report_url).resolve().as_uri()

    from datadog_api_client.v1.api.events_api import EventsApi
    from datadog_api_client.v1.model.event_create_request import EventCreateRequest
    from datadog_api_client.v2.api.metrics_api import MetricsApi
    from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
    from datadog_api_client.v2.model.metric_payload import MetricPayload
    from datadog_api_client.v2.model.metric_point import MetricPoint
    from datadog_api_client.v2.model.metric_series import MetricSeries

    title = f"omnidrill: {result.drill} {result.verdict.upper()} on {result.target}"[:100]
    event = EventCreateRequest(
        title=secrets.scrub(title),
        text=secrets.scrub(_event_text(result, report_url)),
        tags=result.tags(),
        alert_type=_ALERT_TYPE[result.verdict],
        aggregation_key=f"omnidrill-{result.drill}"[:100],
        source_type_name="omnidrill",
        date_happened=int(result.ended_at),
    )
    values = {
        "omnidrill.drill.passed": 1.0 if result.passed else 0.0,
        "omnidrill.drill.duration": result.duration_s,
        "omnidrill.drill.time_to_effect": result.time_to_effect_s,
        "omnidrill.drill.time_to_recover": result.time_to_recover_s,
        "omnidrill.drill.time_to_detect": result.time_to_detect_s,
        "omnidrill.drill.time_to_resolve": result.time_to_resolve_s,
    }
    ts = int(result.ended_at)
    series = [
        MetricSeries(
            metric=name,
            type=MetricIntakeType.GAUGE,
            points=[MetricPoint(timestamp=ts, value=float(v))],
            tags=result.tags(),
        )
        for name, v in values.items()
        # a skipped drill measured nothing; passed=0 would page as a failure
        if v is not None and not (result.verdict == "skipped" and name.endswith(".passed"))
    ]
    with api_client(settings) as client:
        resp = call(settings, "posting the drill event", EventsApi(client).create_event, event)
        call(
            settings,
            "posting drill metrics",
            MetricsApi(client).submit_metrics,
            body=MetricPayload(series=series),
        )
    event_id = (plain(resp).get("event") or {}).get("id")
    return Reported(event_id=event_id, metrics=[s.metric for s in series])


def monitors_tripped_by(root: Path, env: str, drill: str) -> list[str]:
    """YAML ids of the monitors whose `tripped_by` names `drill`."""
    from omnidrill.observe.compile import compile_monitors
    from omnidrill.observe.detection import expected_monitors

    return expected_monitors(compile_monitors(root, env), drill)


def mute_monitors(
    monitor_ids: Sequence[str],
    *,
    env: str,
    duration_s: float,
    drill: str,
    environ: Mapping[str, str] | None = None,
) -> list[str] | None:
    """Schedule one downtime per managed monitor (by its id tag) from now for `duration_s`.

    Returns the downtime ids, to be stored in the ledger so that `unmute` (also from
    `recover`) cancels them; None when DD_API_KEY is not set. The end is a safety net: a
    downtime left by a crash still expires.
    """
    if not DatadogSettings.present(environ) or not monitor_ids:
        return None if not DatadogSettings.present(environ) else []
    settings = DatadogSettings.from_env(environ)
    from datadog_api_client.v2.api.downtimes_api import DowntimesApi
    from datadog_api_client.v2.model.downtime_create_request import DowntimeCreateRequest

    end = datetime.now(UTC) + timedelta(seconds=max(duration_s, 60.0))
    ids: list[str] = []
    with api_client(settings) as client:
        api = DowntimesApi(client)
        try:
            for mid in monitor_ids:
                body = DowntimeCreateRequest(
                    data={
                        "type": "downtime",
                        "attributes": {
                            "scope": "*",
                            "monitor_identifier": {
                                "monitor_tags": [f"{ID_TAG}:{mid}", f"{ENV_TAG}:{env}"]
                            },
                            "schedule": {"end": end},
                            "message": f"omnidrill drill {drill} is running; muted on purpose",
                            "mute_first_recovery_notification": True,
                        },
                    }
                )
                resp = call(settings, f"muting monitor {mid}", api.create_downtime, body)
                ids.append(str(plain(resp)["data"]["id"]))
        except DatadogApiError:
            # leave nothing half-done: cancel what this call already scheduled
            _cancel(settings, client, ids)
            raise
    return ids


def _cancel(settings: DatadogSettings, client: object, downtime_ids: Sequence[str]) -> list[str]:
    from datadog_api_client.v2.api.downtimes_api import DowntimesApi

    api = DowntimesApi(client)  # type: ignore[arg-type]
    done = []
    for did in downtime_ids:
        try:
            call(settings, f"cancelling downtime {did}", api.cancel_downtime, did)
        except DatadogApiError as exc:
            if exc.status != 404:  # already gone: nothing left to undo
                raise
        done.append(did)
    return done


def unmute(downtime_ids: Sequence[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Cancel downtimes by id (idempotent: one already gone counts as cancelled)."""
    if not downtime_ids:
        return []
    settings = DatadogSettings.from_env(environ)
    with api_client(settings) as client:
        return _cancel(settings, client, downtime_ids)


def downtimes_now(
    downtime_ids: Sequence[str], *, environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any] | None]:
    """What undoing a mute compares: each downtime's status and the attributes a person may
    change (message, scope, monitors, end); None for one that no longer exists."""
    if not downtime_ids:
        return {}
    from datadog_api_client.v2.api.downtimes_api import DowntimesApi

    settings = DatadogSettings.from_env(environ)
    out: dict[str, dict[str, Any] | None] = {}
    with api_client(settings) as client:
        api = DowntimesApi(client)
        for did in downtime_ids:
            try:
                body = plain(call(settings, f"reading downtime {did}", api.get_downtime, did))
            except DatadogApiError as exc:
                if exc.status != 404:
                    raise
                out[did] = None
                continue
            attrs = ((body or {}).get("data") or {}).get("attributes") or {}
            out[did] = {
                "status": attrs.get("status"),
                "message": attrs.get("message"),
                "scope": attrs.get("scope"),
                "monitor_identifier": attrs.get("monitor_identifier"),
                "end": (attrs.get("schedule") or {}).get("end"),
            }
    return out
