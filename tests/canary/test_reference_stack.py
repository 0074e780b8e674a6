"""Canaries against the reference stack (`omnidrill up --fast --instances 2`, baseline the first
instance, canary the second): the shipped scenario passes through `omnidrill run`, and an
identical canary passes ten runs in a row (no false fail)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omnidrill.canary.runner import run_canary
from omnidrill.launch import launch_stack
from omnidrill.load.runner import load_scenario
from omnidrill.profile import TargetProfile, template_variables

pytestmark = pytest.mark.serial  # load with latency comparisons: alone, not beside other tests
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "scenarios" / "canary.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    args = ["--fast", "--instances", "2", "--base-port", "0"]
    with launch_stack(args, tmp_path_factory.mktemp("stack")) as (path, profile):
        yield path, profile


def test_the_shipped_canary_passes_through_omnidrill_run(
    stack: tuple[Path, dict[str, Any]], tmp_path: Path, _state_dir: Path
) -> None:
    path, profile = stack
    env = {**os.environ, "OMNIDRILL_STATE_DIR": str(_state_dir)}
    cmd = [sys.executable, "-m", "omnidrill.cli", "run", str(SHIPPED), "--target", str(path)]
    proc = subprocess.run(
        [*cmd, "--report-dir", str(tmp_path / "report")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    journal = json.loads((tmp_path / "report" / "journal.json").read_text())
    canary = journal["scenarios"][0]["result"]
    assert canary["verdict"] == "pass"
    assert canary["sides"]["baseline"].startswith(f"baseline: {profile['instances'][0]}")
    assert canary["sides"]["canary"].startswith(f"canary: {profile['instances'][1]}")
    assert len(canary["metrics"]) == 9 and canary["drills"][0]["verdict"] == "passed"
    drill = journal["drills"][0]
    assert drill["verdict"] == "passed" and profile["instances"][1] in drill["title"]


def test_an_identical_canary_passes_ten_runs_in_a_row(
    stack: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, profile_dict = stack
    profile = TargetProfile.model_validate(profile_dict)
    # the shipped scenario without trades (more requests a metric in a short run), 12 s a run:
    # 10 s judged, about 300 agent requests a side, p95 needs 200
    reads_only = profile.model_copy(deep=True)
    reads_only.trade.allow_broadcast = False
    sc = load_scenario(SHIPPED, template_variables(reads_only, {}))
    assert sc.load is not None
    sc = sc.model_copy(update={"drills": [], "load": sc.load.model_copy(update={"duration": 12.0})})
    assert len(sc.metrics) == 6
    runs = []
    for i in range(10):
        result = run_canary(
            sc, profile, out_dir=tmp_path / f"run{i}", load_profile=lambda n: profile
        )
        runs.append(result)
    verdicts = [r.verdict for r in runs]
    assert verdicts == ["pass"] * 10, [line for r in runs for line in r.lines()]
    # every run judged every metric on enough requests
    assert all(m.status == "pass" for r in runs for m in r.judgement.metrics)  # type: ignore[union-attr]
