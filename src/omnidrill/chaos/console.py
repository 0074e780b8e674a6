"""Console output of a run: progress as it goes, and a final table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from omnidrill import secrets
from omnidrill.chaos.conflicts import conflict_text

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
    "conflict": "bold red",
}


def _v(verdict: str) -> str:
    return f"[{COLOURS.get(verdict, 'white')}]{verdict}[/]"


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def clause_ranges(clauses: list[str]) -> str:
    """`C2,C5,C6,C7,O1` -> `C2,C5-C7,O1`: a drill's clauses in a narrow column."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run.clear()

    for c in clauses:
        prev = run[-1] if run else ""
        if (
            prev
            and c[:1] == prev[:1]
            and c[1:].isdigit()
            and prev[1:].isdigit()
            and int(c[1:]) == int(prev[1:]) + 1
            and len(run) >= 1
        ):
            run.append(c)
            continue
        flush()
        run.append(c)
    flush()
    return ",".join(out)


def brief_list(item: str, shown: int = 3) -> str:
    """'what: a, b, c, d, e' as 'what: a, b, c and 2 more (the journal lists all)'.

    A CI log reads the console line by line; dozens of transaction hashes bury the verdicts."""
    head, sep, tail = item.partition(": ")
    parts = tail.split(", ") if sep else []
    if len(parts) <= shown:
        return item
    more = len(parts) - shown
    return f"{head}: {', '.join(parts[:shown])} and {more} more (the journal lists all)"


def short_name(file: str) -> str:
    """A drill's or scenario's file stem: what fits a CI log's 80 columns."""
    return Path(file).stem or file


def detection_line(out: Any) -> str | None:
    """Which monitors a drill expected and how each did, on one line."""
    det = getattr(out, "detection", None) or {}
    expected = det.get("expected") or []
    if not expected or det.get("skipped"):
        return None
    by_id = {s.detail.get("monitor"): s for s in out.steps if s.kind == "monitor.detected"}
    parts = []
    for mid in expected:
        s = by_id.get(mid)
        m = s.measurements if s is not None else {}
        if "time_to_detect_s" in m:
            parts.append(f"{mid} {m['time_to_detect_s']:.2f} s")
        else:
            parts.append(f"{mid} {(s.detail.get('outcome') if s else None) or 'not judged'}")
    alerted = sum(
        1 for mid in expected if "time_to_detect_s" in getattr(by_id.get(mid), "measurements", {})
    )
    return f"{short_name(out.file)}: {alerted}/{len(expected)} alerted: " + ", ".join(parts)


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
        if "time_to_detect_s" in m:
            extra = f": alerted after {m['time_to_detect_s']:.2f} s"
            if "time_to_resolve_s" in m:
                extra += f", OK {m['time_to_resolve_s']:.2f} s after the rollbacks"
            extra += f" (±{m.get('resolution_s', 0):.2f})"
        clause = f" [{res.clause}]" if res.clause else ""
        if res.phase == "undo" and res.detail.get("did"):  # which undos ran, said as they run
            extra = f": {res.detail['did']}"
        self.console.print(
            f"  {_v(res.verdict)} {escape(res.phase)}: {escape(secrets.scrub(res.name))}"
            f"{escape(clause)}{escape(extra)}",
            soft_wrap=True,
        )
        if res.verdict in ("failed", "inconclusive", "not_run", "error", "skipped", "conflict"):
            for e in res.evidence[:6]:
                self.console.print(f"      [dim]{escape(secrets.scrub(e))}[/]", soft_wrap=True)

    def drill_end(self, out: Any) -> None:
        self.console.print(f"  → {verdict_with_reason(out.verdict, out.reason)}", soft_wrap=True)

    def table(self, outcomes: list[Any], scenarios: list[Any], journal_path: str) -> None:
        """Short names and seconds, so that a CI log 80 columns wide shows one line a drill;
        full titles and each time's resolution are in the report."""
        # one space between columns (the box's), none at the edges: 80 columns hold it
        t = Table(title="omnidrill run", box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
        t.add_column("drill", no_wrap=True)
        t.add_column("clauses", no_wrap=True)
        t.add_column("verdict", no_wrap=True)
        for col in ("effect", "recover", "detect", "resolve"):
            t.add_column(col, justify="right", no_wrap=True)
        for o in outcomes:
            m = o.measurements
            t.add_row(
                escape(short_name(o.file)),
                clause_ranges(o.contract),
                _v(o.verdict),
                _s(m.get("time_to_effect_s")),
                _s(m.get("time_to_recover_s")),
                _s(m.get("time_to_detect_s")),
                _s(m.get("time_to_resolve_s")),
            )
        for s in scenarios:
            t.add_row(
                escape(short_name(s["name"])),
                clause_ranges(s.get("clauses", [])),
                _v(s["verdict"]),
                "-",
                "-",
                "-",
                "-",
            )
        self.console.print(t)
        self.console.print(
            "[dim]seconds: effect and recovery of the fault; detect = first expected monitor "
            "alerting, resolve = last one OK again (full titles, resolutions: the report)[/]"
        )
        for o in outcomes:
            line = detection_line(o)
            if line:
                self.console.print(f"monitors {escape(line)}", soft_wrap=True)
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
            for c in o.conflicts:
                head = "left to whoever took the wheel" if c.get("taken_over") else "check by hand"
                self.console.print(
                    f"[bold red]CONFLICT — left as found, {head}:[/] "
                    f"{escape(secrets.scrub(conflict_text(c)))}",
                    soft_wrap=True,
                )
            for item in o.not_cleaned:
                self.console.print(
                    f"[yellow]not cleaned[/] {escape(o.title)}: "
                    f"{escape(brief_list(secrets.scrub(item)))}",
                    soft_wrap=True,
                )
        self.console.print(f"journal: {escape(journal_path)}")
