"""`junit.xml`: a testsuite per drill (and per scenario), a testcase per check.

The testsuites/testsuite/testcase/failure|error|skipped shape that Jenkins, GitLab and GitHub
test reporters read. A failed check is a <failure> whose message is its first piece of
evidence; an aborted, inconclusive or crashed step is an <error>; a skipped one <skipped>.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from omnidrill.report.model import CheckView, DrillView, RunView, ScenarioView
from omnidrill.report.words import fmt_s

ERROR_VERDICTS = {"error", "inconclusive", "aborted", "rollback_failed", "running", "not_run"}
# Characters XML 1.0 cannot carry at all, even escaped (an answer body may hold them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass
class Case:
    """One testcase before it becomes XML."""

    name: str
    classname: str
    time: float
    outcome: str  # passed | failure | error | skipped
    message: str = ""
    kind: str = ""
    text: str = ""


def _time(seconds: float | None) -> str:
    return f"{max(seconds or 0.0, 0.0):.3f}"


def _check_text(check: CheckView) -> str:
    lines = [f"{check.label} [{check.kind}]" + (f" proves {check.clause}" if check.clause else "")]
    lines += [f"evidence: {e.text}" for e in check.evidence]
    for key, value in check.measurements.items():
        lines.append(f"{key}: {value}")
    shown = [r for r in check.requests if (r.get("status") or 0) >= 400 or r.get("error")]
    for r in (shown or check.requests)[:10]:
        status = r.get("status") if r.get("status") is not None else "no answer"
        code = f" {r['code']}" if r.get("code") else ""
        lines.append(f"request: {r.get('method', '?')} {r.get('target', '?')} -> {status}{code}")
    if check.requests_total > len(check.requests):
        lines.append(f"({check.requests_total} requests in all)")
    return "\n".join(lines)


def failure_message(check: CheckView, limit: int = 500) -> str:
    """A check's evidence in one line: what CI shows next to the failed case."""
    text = "; ".join(e.text for e in check.evidence) or check.verdict
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_case(check: CheckView, classname: str) -> Case:
    if check.verdict == "failed":
        outcome = "failure"
    elif check.verdict in ERROR_VERDICTS:
        outcome = "error"
    elif check.verdict == "skipped":
        outcome = "skipped"
    else:
        outcome = "passed"
    message = failure_message(check)
    kind = f"{check.clause} {check.verdict}" if check.clause else check.verdict
    return Case(
        check.label, classname, check.duration_s or 0.0, outcome, message, kind, _check_text(check)
    )


def _outcome_case(
    name: str,
    classname: str,
    verdict: str,
    reason: str | None,
    duration_s: float | None,
    cases: list[Case],
) -> list[Case]:
    """One case for a drill's or scenario's own outcome, where none of its cases carries it."""
    carried = any(c.outcome in {"failure", "error"} for c in cases)
    if verdict == "skipped" and not cases:
        return [Case(name, classname, 0.0, "skipped", reason or "skipped")]
    if verdict in ERROR_VERDICTS and not carried:
        return [
            Case(name, classname, duration_s or 0.0, "error", reason or verdict, verdict, reason)
        ]
    if verdict == "failed" and not carried:
        return [
            Case(
                name, classname, duration_s or 0.0, "failure", reason or "failed", "failed", reason
            )
        ]
    return []


def drill_cases(drill: DrillView, target: str) -> list[Case]:
    """The drill's checks as cases, plus one case for a drill-level outcome no check carries."""
    classname = f"omnidrill.{target}.{drill.name}"
    cases = [_check_case(c, classname) for c in drill.checks]
    return cases + _outcome_case(
        "drill", classname, drill.verdict, drill.reason, drill.duration_s, cases
    )


def scenario_cases(s: ScenarioView, target: str) -> list[Case]:
    classname = f"omnidrill.{target}.scenario.{s.name}"
    cases = [
        Case(
            f"threshold [{t.scope}] {t.expr}" + (f" ({t.phase})" if t.phase else ""),
            classname,
            0.0,
            "passed" if t.passed else "failure",
            "" if t.passed else t.message,
            "threshold",
            t.message,
        )
        for t in s.thresholds
    ]
    cases += [_check_case(c, classname) for c in s.checks]
    cases += canary_cases(s, classname)
    return cases + _outcome_case("scenario", classname, s.verdict, s.reason, s.duration_s, cases)


def canary_cases(s: ScenarioView, classname: str) -> list[Case]:
    """A case per canary metric: worse is a failure, too few samples an error."""
    out = []
    for m in s.canary.metrics if s.canary else []:
        outcome = {"pass": "passed", "worse": "failure"}.get(m.status, "error")
        text = (
            f"baseline {m.baseline}, canary {m.canary}, change {m.change}; worse if "
            f"{m.rule}; p = {m.p_value}, alpha = {m.alpha}, "
            f"A = {m.effect_a}; samples {m.n_baseline} / {m.n_canary} (needs {m.needed})"
        )
        message = "" if outcome == "passed" else m.reason
        out.append(Case(f"metric {m.label}", classname, 0.0, outcome, message, m.status, text))
    return out


def _suite(
    parent: ET.Element,
    name: str,
    cases: list[Case],
    *,
    duration: float | None,
    timestamp: str | None,
    host: str,
    props: dict[str, str],
) -> dict[str, int]:
    counts = {
        "tests": len(cases),
        "failures": sum(c.outcome == "failure" for c in cases),
        "errors": sum(c.outcome == "error" for c in cases),
        "skipped": sum(c.outcome == "skipped" for c in cases),
    }
    suite = ET.SubElement(
        parent,
        "testsuite",
        {
            "name": _xml(name),
            **{k: str(v) for k, v in counts.items()},
            "time": _time(duration),
            "hostname": host or "localhost",
        },
    )
    if timestamp:
        suite.set("timestamp", timestamp.rstrip("Z").split(".")[0])
    if props:
        pe = ET.SubElement(suite, "properties")
        for k, v in props.items():
            ET.SubElement(pe, "property", {"name": k, "value": _xml(v)})
    for c in cases:
        el = ET.SubElement(
            suite,
            "testcase",
            {"name": _xml(c.name), "classname": _xml(c.classname), "time": _time(c.time)},
        )
        if c.outcome in {"failure", "error"}:
            sub = ET.SubElement(el, c.outcome, {"message": _xml(c.message), "type": _xml(c.kind)})
            sub.text = _xml(c.text)
        elif c.outcome == "skipped":
            ET.SubElement(el, "skipped", {"message": _xml(c.message)})
    return counts


def render_junit(run: RunView) -> str:
    """The whole run as JUnit XML (UTF-8, with declaration)."""
    root = ET.Element("testsuites", {"name": f"omnidrill {run.target} {run.run_id}"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for d in run.drills:
        tte, ttr = d.measure("time to effect"), d.measure("time to recover")
        props = {"clauses": ",".join(d.clauses), "verdict": d.verdict}
        if d.file:
            props["file"] = d.file
        if tte and tte.seconds is not None:
            props["time_to_effect"] = tte.text()
        if ttr and ttr.seconds is not None:
            props["time_to_recover"] = ttr.text()
        for what in ("time to detect", "time to resolve"):
            m = d.measure(what)
            if m and m.seconds is not None:
                props[what.replace(" ", "_")] = m.text()
        if d.reason:
            props["reason"] = d.reason
        counts = _suite(
            root,
            d.name,
            drill_cases(d, run.target),
            duration=d.duration_s,
            timestamp=run.started_at,
            host=run.host,
            props=props,
        )
        for k in totals:
            totals[k] += counts[k]
    for s in run.scenarios:
        props = {"verdict": s.verdict, "duration": fmt_s(s.duration_s)}
        if s.file:
            props["file"] = s.file
        counts = _suite(
            root,
            f"scenario {s.name}",
            scenario_cases(s, run.target),
            duration=s.duration_s,
            timestamp=run.started_at,
            host=run.host,
            props=props,
        )
        for k in totals:
            totals[k] += counts[k]
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", _time(run.duration_s))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
