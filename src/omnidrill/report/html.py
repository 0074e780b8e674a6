"""`report.html`: one self-contained page (inline CSS and SVG, no script, no request)."""

from __future__ import annotations

import time
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from omnidrill.report.charts import Second, TimeMark, timeline_svg
from omnidrill.report.model import (
    CheckView,
    DetectionView,
    DrillView,
    RunView,
    ScenarioView,
    verdict_rank,
)
from omnidrill.report.words import CLAUSE_TITLES, CONTRACT_DOC, VERDICT_ICON, fmt_s, headline, label

# What a drill-level time is measured from and to, where no single step measured it.
MEASURED_BY = {
    "time to recover": "the steady state after the rollbacks",
    "time to detect": "the fault action before it to the first expected monitor alerting",
    "time to resolve": "the end of the rollbacks to the last expected monitor OK again",
}
ACTION_PHASES = {
    "method": "action",
    "rollback": "rollback",
    "rollbacks": "rollback",
    "undo": "rollback",
    "undos": "rollback",
}


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("omnidrill.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["label"] = label
    env.filters["icon"] = lambda v: VERDICT_ICON.get(v, "")
    env.filters["secs"] = fmt_s
    env.filters["clock"] = _clock
    return env


def _clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def time_marks(
    steps: list[CheckView],
    origin: float,
    events: list[dict[str, Any]],
    detection: DetectionView | None = None,
) -> list[TimeMark]:
    """Every action and rollback, each expected monitor's alert and return to OK, and an
    abort, as numbered marks on the drill's time axis."""
    marks: list[TimeMark] = []
    for s in steps:
        kind = ACTION_PHASES.get(s.phase)
        if s.is_check or kind is None or s.started_ts is None:
            continue
        marks.append(TimeMark(s.started_ts - origin, len(marks) + 1, s.name or s.kind, kind))
    for m in detection.monitors if detection else []:
        for ts, kind, what in (
            (m.alerted_ts, "alert", "alerts"),
            (m.resolved_ts, "resolved", "OK"),
        ):
            if ts is not None:
                marks.append(TimeMark(ts - origin, len(marks) + 1, f"monitor {m.id} {what}", kind))
    for e in events:
        if e.get("kind") in {"abort", "aborted", "halt", "guardrail"} and e.get("t") is not None:
            marks.append(
                TimeMark(
                    float(e["t"]) - origin,
                    len(marks) + 1,
                    str(e.get("message", e["kind"])),
                    "abort",
                )
            )
    return marks


def drill_chart(d: DrillView) -> tuple[str | None, list[TimeMark]]:
    if d.started_ts is None:
        return None, []
    origin = float(int(d.started_ts))
    seconds = [Second(s.t - origin, s.by_status, s.by_code, s.p50_ms, s.p95_ms) for s in d.traffic]
    marks = time_marks(d.steps, origin, d.events, d.detection)
    if not seconds and not marks:
        return None, marks
    duration = (d.ended_ts or d.started_ts) - origin
    return timeline_svg(seconds, marks, duration_s=duration, title=d.title or d.name), marks


def scenario_chart(s: ScenarioView) -> str | None:
    if not s.traffic:
        return None
    origin = float(int(s.started_ts if s.started_ts is not None else s.traffic[0].t))
    seconds = [Second(x.t - origin, x.by_status, x.by_code, x.p50_ms, x.p95_ms) for x in s.traffic]
    duration = (s.ended_ts or origin) - origin
    return timeline_svg(seconds, [], duration_s=duration, title=s.name).replace(
        "seconds since the drill started", "seconds since the scenario started"
    )


def canary_charts(s: ScenarioView) -> dict[str, str | None]:
    from omnidrill.report.canary_charts import canary_metric_svg

    return {m.label: canary_metric_svg(m) for m in (s.canary.metrics if s.canary else [])}


def render_html(run: RunView, contract_href: str = CONTRACT_DOC) -> str:
    """The report page of one run; each clause links to its section at `contract_href`."""
    drills = sorted(run.drills, key=lambda d: (verdict_rank(d.verdict), d.name))
    charts = {d.name: drill_chart(d) for d in drills}
    coverage = run.coverage()
    covered = {c for c, _, _ in coverage}
    uncovered = [c for c in CLAUSE_TITLES if c not in covered]
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            run=run,
            headline=headline(run),
            drills=drills,
            charts=charts,
            scenario_charts={s.name: scenario_chart(s) for s in run.scenarios},
            canary_charts={s.name: canary_charts(s) for s in run.scenarios if s.canary},
            coverage=coverage,
            uncovered=uncovered,
            clause_titles=CLAUSE_TITLES,
            measure_by=MEASURED_BY,
            contract_href=contract_href,
            generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        )
    )


def render_index(targets: list[dict[str, Any]], total_runs: int) -> str:
    """The history page: per target, pass rate and time to effect per drill over the runs."""
    return (
        _env()
        .get_template("index.html.j2")
        .render(
            targets=targets,
            total_runs=total_runs,
            generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        )
    )
