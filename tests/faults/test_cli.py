"""`omnidrill faultproxy` and `python -m omnidrill.faults.server` as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from omnidrill.errors import ExitCode

from .helpers import TCPServer, connect, recv_exactly

OMNIDRILL = str(Path(sys.executable).with_name("omnidrill"))


def _start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on " not in line:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"no 'listening on' line: {line!r}; stderr: {err}")
    return proc, line.rsplit("listening on ", 1)[1].strip()


@pytest.mark.parametrize(
    ("prefix", "dash"),
    [
        ([OMNIDRILL, "faultproxy"], "--"),
        ([OMNIDRILL, "faultproxy"], "-"),  # toxiproxy-server's spelling, -seed included
        ([sys.executable, "-m", "omnidrill.faults.server"], "--"),
    ],
)
def test_serves_config_and_stops_on_sigterm(
    prefix: list[str], dash: str, tmp_path: Path, echo: TCPServer
) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps([{"name": "echo", "upstream": echo.addr, "listen": "127.0.0.1:0"}])
    )
    flags = [f"{dash}host", "127.0.0.1", f"{dash}port", "0", f"{dash}config", str(config)]
    seed = ["-seed", "7"] if dash == "-" else []
    proc, url = _start([*prefix, *flags, *seed])
    try:
        shown = httpx.get(f"{url}/proxies", timeout=5).json()
        port = int(shown["echo"]["listen"].rsplit(":", 1)[1])
        with connect(port) as s:
            s.sendall(b"via cli")
            assert recv_exactly(s, 7) == b"via cli"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    # read through the text wrappers: _start's readline may have buffered more than a line
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, err
    assert "echo: 127.0.0.1:" in out


def test_bad_config_is_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text('{"name": "not a list"}')
    proc = subprocess.run(
        [OMNIDRILL, "faultproxy", "--port", "0", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "expected a JSON array of proxy objects" in proc.stderr
    config.write_text('[{"name": "x"}]')
    proc = subprocess.run(
        [sys.executable, "-m", "omnidrill.faults.server", "--port", "0", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "missing required field: upstream at proxy 1" in proc.stderr


def test_metrics_flags_are_refused_not_ignored() -> None:
    proc = subprocess.run(
        [OMNIDRILL, "faultproxy", "-port", "0", "-proxy-metrics"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "error: -proxy-metrics: this fault proxy has no /metrics endpoint" in proc.stderr
