"""Fixtures of the observe tests: a fake Datadog API, its environment, the project root."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnidrill.observe.intake.server import ThreadedIntake

from .fake_datadog import FakeDatadog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_dd() -> Iterator[FakeDatadog]:
    fake = FakeDatadog().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def intake() -> Iterator[ThreadedIntake]:
    """An omnidrill intake on an OS-chosen port, in a thread of this process."""
    srv = ThreadedIntake().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def dd_env(fake_dd: FakeDatadog, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """DD_* variables pointing the real SDK at the fake, with quick back-off."""
    env = fake_dd.sdk_env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped monitors/ and dashboards/ that a test may edit."""
    for folder in ("monitors", "dashboards"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


@pytest.fixture
def run_cli(omnidrill_cli):  # type: ignore[no-untyped-def]
    """Run `omnidrill ARGS...` in-process through the real entry point; (exit code, out, err)."""
    return omnidrill_cli
