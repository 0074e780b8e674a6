"""`summary.md`: a short Markdown table fit for a pull-request comment or a chat message."""

from __future__ import annotations

from omnidrill.report.model import DrillView, RunView, verdict_rank
from omnidrill.report.words import VERDICT_ICON, fmt_s, headline, label

MAX_REASON = 140


def _cell(text: str) -> str:
    """Markdown table cells hold one line and no unescaped pipe."""
    return " ".join(text.split()).replace("|", "\\|")


def _short(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _why(d: DrillView) -> str:
    if d.verdict == "passed":
        if not d.skipped_checks:
            return ""
        return _short(f"{len(d.skipped_checks)} check(s) skipped: {d.skipped_checks[0]}")
    if d.reason:
        return _short(d.reason)
    for check in d.failed_checks:
        if check.evidence:
            return _short(f"{check.label}: {check.evidence[0].text}")
        return _short(check.label)
    return ""


def render_summary(run: RunView, report_link: str | None = None) -> str:
    """The summary: headline, one row per drill and scenario, why anything did not pass."""
    lines = [f"## {VERDICT_ICON.get(run.verdict, '')} {headline(run)}".replace("##  ", "## "), ""]
    meta = [f"target `{run.target}` ({run.environment})"]
    if run.started_at:
        meta.append(f"started {run.started_at}")
    if run.duration_s is not None:
        meta.append(f"took {fmt_s(run.duration_s)}")
    meta.append(f"run `{run.run_id}`")
    lines += [" · ".join(meta), ""]
    if run.drills:
        lines += [
            "| drill | clauses | verdict | time to effect | time to recover | time to detect "
            "| time to resolve | why |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for d in sorted(run.drills, key=lambda d: (verdict_rank(d.verdict), d.name)):
            tte, ttr = d.measure("time to effect"), d.measure("time to recover")
            ttd, tts = d.measure("time to detect"), d.measure("time to resolve")
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        d.title or d.name,
                        ", ".join(d.clauses),
                        f"{VERDICT_ICON.get(d.verdict, '')} {label(d.verdict)}".strip(),
                        *(
                            m.text() if m and m.seconds is not None else "-"
                            for m in (tte, ttr, ttd, tts)
                        ),
                        _why(d),
                    )
                )
                + " |"
            )
        lines.append("")
    if run.scenarios:
        lines += ["| scenario | verdict | checks held | duration | why |", "|---|---|---|---|---|"]
        for s in run.scenarios:
            judged = [t.passed for t in s.thresholds] + [c.verdict == "passed" for c in s.checks]
            judged += [m.status == "pass" for m in s.canary.metrics] if s.canary else []
            held = f"{sum(judged)}/{len(judged)}"
            skipped = [c.clause or c.name for c in s.checks if c.verdict == "skipped"]
            if skipped:
                held += f" ({len(skipped)} skipped: {', '.join(skipped)})"
            failed = [t.message for t in s.thresholds if not t.passed]
            why = _short(s.reason or "; ".join(failed)) if s.verdict != "passed" else ""
            if s.canary:  # its own verdict (marginal included) and score lead, then why
                score = f", score {s.canary.score:.1f}" if s.canary.score is not None else ""
                reasons = [r for r in s.canary.reasons if not r.startswith("score ")]
                why = _short(
                    f"canary {s.canary.verdict}{score}" + "".join(f"; {r}" for r in reasons)
                )
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        s.name,
                        f"{VERDICT_ICON.get(s.verdict, '')} {label(s.verdict)}".strip(),
                        held,
                        fmt_s(s.duration_s),
                        why,
                    )
                )
                + " |"
            )
        lines.append("")
    monitors = [d for d in run.drills if d.detection and not d.detection.skipped]
    if monitors:
        lines += ["Monitors each drill must trip (O1), and after how long they alerted:", ""]
        for d in monitors:
            det = d.detection
            assert det is not None
            shown = ", ".join(
                f"`{m.id}` {m.time_to_detect_s:.2f} s"
                if m.time_to_detect_s is not None
                else f"`{m.id}` **{m.outcome}**"
                for m in det.monitors
            )
            noise = f" (noise: {', '.join(det.noise)})" if det.noise else ""
            lines.append(f"- {d.name}: {det.alerted}/{len(det.monitors)}: {shown}{noise}")
        lines.append("")
    if run.pending_undos:
        lines += [
            f"**{len(run.pending_undos)} undo(s) did not run: the target may be left changed.** "
            f"Run `omnidrill recover --target {run.target}`.",
            "",
        ]
    for d in run.drills:
        if d.conflicts:
            lines += [f"**Undo conflicts in {d.title or d.name}** (left as found):", ""]
            lines += [f"- {c}" for c in d.conflicts] + [""]
    if report_link:
        lines += [f"Report: {report_link}", ""]
    return "\n".join(lines)
