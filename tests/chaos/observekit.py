"""Helpers of the detection tests: a project copy to edit, and a drill's O1 checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from chaos.drillkit import ROOT


def project_copy(tmp: Path) -> Path:
    """chaos/, monitors/ and scenarios/ of the project, for a test to edit."""
    dest = tmp / "project"
    for folder in ("chaos", "monitors", "scenarios"):
        shutil.copytree(ROOT / folder, dest / folder)
    return dest


def o1_steps(drill: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The drill's O1 checks by monitor id."""
    return {
        s["detail"]["monitor"]: s
        for s in drill["steps"]
        if s["kind"] == "monitor.detected" and "monitor" in s["detail"]
    }
