"""What `run` and `halt` say: opt-in integrations that cannot work refuse before anything is
touched, halt's exit codes, where the history of runs goes, no verdict said twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from load.helpers import fake_profile
from omnidrill.chaos.console import verdict_with_reason
from omnidrill.netutil import free_port
from test_production_guard import TINY, CountingTarget

ROOT = Path(__file__).resolve().parents[2]
RunCli = Callable[..., tuple[int, str, str]]
GUARDED = (
    (ROOT / "chaos" / "kill-switch.yaml")
    .read_text()
    .replace("max_duration: 60s", "max_duration: 60s\nabort_if:\n  - monitor_alerts: 4242")
)


def _profile(folder: Path, url: str) -> None:
    """targets/fake.yaml, a dev profile pointing at url."""
    (folder / "targets").mkdir(exist_ok=True)
    profile = fake_profile([int(url.rsplit(":", 1)[1])])
    (folder / "targets" / "fake.yaml").write_text(yaml.safe_dump(profile))


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingTarget]:
    """A project folder whose `fake` profile points at a target that counts what it gets."""
    target = CountingTarget()
    _profile(tmp_path, target.url)
    (tmp_path / "chaos").mkdir()
    (tmp_path / "chaos" / "guarded.yaml").write_text(GUARDED)
    for name in ("DD_API_KEY", "DD_APP_KEY", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMNIDRILL_STATE_DIR", str(tmp_path / "state"))
    try:
        yield target
    finally:
        target.close()


KILL_SWITCH = str(ROOT / "chaos" / "kill-switch.yaml")
DD_MISSING = (
    "DD_API_KEY and DD_APP_KEY not set: export the Datadog API key (DD_API_KEY) and application "
    "key (DD_APP_KEY) of the organisation to manage"
)


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (
            [KILL_SWITCH, "--mute-monitors"],
            f"error: --mute-monitors needs Datadog, nothing was touched: {DD_MISSING}",
        ),
        (
            ["chaos/guarded.yaml"],
            "error: chaos/guarded.yaml (abort_if monitor_alerts) needs Datadog, nothing was "
            f"touched: {DD_MISSING}",
        ),
        (
            [KILL_SWITCH, "--notify-slack"],
            "error: --notify-slack needs the environment variable SLACK_WEBHOOK_URL (a webhook "
            "URL)",
        ),
        (  # a dry run says it too: the run it previews would be refused
            [KILL_SWITCH, "--mute-monitors", "--dry-run"],
            f"error: --mute-monitors needs Datadog, nothing was touched: {DD_MISSING}",
        ),
    ],
)
def test_an_integration_that_cannot_work_refuses_before_anything_is_sent(
    counted: CountingTarget,
    omnidrill_cli: RunCli,
    tmp_path: Path,
    args: list[str],
    first_line: str,
) -> None:
    code, _out, err = omnidrill_cli("run", *args, "-t", "fake", "--report-dir", "r", cwd=tmp_path)
    assert code == 2, err
    assert err.splitlines()[0] == first_line
    assert counted.count == 0, f"the target received {counted.count} request(s)"
    assert not (tmp_path / "r").exists()


def test_halt_on_a_target_that_cannot_be_reached_exits_5(
    omnidrill_cli: RunCli, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    _profile(tmp_path, url)
    code, _out, err = omnidrill_cli("halt", "-t", "fake", cwd=tmp_path)
    assert code == 5, err
    assert err.startswith(f"error: control tables unreachable at {url}/rest/v1/emergency_controls")


@pytest.mark.parametrize(
    ("verdict", "reason", "shown"),
    [
        ("aborted", "aborted by Ctrl-C (undos ran)", "[red]aborted[/] by Ctrl-C (undos ran)"),
        ("aborted", "aborted: guardrail: over 5 s", "[red]aborted[/]: guardrail: over 5 s"),
        ("failed", "2 check(s) failed", "[red]failed[/] 2 check(s) failed"),
        ("passed", "", "[green]passed[/]"),
    ],
)  # fmt: skip
def test_a_verdict_is_said_once(verdict: str, reason: str, shown: str) -> None:
    assert verdict_with_reason(verdict, reason) == shown


@pytest.mark.serial  # drives Locust, like the load CLI tests
def test_a_run_says_where_the_history_of_runs_went(tmp_path: Path) -> None:
    """With --report-dir out/run1, index.html and latest are in out/: the last lines say so."""
    target = CountingTarget()
    try:
        _profile(tmp_path, target.url)
        (tmp_path / "scenarios").mkdir()
        (tmp_path / "scenarios" / "tiny.yaml").write_text(TINY)
        done = subprocess.run(
            [sys.executable, "-m", "omnidrill.cli", "run", "scenarios/tiny.yaml", "-t", "fake",
             "--report-dir", "out/run1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env={**os.environ, "COLUMNS": "200", "OMNIDRILL_STATE_DIR": str(tmp_path / "s")},
        )  # fmt: skip
    finally:
        target.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.splitlines()[-2:] == [
        "report: out/run1/report.html",
        "history of runs: out/index.html; out/latest points at the newest run",
    ]
    assert (tmp_path / "out" / "index.html").is_file()
    assert (tmp_path / "out" / "latest").resolve() == (tmp_path / "out" / "run1").resolve()


def test_a_dry_run_shows_a_scenario_whole(
    counted: CountingTarget, omnidrill_cli: RunCli, tmp_path: Path
) -> None:
    smoke, rate = (
        str(ROOT / "scenarios" / "smoke.yaml"),
        str(ROOT / "scenarios" / "rate-limit.yaml"),
    )
    code, out, err = omnidrill_cli("run", smoke, rate, "-t", "fake", "--dry-run", cwd=tmp_path)
    assert code == 0, err
    url = counted.url
    assert out.splitlines() == [
        f"scenario {smoke}: smoke (load): 20 s of mixed reads; fails on slow answers, errors or "
        "too little throughput",
        f"  target fake (dev), 1 instance(s): {url}",
        "  10 user(s), started at 10/s, for 20 s; 5 requests/s per user; 200 client identities; "
        "timeout 10 s per request",
        "  tasks (weight): wallet-balance 3 (POST /functions/v1/wallet-balance, expects 200), "
        "omnilink-agent 2 (POST /functions/v1/omnilink-agent, expects 200), healthz 1 "
        "(GET /functions/v1/healthz, expects 200)",
        "  thresholds: all: p95 < 500ms, error_rate < 1%, rps > 30; wallet-balance: p99 < 1s",
        "",
        f"scenario {rate}: rate-limit (rate_limit): R1-R6 against the profile's "
        "limits.rate_limit / rate_window_s / rate_algorithm",
        f"  target fake (dev), 1 instance(s): {url}",
        "  checks R1, R2, R3, R4, R5, R6 on wallet-balance: 100 requests per 60 s (fixed_window; "
        "the profile's limits)",
        "  floods for 3 window(s) at 3x the limit, a quiet client at 80% of it, a burst of 1.5x "
        "it; about 180 s plus one Retry-After",
        "  judged clause by clause with evidence (CONTRACT section 4)",
        "",
        "dry run: nothing was touched",
    ]
    assert counted.count == 0
