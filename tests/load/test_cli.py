"""`omnidrill load` as a user runs it: exit codes, what a failure says, a run across "machines"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from omnidrill.netutil import free_port

from .helpers import fake_profile, fake_target

pytestmark = pytest.mark.serial

SCENARIO = """\
type: load
name: {name}
users: 3
duration: {duration}
clients: 10
pacing: {{per_user_rps: 10}}
tasks:
  - function: wallet-balance
    body: {{address: "${{address}}"}}
thresholds:
  all: [{thresholds}]
"""


def write(tmp_path: Path, name: str, thresholds: str, duration: str = "3s") -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, thresholds=thresholds, duration=duration))
    return path


def omnidrill(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "omnidrill.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def target_file(tmp_path_factory: pytest.TempPathFactory):
    with fake_target(instances=1, delay_ms=1) as ports:
        path = tmp_path_factory.mktemp("profile") / "fake.yaml"
        path.write_text(yaml.safe_dump(fake_profile(ports)))
        yield path


def test_exit_codes_and_what_a_failure_says(target_file: Path, tmp_path: Path) -> None:
    good = write(tmp_path, "good", '"p95 < 5s", "error_rate < 1%"')
    bad = write(tmp_path, "bad", '"p95 < 5s", "rps > 100000"')
    ok = omnidrill(
        "load", str(good), "--target", str(target_file), "--report-dir", "r1", cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASSED" in ok.stdout and (tmp_path / "r1/scenarios/good/scenario-good.json").exists()
    # the same run folder as `run`, which `omnidrill report` renders again
    for name in ("journal.json", "report.html", "junit.xml", "summary.md"):
        assert (tmp_path / "r1" / name).is_file(), name
    journal = json.loads((tmp_path / "r1" / "journal.json").read_text())
    assert (journal["status"], journal["exit_code"]) == ("passed", 0)
    assert [s["verdict"] for s in journal["scenarios"]] == ["passed"]
    (tmp_path / "r1" / "report.html").unlink()
    again = omnidrill("report", "r1", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "r1" / "report.html").is_file()
    assert ok.stdout.splitlines()[-2:] == [
        "report: r1/report.html",
        "history of runs: index.html; latest points at the newest run",
    ]
    no = omnidrill(
        "load", str(bad), "--target", str(target_file), "--report-dir", "r2", cwd=tmp_path
    )
    assert no.returncode == 1, no.stdout + no.stderr
    assert "rps > 100000: FAILED, measured" in no.stdout and "/s under" in no.stdout
    assert "p95 < 5s: ok" in no.stdout
    assert "test-anon-key" not in no.stdout + no.stderr  # keys never printed
    journal = json.loads((tmp_path / "r2" / "journal.json").read_text())
    assert (journal["status"], journal["exit_code"]) == ("failed", 1)
    assert "rps > 100000" in (tmp_path / "r2" / "summary.md").read_text()


def test_a_malformed_threshold_is_a_usage_error_with_file_and_line(
    target_file: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, "typo", '"p95 < 5s", "eror_rate < 1%"')
    out = omnidrill("load", str(path), "--target", str(target_file), cwd=tmp_path)
    assert out.returncode == 2
    assert "typo.yaml:11" in out.stderr and "unknown metric 'eror_rate'" in out.stderr


def test_master_and_worker_as_on_two_machines(target_file: Path, tmp_path: Path) -> None:
    path = write(tmp_path, "dist", '"error_rate < 1%", "requests > 10"', duration="4s")
    port = str(free_port())
    common = ["--target", str(target_file), "--master-port", port]
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omnidrill.cli",
            "load",
            str(path),
            *common,
            "--master",
            "--expect-workers",
            "1",
            "--report-dir",
            "m",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = omnidrill(
        "load",
        str(path),
        *common,
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--report-dir",
        "w",
        cwd=tmp_path,
    )
    out, _ = master.communicate(timeout=120)
    assert master.returncode == 0, out
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert "PASSED" in out and "requests > 10: ok" in out
    assert "the master judges" in worker.stdout
    assert (tmp_path / "m" / "journal.json").is_file()  # the master writes the run folder
    assert not (tmp_path / "w" / "journal.json").exists()  # a worker has no verdict to write
