"""One production guard for every command that sends traffic: without `--confirm NAME` a
production profile is refused (exit 2) and the target receives nothing, which a target that
counts every request it gets shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ANON, SERVICE = "prod-guard-anon-key-0123456789", "prod-guard-service-key-0123456789"
TINY = """type: load
name: tiny
description: one user for a second, enough to be counted
users: 1
spawn_rate: 1
duration: 1s
pacing: {per_user_rps: 5}
tasks:
  - function: wallet-balance
    body: {address: "${address}"}
thresholds:
  all: ["error_rate < 100%"]
"""


class CountingTarget:
    """Answers 200 `{}` to anything and counts every request (any method, any path)."""

    def __init__(self) -> None:
        self.count = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                with lock:
                    outer.count += 1
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                body = json.dumps({"status": "ok"}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_HEAD = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prod(tmp_path: Path) -> Iterator[tuple[CountingTarget, Path]]:
    target = CountingTarget()
    profile = {
        "name": "prod",
        "environment": "production",
        "base_url": target.url,
        "keys": {"anon": {"env": "PROD_GUARD_ANON"}, "service_role": {"env": "PROD_GUARD_SR"}},
        "clients": {"forwarded_for": True},
        "controls": {"kind": "postgrest", "url": f"{target.url}/rest/v1"},
    }
    path = tmp_path / "targets" / "prod.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(profile))
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "tiny.yaml").write_text(TINY)
    try:
        yield target, path
    finally:
        target.close()


def _omnidrill(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PROD_GUARD_ANON": ANON,
        "PROD_GUARD_SR": SERVICE,
        "OMNIDRILL_STATE_DIR": str(cwd / "state"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


REFUSED = [
    ["load", str(ROOT / "scenarios" / "smoke.yaml")],
    ["load", str(ROOT / "scenarios" / "rate-limit.yaml")],
    ["load", str(ROOT / "scenarios" / "smoke.yaml"), "--workers", "2"],
    ["load", str(ROOT / "scenarios" / "smoke.yaml"), "--master", "--expect-workers", "1"],
    ["load", str(ROOT / "scenarios" / "smoke.yaml"), "--worker", "--master-host", "127.0.0.1"],
    ["load", "scenarios/tiny.yaml", "--confirm", "staging"],
    ["run", str(ROOT / "scenarios" / "smoke.yaml")],
    ["run", str(ROOT / "chaos" / "kill-switch.yaml")],
]


@pytest.mark.parametrize("args", REFUSED, ids=lambda a: " ".join(Path(x).name for x in a))
def test_a_production_profile_without_confirm_is_refused_and_sent_nothing(
    prod: tuple[CountingTarget, Path], args: list[str], tmp_path: Path
) -> None:
    target, profile = prod
    done = _omnidrill(tmp_path, *args, "--target", str(profile), "--report-dir", "r")
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "production profile" in out and "--confirm prod" in out, out
    assert target.count == 0, f"the target received {target.count} request(s)"
    assert not (tmp_path / "r").exists(), "a refused command writes no run folder"


def test_the_pytest_plugin_applies_the_same_guard(
    prod: tuple[CountingTarget, Path], tmp_path: Path
) -> None:
    target, profile = prod
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PROD_GUARD_ANON": ANON, "PROD_GUARD_SR": SERVICE}
    env["OMNIDRILL_STATE_DIR"] = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:locust", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
         "--omnidrill-target", str(profile), str(ROOT / "chaos" / "kill-switch.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "--omnidrill-confirm prod" in out, out
    assert target.count == 0


def test_with_confirm_naming_the_profile_load_is_sent(
    prod: tuple[CountingTarget, Path], tmp_path: Path
) -> None:
    """The control: the same target does count a confirmed run, so the zeros above mean it."""
    target, profile = prod
    done = _omnidrill(
        tmp_path, "load", "scenarios/tiny.yaml", "--target", str(profile), "--confirm", "prod"
    )
    assert done.returncode != 2, done.stdout + done.stderr
    assert target.count > 0


def test_validate_is_exempt(prod: tuple[CountingTarget, Path], tmp_path: Path) -> None:
    target, profile = prod
    done = _omnidrill(tmp_path, "validate", "scenarios/tiny.yaml", "--target", str(profile))
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.count == 0
