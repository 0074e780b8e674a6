"""Real runs of the chaos engine for the report tests: drills against the reference stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
DRILLS = HERE / "drills"
PASSING = DRILLS / "passing.yaml"
FAILING = DRILLS / "failing.yaml"
ABORTED = DRILLS / "aborted.yaml"


@contextmanager
def state_dir(path: Path) -> Iterator[None]:
    """Ledgers and local locks of these runs live in a folder of their own."""
    old = os.environ.get("OMNIDRILL_STATE_DIR")
    os.environ["OMNIDRILL_STATE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OMNIDRILL_STATE_DIR", None)
        else:
            os.environ["OMNIDRILL_STATE_DIR"] = old


def run_drills(profile_path: Path, files: list[Path], report_dir: Path, state: Path) -> int:
    """Run drills through the engine's Python API, as `omnidrill run` does; the exit code."""
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.cliutil import load_profile

    with state_dir(state):
        profile = load_profile(str(profile_path))
        return run(files, profile, RunOptions(target=str(profile_path), report_dir=report_dir))
