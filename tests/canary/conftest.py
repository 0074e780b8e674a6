"""Fixtures of the canary tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ledgers, locks and halt files of this test only (a canary run takes the run's lock)."""
    state = tmp_path / "state"
    monkeypatch.setenv("OMNIDRILL_STATE_DIR", str(state))
    return state
