"""Read a run journal (`journal.json`, format in docs/journal.md) into the reports' RunView.

Only the journal's documented fields are read. A journal of another major version, or one
that is not a journal at all, is refused with a message that says what was expected.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from omnidrill import secrets
from omnidrill.errors import UsageError
from omnidrill.report.model import (
    CanaryMetricView,
    CanaryView,
    CheckView,
    DetectionView,
    DrillView,
    Evidence,
    Measure,
    MonitorView,
    RunView,
    ScenarioView,
    ThresholdView,
    TrafficSecond,
)
from omnidrill.report.words import EXIT_VERDICT

SUPPORTED_MAJOR = "1"
JOURNAL_KIND = "omnidrill-run"
CHECK_PHASES_ACTIONS = {"undo"}  # undo entries are actions even though they have no `action`
ACTION_KINDS = {
    "controls.set",
    "fault.cut",
    "fault.restore",
    "fault.toxic",
    "approval.set",
    "http.request",
    "wait",
    "lock.release",
}
# "<where>: <got>, expected <expected>" is how the engine words a mismatch.
_EVIDENCE = re.compile(r"^(?P<where>[A-Z]+ \S+(?: on \S+)?): (?P<got>.+?),? expected (?P<exp>.+)$")
_EVIDENCE_PAREN = re.compile(
    r"^(?P<where>[A-Z]+ \S+(?: on \S+)?): (?P<got>.+?) \(expected (?P<exp>.+)\)$"
)


class JournalError(UsageError):
    """A file that cannot be read as a run journal."""


def load_journal(path: Path | str) -> dict[str, Any]:
    """The journal document, checked for its kind and version."""
    path = Path(path)
    if path.is_dir():
        path = path / "journal.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JournalError(f"{path}: no such journal (expected a journal.json of a run)") from None
    except json.JSONDecodeError as exc:
        raise JournalError(
            f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg}); expected a run journal"
        ) from None
    if not isinstance(doc, dict) or doc.get("kind") != JOURNAL_KIND:
        found = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise JournalError(
            f"{path}: kind is {found!r}, expected {JOURNAL_KIND!r} (a journal of omnidrill run)"
        )
    version = str(doc.get("version", ""))
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise JournalError(
            f"{path}: journal version {version or '(none)'!r}; this omnidrill reads version "
            f"{SUPPORTED_MAJOR}.x"
        )
    return doc


def parse_evidence(text: str) -> Evidence:
    """Split the engine's evidence sentence into request / got / expected where it can."""
    for pattern in (_EVIDENCE_PAREN, _EVIDENCE):
        m = pattern.match(text)
        if m:
            return Evidence(text, m["where"], m["exp"].strip(), m["got"].strip())
    return Evidence(text)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _step(raw: dict[str, Any]) -> CheckView:
    kind = str(raw.get("kind", "?"))
    phase = str(raw.get("phase", "?"))
    is_check = kind not in ACTION_KINDS and phase not in CHECK_PHASES_ACTIONS
    return CheckView(
        phase=phase,
        index=int(raw.get("index", 0)),
        kind=kind,
        name=str(raw.get("name") or kind),
        is_check=is_check,
        verdict=str(raw.get("verdict", "running")),
        clause=raw.get("clause"),
        started_ts=_num(raw.get("started_ts")),
        ended_ts=_num(raw.get("ended_ts")),
        evidence=[parse_evidence(str(e)) for e in raw.get("evidence") or []],
        requests=[r for r in raw.get("requests") or [] if isinstance(r, dict)],
        requests_total=int(raw.get("requests_total") or 0),
        measurements=dict(raw.get("measurements") or {}),
    )


def _measures(raw: dict[str, Any], steps: list[CheckView]) -> list[Measure]:
    m = raw.get("measurements") or {}
    out = []
    for what, key in (
        ("time to effect", "effect"),
        ("time to recover", "recover"),
        ("time to detect", "detect"),
        ("time to resolve", "resolve"),
    ):
        seconds = _num(m.get(f"time_to_{key}_s"))
        resolution = _num(m.get(f"time_to_{key}_resolution_s"))
        step_key = "time_to_effect_s" if key == "effect" else "time_to_recovery_s"
        by = next((s for s in steps if step_key in s.measurements), None)
        if key in ("detect", "resolve"):  # over every expected monitor, not one step
            by = None
        if seconds is None and f"time_to_{key}_s" not in m:
            continue
        out.append(Measure(what, seconds, resolution, step=by.label if by else None))
    return out


def _traffic(rows: list[dict[str, Any]], drill: str | None) -> list[TrafficSecond]:
    """Buckets of one drill (or of no drill), merged across sources per second.

    Counts add up exactly. Percentiles of different sources cannot be merged exactly: the p50
    shown is the busiest source's, the p95 the highest of them (never better than the truth).
    """
    by_t: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if drill is not None and row.get("drill") != drill:
            continue
        by_t.setdefault(int(row["t"]), []).append(row)
    out = []
    for t in sorted(by_t):
        group = by_t[t]
        statuses: dict[str, int] = {}
        codes: dict[str, int] = {}
        for row in group:
            for k, v in (row.get("by_status") or {}).items():
                statuses[str(k)] = statuses.get(str(k), 0) + int(v)
            for k, v in (row.get("by_code") or {}).items():
                codes[str(k)] = codes.get(str(k), 0) + int(v)
        busiest = max(group, key=lambda r: int(r.get("count") or 0))
        p95s = [_num((r.get("latency_ms") or {}).get("p95")) for r in group]
        p95s = [p for p in p95s if p is not None]
        out.append(
            TrafficSecond(
                t=t,
                count=sum(int(r.get("count") or 0) for r in group),
                by_status=statuses,
                by_code=codes,
                p50_ms=_num((busiest.get("latency_ms") or {}).get("p50")),
                p95_ms=max(p95s) if p95s else None,
            )
        )
    return out


def _threshold(raw: dict[str, Any], phase: str | None = None) -> ThresholdView:
    measured = raw.get("measured")
    unit = raw.get("unit") or ""
    if measured is None:
        shown = "nothing to measure"
    elif unit == "%":
        shown = f"{float(measured) * 100:.3f}%"
    elif unit == "ms":
        shown = f"{float(measured):.3f} ms"
    else:
        shown = (
            f"{float(measured):.3f}{unit}" if isinstance(measured, float) else f"{measured}{unit}"
        )
    return ThresholdView(
        scope=str(raw.get("scope", "all")),
        expr=str(raw.get("threshold", "?")),
        measured=shown,
        passed=bool(raw.get("passed")),
        message=str(raw.get("message", "")),
        phase=raw.get("phase") or phase,
    )


def _drill_thresholds(raw: dict[str, Any], steps: list[CheckView]) -> list[ThresholdView]:
    """Thresholds judged on a drill's background load: by its `load` checks, or at its end."""
    out: list[ThresholdView] = []
    bg = (raw.get("measurements") or {}).get("background") or {}
    if isinstance(bg, dict):
        out += [_threshold(t) for t in bg.get("thresholds") or [] if isinstance(t, dict)]
    for step in raw.get("steps") or []:
        detail = step.get("detail") or {}
        for t in detail.get("thresholds") or []:
            if isinstance(t, dict):
                out.append(_threshold(t, detail.get("phase")))
    return out


def _drill(raw: dict[str, Any], traffic: list[dict[str, Any]], events: list[dict]) -> DrillView:
    file = str(raw.get("file") or "")
    steps = [_step(s) for s in raw.get("steps") or [] if isinstance(s, dict)]
    return DrillView(
        name=Path(file).stem or str(raw.get("title", "drill")),
        title=str(raw.get("title") or Path(file).stem),
        file=file or None,
        clauses=[str(c) for c in raw.get("contract") or []],
        verdict=str(raw.get("verdict", "running")),
        reason=str(raw.get("reason") or ""),
        started_ts=_num(raw.get("started_ts")),
        ended_ts=_num(raw.get("ended_ts")),
        steps=steps,
        measures=_measures(raw, steps),
        traffic=_traffic(traffic, file),
        thresholds=_drill_thresholds(raw, steps),
        events=[e for e in events if e.get("drill") == file],
        clause_verdicts={
            str(k): str(v) for k, v in (raw.get("clauses") or {}).items() if isinstance(v, str)
        },
        skipped_checks=[str(x) for x in raw.get("skipped_checks") or []],
        left_changed=[str(x) for x in raw.get("left_changed") or []],
        conflicts=[_conflict(c) for c in raw.get("conflicts") or [] if isinstance(c, dict)],
        not_cleaned=[str(x) for x in raw.get("not_cleaned") or []],
        internal_error=str(raw.get("internal_error") or ""),
        detection=_detection(raw, [s for s in raw.get("steps") or [] if isinstance(s, dict)]),
    )


def _detection(raw: dict[str, Any], steps: list[dict[str, Any]]) -> DetectionView | None:
    """The drill's `detection` record and its O1 checks, one row per expected monitor."""
    det = raw.get("detection")
    if not isinstance(det, dict) or not det.get("expected"):
        return None
    checks = {
        (s.get("detail") or {}).get("monitor"): s
        for s in steps
        if isinstance(s, dict) and s.get("kind") == "monitor.detected"
    }
    monitors = []
    for mid in det.get("expected") or []:
        s = checks.get(mid) or {}
        m = s.get("measurements") or {}
        detail = s.get("detail") or {}
        monitors.append(
            MonitorView(
                id=str(mid),
                title=str((det.get("titles") or {}).get(mid) or mid),
                window=str((det.get("windows") or {}).get(mid) or ""),
                verdict=str(s.get("verdict") or "skipped"),
                outcome=str(detail.get("outcome") or "not judged"),
                time_to_detect_s=_num(m.get("time_to_detect_s")),
                time_to_resolve_s=_num(m.get("time_to_resolve_s")),
                resolution_s=_num(m.get("resolution_s")),
                alerted_ts=_num(m.get("alerted_ts")),
                resolved_ts=_num(m.get("resolved_ts")),
                evidence=[str(e) for e in s.get("evidence") or []],
            )
        )
    return DetectionView(
        source=det.get("source"),
        env=det.get("env"),
        skipped=det.get("skipped"),
        monitors=monitors,
        noise=[str(n) for n in det.get("noise") or []],
        detect_timeout_s=_num(det.get("detect_timeout_s")),
        resolve_timeout_s=_num(det.get("resolve_timeout_s")),
    )


def _conflict(c: dict[str, Any]) -> str:
    from omnidrill.chaos.conflicts import conflict_text

    head = "left to whoever took the wheel" if c.get("taken_over") else "check by hand"
    return f"{conflict_text(c)} [{head}]"


def _scenario(row: dict[str, Any]) -> ScenarioView:
    """A scenario row: {name (its file), verdict, result (the load runner's to_json()), ...}."""
    raw = row.get("result") if isinstance(row.get("result"), dict) else row
    stats = raw.get("stats") or {}
    traffic: list[dict[str, Any]] = []
    for row in stats.get("seconds") or []:
        statuses: dict[str, int] = {}
        codes: dict[str, int] = {}
        for fn in (row.get("functions") or {}).values():
            for k, v in (fn.get("statuses") or {}).items():
                statuses[k] = statuses.get(k, 0) + int(v)
            for k, v in (fn.get("codes") or {}).items():
                codes[k] = codes.get(k, 0) + int(v)
        traffic.append(
            {
                "t": row["t"],
                "count": row.get("requests", 0),
                "by_status": statuses,
                "by_code": codes,
                "latency_ms": row.get("latency_ms") or {},
            }
        )
    checks = []
    for i, v in enumerate(raw.get("verdicts") or []):
        status = str(v.get("status", "?"))
        summary = str(v.get("summary", ""))
        checks.append(
            CheckView(
                phase="verdicts",
                index=i,
                kind="ratelimit",
                name=str(v.get("clause") or f"verdict {i + 1}"),
                is_check=True,
                verdict=status,
                clause=v.get("clause"),
                evidence=[Evidence(summary)] if status != "passed" and summary else [],
                summary=summary,
            )
        )
    reason = row.get("reason") or raw.get("inconclusive") or "; ".join(raw.get("failed") or [])
    file = str(row.get("name") or "")
    name = str(raw.get("name") or Path(file).stem or "scenario")
    total = stats.get("total") or {}
    canary = _canary(raw) if raw.get("type") == "canary" else None
    return ScenarioView(
        name=name,
        file=file or None,
        verdict=str(row.get("verdict") or raw.get("outcome") or "running"),
        reason=str(reason or ""),
        started_ts=_num(raw.get("started_ts", raw.get("started_at"))),
        ended_ts=_num(raw.get("ended_ts", raw.get("ended_at"))),
        thresholds=[_threshold(t) for t in raw.get("thresholds") or [] if isinstance(t, dict)],
        checks=checks,
        traffic=_traffic(traffic, None),
        totals={k: total.get(k) for k in ("requests", "failures", "error_rate", "rps")},
        canary=canary,
    )


def _canary(raw: dict[str, Any]) -> CanaryView:
    """A canary's result (`omnidrill.canary.runner.CanaryResult.to_json()`)."""
    metrics = []
    for m in raw.get("metrics") or []:
        if not isinstance(m, dict):
            continue
        shown = m.get("shown") or {}
        samples = m.get("samples") or {}
        metrics.append(
            CanaryMetricView(
                label=str(m.get("metric", "?")),
                measure=m.get("measure"),
                status=str(m.get("status", "inconclusive")),
                reason=str(m.get("reason", "")),
                rule=str(m.get("rule", "")),
                critical=bool(m.get("critical")),
                baseline=str(shown.get("baseline", "-")),
                canary=str(shown.get("canary", "-")),
                change=str(shown.get("change", "-")),
                p_value=_num(m.get("p_value")),
                alpha=_num(m.get("alpha")),
                effect_a=_num(m.get("effect_a")),
                n_baseline=int(samples.get("baseline") or 0),
                n_canary=int(samples.get("canary") or 0),
                needed=int(m.get("needed") or 0),
                series=bool(m.get("series")),
                distributions=m.get("distributions") or {},
            )
        )
    return CanaryView(
        verdict=str(raw.get("verdict", "inconclusive")),
        source=str(raw.get("source", "active")),
        score=_num(raw.get("score")),
        reasons=[str(r) for r in raw.get("reasons") or []],
        sides={str(k): str(v) for k, v in (raw.get("sides") or {}).items()},
        per_side=raw.get("per_side") or {},
        metrics=metrics,
        drills=[d for d in raw.get("drills") or [] if isinstance(d, dict)],
        window=raw.get("window"),
    )


def run_view(doc: dict[str, Any]) -> RunView:
    """The RunView of a loaded journal, every string scrubbed of secrets once more."""
    doc = secrets.scrub_obj(doc)
    target = doc.get("target") or {}
    if not isinstance(target, dict):
        target = {"name": str(target)}
    exit_code = doc.get("exit_code")
    status = str(doc.get("status", "running"))
    # no exit code: the run was killed; the journal holds what happened until then
    verdict = EXIT_VERDICT.get(exit_code, "error") if isinstance(exit_code, int) else "incomplete"
    traffic = [r for r in doc.get("traffic") or [] if isinstance(r, dict) and "t" in r]
    events = [e for e in doc.get("events") or [] if isinstance(e, dict)]
    return RunView(
        run_id=str(doc.get("run_id", "?")),
        target=str(target.get("name", "?")),
        environment=str(target.get("environment", "?")),
        status=status,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        verdict=verdict,
        started_at=doc.get("started_at"),
        ended_at=doc.get("ended_at"),
        started_ts=_num(doc.get("started_ts")),
        duration_s=_num(doc.get("duration_s")),
        host=str(doc.get("host", "")),
        omnidrill_version=str(doc.get("omnidrill_version", "")),
        journal_version=str(doc.get("version", "")),
        argv=[str(a) for a in doc.get("argv") or []],
        drills=[_drill(d, traffic, events) for d in doc.get("drills") or [] if isinstance(d, dict)],
        scenarios=[_scenario(s) for s in doc.get("scenarios") or [] if isinstance(s, dict)],
        pending_undos=[u for u in doc.get("pending_undos") or [] if isinstance(u, dict)],
        events=events,
    )


def read_run(path: Path | str) -> RunView:
    return run_view(load_journal(path))
