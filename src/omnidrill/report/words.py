"""Words the reports share: verdict labels, the run's headline, clause titles."""

from __future__ import annotations

from omnidrill.report.model import RunView, verdict_rank

VERDICT_LABEL = {
    "passed": "passed",
    "failed": "FAILED",
    "aborted": "ABORTED",
    "inconclusive": "INCONCLUSIVE",
    "skipped": "skipped",
    "error": "ERROR",
    "rollback_failed": "ROLLBACK FAILED",
    "refused": "REFUSED",
    "incomplete": "INCOMPLETE",
    "not_checked": "NOT CHECKED",
    "not_run": "NOT RUN",
    "running": "running",
}
VERDICT_ICON = {
    "passed": "✅",
    "failed": "❌",
    "aborted": "⛔",
    "inconclusive": "❔",
    "skipped": "⏭️",
    "error": "💥",
    "rollback_failed": "🚨",
    "refused": "🚫",
    "incomplete": "⚠️",
}
# Exit codes (README) and the verdict of the run they mean.
EXIT_VERDICT = {
    0: "passed",
    1: "failed",
    2: "refused",
    3: "aborted",
    4: "rollback_failed",
    5: "inconclusive",
}

# The project's contract (docs/contract.md, one section per clause id) and its clauses in a
# few words each, for the coverage table.
CONTRACT_DOC = "docs/contract.md"
CLAUSE_TITLES = {
    "S1": "wrong or missing keys refused; the anon key cannot change controls",
    "S2": "errors are JSON and leak no key, DSN or stack trace",
    "C1": "controls unreadable: fail closed",
    "C2": "kill switch refuses every operation (503)",
    "C3": "operator takeover refuses operations not allowed (403)",
    "C4": "safe mode refuses side effects, serves reads",
    "C5": "a change is enforced everywhere within controls_ttl",
    "C6": "every change of the controls is audited",
    "C7": "a refused request has no side effect",
    "A1": "large trades wait for approval (202)",
    "A2": "retries while pending, mismatched retries refused",
    "A3": "approved executes once; rejected refused",
    "A4": "expired approvals refused (410)",
    "R1": "a burst gets exactly `limit` answers",
    "R2": "a client under the limit is never refused",
    "R3": "429 carries Retry-After, honoured",
    "R4": "clients are counted apart",
    "R5": "the limit is global across instances",
    "R6": "health is not rate limited",
    "R7": "Redis down: trades refused, reads as declared",
    "I1": "one key, one broadcast, same answers",
    "I2": "same key, different body: 422",
    "P1": "primary down: served by the fallback",
    "P2": "both providers down: 503, nothing broadcast",
    "P3": "primary back: traffic returns",
    "O1": "the monitors that name the drill alert, then resolve",
    "O2": "the target's own failures reach Sentry with their trace id",
}


def label(verdict: str) -> str:
    return VERDICT_LABEL.get(verdict, verdict.upper())


def headline(run: RunView) -> str:
    """One line: the verdict first, then what ran, where and when."""
    counts = run.counts()
    total = len(run.drills) + len(run.scenarios)
    parts = [f"{n} {label(v)}" for v, n in sorted(counts.items(), key=lambda i: verdict_rank(i[0]))]
    what = f"{total} item(s): " + ", ".join(parts) if total else "nothing ran"
    code = f"exit {run.exit_code}" if run.exit_code is not None else "no exit code"
    mttd = run.mean_time_to_detect()
    detected = f"; mean time to detect {fmt_s(mttd[0])} over {mttd[1]} drill(s)" if mttd else ""
    return f"omnidrill {label(run.verdict)} ({code}) on {run.target}: {what}{detected}"


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"
