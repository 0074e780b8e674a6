"""Run the reference stack as a child process, for tests and tools that need a live target."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from omnidrill import secrets
from omnidrill.errors import Inconclusive


@contextlib.contextmanager
def launch_stack(
    args: list[str],
    tmp_dir: Path,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Start `python -m omnihub_ref ARGS` and yield (profile path, profile dict).

    Ready means the profile is written and every instance answers health. The child's output
    goes to tmp_dir/stack.log; `env` adds to (or overrides) the environment it inherits. The
    stack is stopped (SIGTERM, then SIGKILL) on exit.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    profile_path = tmp_dir / "profile.yaml"
    profile_path.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "omnihub_ref",
        "--profile-out",
        str(profile_path),
        "--run-dir",
        str(tmp_dir / "run"),
        *args,
    ]
    log_path = tmp_dir / "stack.log"
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env
        )
        try:
            profile = _wait_ready(proc, profile_path, log_path, timeout_s)
            yield profile_path, profile
        finally:
            _stop(proc)


def _wait_ready(
    proc: subprocess.Popen[bytes], profile_path: Path, log_path: Path, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    profile: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Inconclusive(
                f"the stack exited with code {proc.returncode} before it was ready:\n"
                + _tail(log_path)
            )
        if profile is None and profile_path.exists():
            profile = yaml.safe_load(profile_path.read_text(encoding="utf-8"))
            keys = profile.get("keys", {})
            secrets.register(*(v.get("value") for v in keys.values() if isinstance(v, dict)))
        if profile is not None and all(_healthy(u) for u in profile["instances"]):
            return profile
        time.sleep(0.1)
    raise Inconclusive(f"the stack was not ready after {timeout_s:.0f} s:\n" + _tail(log_path))


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/functions/v1/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return secrets.scrub("\n".join(text.splitlines()[-lines:]))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
