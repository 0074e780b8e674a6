"""Helpers of the load tests: the small fake target (any limiter) and a profile for it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omnidrill.netutil import free_port, wait_for_port

FAKE_TARGET = Path(__file__).with_name("fake_target.py")
ANON = "test-anon-key"


def fake_profile(ports: list[int], **limits: Any) -> dict[str, Any]:
    """A profile (plain dict, as a YAML file would hold it) pointing at the fake target."""
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    return {
        "name": "fake",
        "base_url": urls[0],
        "instances": urls,
        "keys": {"anon": {"value": ANON}, "service_role": {"value": "test-service-key"}},
        "clients": {"forwarded_for": True},
        "controls": {"kind": "postgrest", "url": f"{urls[0]}/rest/v1"},
        "limits": limits or {},
    }


@contextmanager
def fake_target(
    instances: int = 1, limiter: str = "none", limit: int = 20, window: int = 5, delay_ms: float = 0
) -> Iterator[list[int]]:
    """Start tests/load/fake_target.py as a child process; yield its ports."""
    ports = [free_port() for _ in range(instances)]
    cmd = [sys.executable, str(FAKE_TARGET), "--ports", ",".join(map(str, ports))]
    cmd += ["--limiter", limiter, "--limit", str(limit), "--window", str(window)]
    cmd += ["--delay-ms", str(delay_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for p in ports:
            wait_for_port("127.0.0.1", p, timeout=20)
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
