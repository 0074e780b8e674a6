"""Fixtures of the message tests: a copy of the shipped YAML to make mistakes in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("targets", "chaos", "scenarios", "monitors", "dashboards")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped YAML folders (tests add their own files beside them)."""
    root = tmp_path_factory.mktemp("project")
    for folder in SHIPPED:
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("local.yaml"))
    return root
