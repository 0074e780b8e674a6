"""The run history: `reports/index.html` across runs, per target, and `reports/latest`.

Each run folder gets a small `summary.json` (written with its reports) so the index never
has to read every journal again; a folder without one is summarised from its journal.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnidrill.errors import UsageError
from omnidrill.report.charts import HistoryPoint, history_svg
from omnidrill.report.model import RunView

SUMMARY_FILE = "summary.json"
SUMMARY_FORMAT = "omnidrill.report.summary/1"
LATEST = "latest"
MAX_CHART_RUNS = 60


@dataclass
class RunSummary:
    """What the index shows of one run."""

    folder: str
    run_id: str
    target: str
    environment: str
    verdict: str
    exit_code: int | None
    started_at: str | None
    started_ts: float | None
    duration_s: float | None
    drills: dict[str, str] = field(default_factory=dict)  # name -> verdict
    effect_s: dict[str, float] = field(default_factory=dict)  # name -> time to effect
    scenarios: dict[str, str] = field(default_factory=dict)
    has_html: bool = False

    @property
    def ran(self) -> int:
        return sum(v != "skipped" for v in self.drills.values())

    @property
    def passed(self) -> int:
        return sum(v == "passed" for v in self.drills.values())

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ran if self.ran else None


def summarise(run: RunView, folder: Path) -> RunSummary:
    effect = {}
    for d in run.drills:
        m = d.measure("time to effect")
        if m is not None and m.seconds is not None:
            effect[d.name] = m.seconds
    return RunSummary(
        folder=folder.name,
        run_id=run.run_id,
        target=run.target,
        environment=run.environment,
        verdict=run.verdict,
        exit_code=run.exit_code,
        started_at=run.started_at,
        started_ts=run.started_ts,
        duration_s=run.duration_s,
        drills={d.name: d.verdict for d in run.drills},
        effect_s=effect,
        scenarios={s.name: s.verdict for s in run.scenarios},
        has_html=(folder / "report.html").exists(),
    )


def write_summary(summary: RunSummary, folder: Path) -> Path:
    path = folder / SUMMARY_FILE
    data = {"format": SUMMARY_FORMAT, **asdict(summary)}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _read_summary(folder: Path) -> RunSummary | None:
    from omnidrill.report.journal import JournalError, read_run

    path = folder / SUMMARY_FILE
    journal = folder / "journal.json"
    if path.exists() and (not journal.exists() or path.stat().st_mtime >= journal.stat().st_mtime):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") == SUMMARY_FORMAT:
                data.pop("format")
                summary = RunSummary(**data)
                summary.folder = folder.name
                summary.has_html = (folder / "report.html").exists()
                return summary
        except (json.JSONDecodeError, TypeError):
            pass  # rebuilt from the journal below
    if not journal.exists():
        return None
    try:
        summary = summarise(read_run(journal), folder)
    except JournalError:
        return None  # not a run of ours: the index lists what it can read
    write_summary(summary, folder)
    return summary


def collect(reports_root: Path) -> list[RunSummary]:
    """Every run under reports_root (one level down), oldest first."""
    out = []
    for folder in sorted(p for p in reports_root.iterdir() if p.is_dir() and not p.is_symlink()):
        summary = _read_summary(folder)
        if summary is not None:
            out.append(summary)
    out.sort(key=lambda s: (s.started_ts or 0.0, s.folder))
    return out


def _point_label(s: RunSummary) -> str:
    if s.started_ts is None:
        return s.folder[:16]
    return time.strftime("%m-%d %H:%M", time.gmtime(s.started_ts))


def _target_view(target: str, runs: list[RunSummary]) -> dict[str, Any]:
    shown = runs[-MAX_CHART_RUNS:]
    points = [
        HistoryPoint(i, _point_label(s), s.pass_rate, dict(s.effect_s)) for i, s in enumerate(shown)
    ]
    drills = sorted({d for s in runs for d in s.drills})
    return {
        "name": target,
        "runs": list(reversed(runs)),  # newest first in the table
        "drills": drills,
        "chart": history_svg(points) if points else None,
        "charted": len(shown),
    }


def _update_latest(reports_root: Path, runs: list[RunSummary]) -> Path | None:
    """Point `latest` at the newest run (a relative symlink; a text file where links fail)."""
    if not runs:
        return None
    newest = runs[-1].folder
    link = reports_root / LATEST
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        raise UsageError(f"{link} exists and is a folder; move it so `latest` can point at a run")
    try:
        os.symlink(newest, link, target_is_directory=True)
    except OSError:
        link.write_text(newest + "\n", encoding="utf-8")
    return link


def update_index(reports_root: Path | str) -> Path:
    """Rewrite reports_root/index.html from every run folder, and point `latest` at the newest."""
    from omnidrill.report.html import render_index

    reports_root = Path(reports_root)
    if not reports_root.is_dir():
        raise UsageError(f"{reports_root}: no such reports folder")
    runs = collect(reports_root)
    by_target: dict[str, list[RunSummary]] = {}
    for s in runs:
        by_target.setdefault(s.target, []).append(s)
    targets = [_target_view(t, rs) for t, rs in sorted(by_target.items())]
    path = reports_root / "index.html"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_index(targets, len(runs)), encoding="utf-8")
    tmp.replace(path)
    _update_latest(reports_root, runs)
    return path
