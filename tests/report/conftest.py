"""One reference stack and one real run (a passing, a failing and an aborted drill) per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .runs import ABORTED, FAILING, PASSING, run_drills


@pytest.fixture(scope="session")
def stack_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`omnidrill up --fast` on OS-chosen ports; the path of the profile it wrote."""
    from omnidrill.launch import launch_stack

    with launch_stack(["--fast", "--base-port", "0"], tmp_path_factory.mktemp("stack")) as (
        path,
        _profile,
    ):
        yield path


@pytest.fixture(scope="session")
def real_run(stack_profile: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """(exit code, journal path) of one run of the three fixture drills, reports written."""
    from omnidrill.report import write_reports

    root = tmp_path_factory.mktemp("reports")
    report_dir = root / "run-1"
    code = run_drills(
        stack_profile, [PASSING, FAILING, ABORTED], report_dir, tmp_path_factory.mktemp("state")
    )
    journal = report_dir / "journal.json"
    write_reports(journal)
    return code, journal
