"""The pytest plugin: drills as test items, checks as sub-results; inert without its option."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

ROOT = Path(__file__).resolve().parents[1]
DRILLS = ROOT / "tests" / "report" / "drills"


def _pytest(cwd: Path, *args: str, state: Path | None = None) -> subprocess.CompletedProcess:
    """A separate pytest session in cwd, with its own empty config (not this project's)."""
    (cwd / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "COLUMNS": "200"}
    if state is not None:
        env["OMNIDRILL_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:locust", "-p", "no:cacheprovider",
         "-c", str(cwd / "pytest.ini"), "--rootdir", str(cwd), *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """A team's folder with a passing and a failing drill under chaos/."""
    (tmp_path / "chaos").mkdir()
    for name in ("passing.yaml", "failing.yaml"):
        shutil.copy(DRILLS / name, tmp_path / "chaos" / name)
    return tmp_path


@pytest.fixture(scope="module")
def stack_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from omnidrill.launch import launch_stack

    with launch_stack(["--fast", "--base-port", "0"], tmp_path_factory.mktemp("stack")) as (
        path,
        _profile,
    ):
        yield path


def test_plugin_is_installed_and_inert_without_its_option(suite: Path) -> None:
    helped = _pytest(suite, "--help")
    assert "--omnidrill-target=PROFILE" in helped.stdout
    done = _pytest(suite, "chaos/")
    assert done.returncode == 5, done.stdout  # no tests collected: YAML files are left alone
    assert "collected 0 items" in done.stdout
    assert not (suite / "reports").exists()


def test_passing_and_failing_drills_are_test_items(
    suite: Path, stack_profile: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    done = _pytest(
        suite, "--omnidrill-target", str(stack_profile), "chaos/", "-v",
        "--junitxml", str(suite / "junit.xml"),
        state=tmp_path_factory.mktemp("state"),
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "collected 2 items" in out
    assert "chaos/passing.yaml::passing PASSED" in out
    assert "chaos/failing.yaml::failing FAILED" in out
    # each check is a sub-result, named as the report names it
    assert "SUBPASSED[method 2: wallet-balance is refused within the TTL] (clause='C5')" in out
    assert "SUBPASSED[method 3: every function is refused] (clause='C2')" in out
    assert "SUBFAILED[method 2: wallet-balance is refused (it is not)] (clause='C4')" in out
    assert "status 200, expected 503" in out

    xml = JUnitXml.fromfile(str(suite / "junit.xml"))
    cases = {c.name: c for s in xml for c in s}
    assert set(cases) == {"passing", "failing"}
    assert cases["passing"].is_passed
    failures = [r for r in cases["failing"].result if isinstance(r, Failure)]
    assert failures and "expected 503" in failures[0].message
    props = {p.get("name"): p.get("value") for p in cases["passing"]._elem.iter("property")}
    assert props["clauses"] == "C2,C5" and props["exit_code"] == "0"
    report = Path(props["report"])
    assert report.is_file() and report.parent.parent == suite / "reports"


def test_a_bad_target_is_a_usage_error(suite: Path) -> None:
    done = _pytest(suite, "--omnidrill-target", "targets/nowhere.yaml", "chaos/")
    assert done.returncode == 4  # pytest's usage error
    assert "--omnidrill-target targets/nowhere.yaml" in done.stderr
    assert "not found" in done.stderr
