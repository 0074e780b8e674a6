"""`omnidrill run` writes the reports, the index and latest at its end, and posts to Slack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from notify.webhook_sink import webhook_sink

from .runs import PASSING


def _run(
    profile: Path, report_dir: Path, state: Path, env: dict[str, str]
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "run", str(PASSING), "--target", str(profile),
         "--report-dir", str(report_dir), "--notify-slack"],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "OMNIDRILL_STATE_DIR": str(state), "COLUMNS": "200", **env},
    )  # fmt: skip


def test_run_writes_reports_and_posts_the_summary(stack_profile: Path, tmp_path: Path) -> None:
    with webhook_sink() as sink:
        done = _run(stack_profile, tmp_path / "reports" / "r1", tmp_path / "state",
                    {"SLACK_WEBHOOK_URL": sink.url})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "reports" / "r1"
    for name in ("journal.json", "report.html", "junit.xml", "summary.md"):
        assert (out / name).is_file(), name
    assert (tmp_path / "reports" / "index.html").is_file()
    assert (tmp_path / "reports" / "latest").resolve() == out.resolve()
    assert f"report: {out / 'report.html'}" in done.stdout + done.stderr
    assert len(sink.posts) == 1
    assert "omnidrill passed (exit 0) on local" in sink.posts[0]["json"]["text"]


def test_refused_post_is_a_warning_and_keeps_exit_code(stack_profile: Path, tmp_path: Path) -> None:
    with webhook_sink(status=410, body="channel_is_archived") as sink:
        done = _run(stack_profile, tmp_path / "reports" / "r1", tmp_path / "state",
                    {"SLACK_WEBHOOK_URL": sink.url})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: Slack post refused: HTTP 410 channel_is_archived" in done.stdout + done.stderr
    assert sink.url.rsplit("/", 1)[1] not in done.stdout + done.stderr
    assert (tmp_path / "reports" / "r1" / "report.html").is_file()


def test_notify_without_webhook_is_refused_before_anything_runs(
    stack_profile: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLACK_WEBHOOK_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "run", str(PASSING), "--target", str(stack_profile),
         "--report-dir", str(tmp_path / "r"), "--notify-slack"],
        capture_output=True, text=True, timeout=120,
        env={**env, "OMNIDRILL_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert done.returncode == 2
    assert "SLACK_WEBHOOK_URL" in done.stderr
    assert not (tmp_path / "r").exists()
