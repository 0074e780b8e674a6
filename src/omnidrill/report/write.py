"""Write a run's reports from its journal, and publish them (index, latest, Slack)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from omnidrill.errors import UsageError
from omnidrill.report.history import summarise, update_index, write_summary
from omnidrill.report.journal import read_run
from omnidrill.report.model import RunView

FORMATS = {"html": "report.html", "junit": "junit.xml", "md": "summary.md"}


@dataclass
class Written:
    """What write_reports produced: the run as read, the files, the summary text."""

    run: RunView
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: str = ""
    warnings: list[str] = field(default_factory=list)
    index: Path | None = None  # the history index publish() updated (beside it: `latest`)


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """`html,junit,md` (any subset, any order) or a list of those; anything else is an error."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for raw in items:
        f = raw.strip().lower()
        if f in {"markdown", "summary"}:
            f = "md"
        if f == "xml":
            f = "junit"
        if f not in FORMATS:
            from omnidrill.spec.suggest import did_you_mean

            raise UsageError(
                f"unknown report format {raw!r}: expected any of {', '.join(FORMATS)}"
                + did_you_mean(f, FORMATS)
            )
        if f not in out:
            out.append(f)
    if not out:
        raise UsageError(f"no report format given: expected any of {', '.join(FORMATS)}")
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def contract_link(out: Path) -> str:
    """Where the report in `out` finds docs/contract.md: relative to the project it ran in."""
    import os

    from omnidrill.report.words import CONTRACT_DOC

    doc = Path.cwd() / CONTRACT_DOC
    if not doc.exists():
        return CONTRACT_DOC
    return Path(os.path.relpath(doc, out.resolve())).as_posix()


def write_reports(
    journal_path: Path | str,
    out_dir: Path | str | None = None,
    formats: Iterable[str] | str = tuple(FORMATS),
) -> Written:
    """Render the journal into out_dir (default: the journal's folder) in the given formats."""
    from omnidrill.report.html import render_html
    from omnidrill.report.junit import render_junit
    from omnidrill.report.markdown import render_summary

    journal_path = Path(journal_path)
    if journal_path.is_dir():
        journal_path = journal_path / "journal.json"
    wanted = parse_formats(formats)
    run = read_run(journal_path)
    out = Path(out_dir) if out_dir is not None else journal_path.parent
    out.mkdir(parents=True, exist_ok=True)
    written = Written(run=run, out_dir=out)
    link = (out / FORMATS["html"]) if "html" in wanted else None
    written.summary = render_summary(run, str(link) if link else None)
    renderers: dict[str, Callable[[], str]] = {
        "html": lambda: render_html(run, contract_link(out)),
        "junit": lambda: render_junit(run),
        "md": lambda: written.summary,
    }
    for f in wanted:
        path = out / FORMATS[f]
        _atomic_write(path, renderers[f]())
        written.files[f] = path
    write_summary(summarise(run, out), out)
    return written


def publish(
    journal_path: Path | str,
    *,
    out_dir: Path | str | None = None,
    formats: Iterable[str] | str = tuple(FORMATS),
    index_root: Path | str | None = None,
    slack_webhook: str | None = None,
) -> Written:
    """What `run` does at its end: write the reports, update the index and `latest`, notify.

    Only writing the reports may raise. The index and Slack are best effort: a failure there
    becomes a warning in `Written.warnings`, and the reports stay written.
    """
    written = write_reports(journal_path, out_dir, formats)
    root = Path(index_root) if index_root is not None else written.out_dir.parent
    try:
        written.index = update_index(root)
    except Exception as exc:  # the run's own reports are already safe
        written.warnings.append(f"index not updated in {root}: {type(exc).__name__}: {exc}")
    if slack_webhook:
        from omnidrill.notify.slack import post_summary

        where = str(written.files.get("html") or written.out_dir)
        result = post_summary(slack_webhook, written.summary, report_location=where)
        if not result.ok:
            written.warnings.append(result.detail)
    return written
