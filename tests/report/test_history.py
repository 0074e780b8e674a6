"""reports/index.html after three real runs of one target: all three, with their trend."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from omnidrill.errors import UsageError
from omnidrill.report import publish, update_index
from omnidrill.report.history import collect

from .runs import FAILING, PASSING, run_drills


class Rows(HTMLParser):
    """Collects the data-* attributes of every run row and every target section."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []
        self.targets: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "run":
            self.rows.append(a)
        if tag == "section" and a.get("class") == "target":
            self.targets.append(a)


def test_index_after_three_runs(
    real_run: tuple[int, Path],
    stack_profile: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path / "reports"
    root.mkdir()
    first = root / "run-1"
    shutil.copytree(real_run[1].parent, first)  # passing, failing, aborted: 1 of 3 passed
    publish(first / "journal.json")
    state = tmp_path_factory.mktemp("state")
    assert run_drills(stack_profile, [PASSING], root / "run-2", state) == 0
    publish(root / "run-2" / "journal.json")
    assert run_drills(stack_profile, [PASSING, FAILING], root / "run-3", state) == 1
    written = publish(root / "run-3" / "journal.json")
    assert written.warnings == []

    index = root / "index.html"
    html = index.read_text()
    parser = Rows()
    parser.feed(html)
    assert [t["id"] for t in parser.targets] == ["target-local"]
    assert parser.targets[0]["data-runs"] == "3"
    runs = [json.loads((root / f"run-{i}" / "journal.json").read_text()) for i in (1, 2, 3)]
    assert [r["data-run"] for r in parser.rows] == [r["run_id"] for r in reversed(runs)]
    assert [r["data-verdict"] for r in parser.rows] == ["failed", "passed", "aborted"]
    # pass rate per run, newest first: 1 of 2, 1 of 1, 1 of 3
    assert re.findall(r"\d+/\d+ \(\d+%\)", html) == ["1/2 (50%)", "1/1 (100%)", "1/3 (33%)"]
    # the trend chart: pass rate annotated per run, and time to effect per drill
    chart = html[html.index("<svg") : html.index("</svg>")]
    assert [x for x in re.findall(r"(\d+)%", chart) if x in {"33", "100", "50"}] == [
        "33",
        "100",
        "50",
    ]
    assert "passing" in chart  # the legend of the time-to-effect lines
    summaries = collect(root)
    assert [len(s.effect_s) for s in summaries] == [1, 1, 1]
    assert (root / "latest").resolve() == (root / "run-3").resolve()
    assert (root / "latest" / "report.html").exists()
    for r in parser.rows:
        assert (root / next(s.folder for s in summaries if s.run_id == r["data-run"])).is_dir()


def test_index_skips_folders_that_are_not_runs_and_refuses_a_missing_root(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "journal.json").write_text('{"kind": "something else"}')
    path = update_index(tmp_path)
    assert "No runs yet" in path.read_text()
    assert not (tmp_path / "latest").exists()
    with pytest.raises(UsageError, match="no such reports folder"):
        update_index(tmp_path / "missing")
