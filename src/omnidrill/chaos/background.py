"""A drill's background load (a scenario from scenarios/), split into the drill's phases.

Phases: `steady` until the first change, `fault` while the method runs, `recovery` from
the rollbacks on. Its per-second stats join the journal's traffic; `check: load` and the
`background_error_rate_over` guardrail judge it with the load runner's own thresholds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnidrill.chaos.models import Background
from omnidrill.chaos.runtime import Runtime
from omnidrill.errors import UsageError
from omnidrill.profile import template_variables


def scenario_path(drill_file: str | Path, bg: Background) -> Path:
    """The scenario file: as given, or relative to the drill's project (chaos/..)."""
    path = Path(bg.scenario)
    if not path.exists() and not path.is_absolute():
        path = Path(drill_file).resolve().parent.parent / bg.scenario
    if not path.exists():
        raise UsageError(f"{drill_file}: background.scenario: {bg.scenario} does not exist")
    return path


def start_background(
    rt: Runtime,
    bg: Background,
    report_dir: Path,
    max_s: float,
    variables: dict[str, Any] | None = None,
) -> Any:
    from omnidrill.load.runner import BackgroundLoad, load_scenario

    path = scenario_path(rt.drill, bg)
    scenario = load_scenario(path, variables=template_variables(rt.profile, variables or {}))
    out = report_dir / "background" / Path(rt.drill).stem
    load = BackgroundLoad(scenario, rt.profile, out_dir=out, max_duration_s=max_s, phase="steady")
    load.start()
    rt.journal.event("background", f"background load {path} started", drill=rt.drill)
    return load


def stop_background(rt: Runtime) -> dict[str, Any]:
    result = rt.background.stop()
    rt.background = None
    data = result.to_json()
    stats = (data.get("stats") or {}) if isinstance(data, dict) else {}
    for row in stats.get("seconds", []):
        statuses: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        for fn in row.get("functions", {}).values():
            statuses.update({str(k): int(v) for k, v in fn.get("statuses", {}).items()})
            codes.update({str(k): int(v) for k, v in fn.get("codes", {}).items()})
        rt.journal.traffic.add_summary(
            {
                "t": int(row["t"]),
                "source": "background",
                "drill": rt.drill,
                "phase": row.get("phase"),
                "count": int(row.get("requests", 0)),
                "by_status": dict(statuses),
                "by_code": dict(codes),
                "latency_ms": row.get("latency_ms", {}),
            }
        )
    return {
        "scenario": data.get("name") if isinstance(data, dict) else None,
        "passed": result.passed,
        "failed": result.failed,
        "by_phase": stats.get("by_phase"),
        "thresholds": [t.to_json() for t in result.thresholds],
    }


def phase(rt: Runtime, name: str) -> None:
    if rt.background is not None and getattr(rt, "load_phase", None) != name:
        rt.background.phase(name)
        rt.load_phase = name


def error_rate_guard(rt: Runtime, limit_pct: float) -> Callable[[], str | None]:
    """Abort when the background load's error rate exceeds limit_pct (checked once a second)."""
    last = {"at": 0.0}

    def guard() -> str | None:
        if rt.background is None or time.monotonic() - last["at"] < 1.0:
            return None
        last["at"] = time.monotonic()
        rate = rt.background.stats().total().all.error_rate
        if rate is not None and rate * 100 > limit_pct:
            return f"guardrail: background error rate {rate * 100:.1f}% > {limit_pct:g}%"
        return None

    return guard


def monitor_guard(monitor_id: int) -> Callable[[], str | None]:
    """Abort when a Datadog monitor alerts (checked every 5 s; needs DD_API_KEY/DD_APP_KEY)."""
    from omnidrill.observe.ddclient import DatadogSettings, api_client, call, plain

    if not DatadogSettings.present():
        raise UsageError(
            f"abort_if monitor_alerts: {monitor_id} needs DD_API_KEY and DD_APP_KEY to be set"
        )
    settings = DatadogSettings.from_env()
    last = {"at": 0.0}

    def guard() -> str | None:
        if time.monotonic() - last["at"] < 5.0:
            return None
        last["at"] = time.monotonic()
        from datadog_api_client.v1.api.monitors_api import MonitorsApi

        with api_client(settings) as client:
            mon = plain(
                call(
                    settings,
                    "reading a guardrail monitor",
                    MonitorsApi(client).get_monitor,
                    monitor_id,
                )
            )
        state = str(mon.get("overall_state", ""))
        if state.lower() == "alert":
            return f"guardrail: Datadog monitor {monitor_id} ({mon.get('name')}) alerts"
        return None

    return guard
