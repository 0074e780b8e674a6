"""Console output of a run: progress as it goes, and a final table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from omnidrill import secrets

COLOURS = {
    "passed": "green",
    "done": "cyan",
    "failed": "red",
    "skipped": "yellow",
    "inconclusive": "magenta",
    "aborted": "red",
    "rollback_failed": "bold red",
    "not_run": "yellow",
    "error": "bold red",
}


def _v(verdict: str) -> str:
    return f"[{COLOURS.get(verdict, 'white')}]{verdict}[/]"


def _s(seconds: float | None, resolution: float | None = None) -> str:
    if seconds is None:
        return "-"
    text = f"{seconds:.2f} s"
    if resolution:
        text += f" ±{resolution:.2f}"
    return text


def verdict_with_reason(verdict: str, reason: str) -> str:
    """`aborted by Ctrl-C`, not `aborted aborted by Ctrl-C`: a reason may start with the verdict."""
    reason = secrets.scrub(reason)
    word = verdict.replace("_", " ")
    if reason.lower().startswith(word):
        return _v(verdict) + escape(reason[len(word) :])
    return f"{_v(verdict)} {escape(reason)}".rstrip()


class Progress:
    """Prints drills and steps as they run (scrubbed)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)

    def line(self, text: str) -> None:
        self.console.print(escape(secrets.scrub(text)), soft_wrap=True)

    def drill_start(self, file: str, drill: Any) -> None:
        clauses = ", ".join(drill.contract)
        self.console.print(
            f"[bold]▶ {escape(drill.title)}[/] [dim]({escape(file)}; {clauses})[/]", soft_wrap=True
        )

    def step(self, res: Any) -> None:
        extra = ""
        m = res.measurements
        if "waited_s" in m:
            extra = f" after {m['waited_s']:.2f} s (±{m.get('resolution_s', 0):.2f})"
        clause = f" [{res.clause}]" if res.clause else ""
        self.console.print(
            f"  {_v(res.verdict)} {escape(res.phase)}: {escape(secrets.scrub(res.name))}"
            f"{escape(clause)}{escape(extra)}",
            soft_wrap=True,
        )
        if res.verdict in ("failed", "inconclusive", "not_run", "error", "skipped"):
            for e in res.evidence[:6]:
                self.console.print(f"      [dim]{escape(secrets.scrub(e))}[/]", soft_wrap=True)

    def drill_end(self, out: Any) -> None:
        self.console.print(f"  → {verdict_with_reason(out.verdict, out.reason)}", soft_wrap=True)

    def table(self, outcomes: list[Any], scenarios: list[Any], journal_path: str) -> None:
        t = Table(title="omnidrill run", show_lines=False)
        for col in ("drill", "clauses", "verdict", "time to effect", "time to recover"):
            t.add_column(col)
        for o in outcomes:
            m = o.measurements
            t.add_row(
                escape(o.title),
                ", ".join(o.contract),
                _v(o.verdict),
                _s(m.get("time_to_effect_s"), m.get("time_to_effect_resolution_s")),
                _s(m.get("time_to_recover_s"), m.get("time_to_recover_resolution_s")),
            )
        for s in scenarios:
            t.add_row(
                escape(s["name"]), ", ".join(s.get("clauses", [])), _v(s["verdict"]), "-", "-"
            )
        self.console.print(t)
        skipped = [(o.title, o.reason) for o in outcomes if o.verdict == "skipped"]
        for title, reason in skipped:
            self.console.print(f"[yellow]skipped[/] {escape(title)}: {escape(reason)}")
        for o in outcomes:
            for c in o.skipped_checks:
                self.console.print(f"[yellow]check skipped[/] {escape(o.title)}: {escape(c)}")
            for left in o.left_changed:
                self.console.print(
                    f"[bold red]LEFT CHANGED — undo by hand:[/] {escape(left)}", soft_wrap=True
                )
        self.console.print(f"journal: {escape(journal_path)}")
