"""summary.md, bad journals, `omnidrill report`, and publish() with a Slack sink that refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from notify.webhook_sink import webhook_sink  # tests/ is on sys.path (rootdir packages)
from omnidrill.errors import UsageError
from omnidrill.report import publish
from omnidrill.report.journal import JournalError, load_journal
from omnidrill.report.write import parse_formats


def test_summary_is_a_short_markdown_table(real_run: tuple[int, Path]) -> None:
    text = (real_run[1].parent / "summary.md").read_text()
    lines = text.splitlines()
    assert lines[0].startswith("## ") and "ABORTED (exit 3)" in lines[0]
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == (
        "| drill | clauses | verdict | time to effect | time to recover | time to detect "
        "| time to resolve | why |"
    )
    rows = table[2:]
    assert len(rows) == 3
    # worst first: aborted, failed, passed
    assert "ABORTED" in rows[0] and "guardrail" in rows[0]
    assert "FAILED" in rows[1] and "C4" in rows[1]
    assert "passed" in rows[2] and "±" in rows[2]
    assert all(row.count(" | ") == 7 for row in rows)  # no stray pipe in a cell
    assert len(text) < 3000


def test_bad_journals_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no such journal"):
        load_journal(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(JournalError, match=r"bad\.json:1:2: not JSON"):
        load_journal(bad)
    bad.write_text(json.dumps({"kind": "chaostoolkit"}))
    with pytest.raises(JournalError, match="expected 'omnidrill-run'"):
        load_journal(bad)
    bad.write_text(json.dumps({"kind": "omnidrill-run", "version": "2.0"}))
    with pytest.raises(JournalError, match=r"version .2\.0.; this omnidrill reads version 1\.x"):
        load_journal(bad)
    with pytest.raises(UsageError, match="unknown report format 'pdf'"):
        parse_formats("html,pdf")
    assert parse_formats("md, junit,html") == ["md", "junit", "html"]


def test_report_command_renders_again(real_run: tuple[int, Path], tmp_path: Path) -> None:
    out = tmp_path / "again"
    done = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "report", str(real_run[1]),
         "--format", "junit,md", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "summary.json", "summary.md"]
    assert (out / "junit.xml").read_text() == (real_run[1].parent / "junit.xml").read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "report", str(tmp_path / "nope.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "no such journal" in bad.stderr


def test_slack_post_reaches_the_sink(real_run: tuple[int, Path], tmp_path: Path) -> None:
    journal = tmp_path / "run" / "journal.json"
    journal.parent.mkdir()
    journal.write_bytes(real_run[1].read_bytes())
    with webhook_sink() as sink:
        written = publish(journal, slack_webhook=sink.url)
    assert written.warnings == []
    assert len(sink.posts) == 1
    payload = sink.posts[0]["json"]
    assert "ABORTED (exit 3)" in payload["text"]
    assert "guardrail" in payload["blocks"][1]["text"]["text"]


def test_a_refused_slack_post_leaves_result_and_reports_intact(
    real_run: tuple[int, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "run" / "journal.json"
    journal.parent.mkdir()
    journal.write_bytes(real_run[1].read_bytes())
    before = journal.read_bytes()
    with webhook_sink(status=404, body="no_service") as sink:
        written = publish(journal, slack_webhook=sink.url)
    assert len(sink.posts) == 1
    assert written.run.exit_code == 3 and written.run.verdict == "aborted"
    assert written.warnings == ["Slack post refused: HTTP 404 no_service"]
    assert journal.read_bytes() == before
    for name in ("report.html", "junit.xml", "summary.md"):
        assert (journal.parent / name).stat().st_size > 200
    assert (tmp_path / "index.html").exists()


def test_a_killed_run_renders_as_incomplete_with_its_pending_undos(
    real_run: tuple[int, Path], tmp_path: Path
) -> None:
    from omnidrill.report import write_reports

    doc = load_journal(real_run[1])
    doc.update(status="running", exit_code=None, ended_at=None)
    doc.pop("duration_s", None)
    doc["drills"][-1]["verdict"] = "running"
    doc["pending_undos"] = [
        {"run": doc["run_id"], "seq": 3, "kind": "controls.restore",
         "label": "restore operator_takeover=False"}
    ]  # fmt: skip
    (tmp_path / "journal.json").write_text(json.dumps(doc))
    written = write_reports(tmp_path / "journal.json")
    html = written.files["html"].read_text()
    assert 'data-verdict="incomplete"' in html
    assert "1 undo(s) did not run" in html and "restore operator_takeover=False" in html
    assert "omnidrill recover --target local" in written.summary
    assert written.summary.splitlines()[0].endswith(
        "omnidrill INCOMPLETE (no exit code) on local: 3 item(s): 1 running, 1 FAILED, 1 passed"
    )


def test_left_changed_internal_error_skipped_checks_and_clause_verdicts(
    real_run: tuple[int, Path], tmp_path: Path
) -> None:
    from omnidrill.report import write_reports

    doc = load_journal(real_run[1])
    passing, failing, aborted = doc["drills"]
    passing["skipped_checks"] = ["audit rows: the profile offers no audit table"]
    failing["verdict"] = "rollback_failed"
    failing["left_changed"] = ["restore execution_safe_mode=False: ConnectError: refused"]
    failing["internal_error"] = "Traceback (most recent call last):\n  boom"
    aborted["clauses"] = {"C3": "not_checked"}
    (tmp_path / "journal.json").write_text(json.dumps(doc))
    written = write_reports(tmp_path / "journal.json")
    html = written.files["html"].read_text()
    assert "Left changed on the target, undo by hand" in html
    assert "restore execution_safe_mode=False: ConnectError: refused" in html
    assert "omnidrill itself failed" in html and "boom" in html
    assert "audit rows: the profile offers no audit table" in html
    # not checked because the drill aborted first: the clause reads as the drill's verdict
    assert '<tr data-clause="C3" data-verdict="aborted">' in html
    row = next(line for line in written.summary.splitlines() if "Kill switch" in line)
    assert "1 check(s) skipped: audit rows" in row
