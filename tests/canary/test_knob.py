"""`omnidrill up`'s knob for canary demos: refused where it cannot mean a worse canary."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

WIDE = {**os.environ, "COLUMNS": "200"}  # messages on one line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--degrade-last-latency-ms", "20"], "needs --instances 2 or more"),
        (["--instances", "2", "--degrade-last-error-rate", "120"], "a percentage (0-100)"),
        (["--instances", "2", "--degrade-last-latency-ms", "-1"], "must be >= 0"),
    ],
)
def test_the_knob_refuses_what_is_not_a_worse_canary(args: list[str], words: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "omnihub_ref", "--base-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=WIDE,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert words in proc.stdout + proc.stderr


def test_the_knob_is_in_up_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "omnihub_ref", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=WIDE,
    ).stdout
    assert "--degrade-last-latency-ms" in out and "--degrade-last-error-rate" in out
    assert "off by default" in out
