"""`omnidrill up` as a user runs it: the profile it writes, its ports, and a clean stop."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from facilities import missing
from omnidrill.errors import Inconclusive
from omnidrill.launch import launch_stack
from omnidrill.profile import TargetProfile

PROFILE_KEYS = {
    "name",
    "environment",
    "base_url",
    "instances",
    "keys",
    "clients",
    "controls",
    "faults",
    "rpc_direct",
    "trade",
    "limits",
    "observe",
}


def _up(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omnidrill.cli",
            "up",
            "--profile-out",
            str(tmp / "local.yaml"),
            "--run-dir",
            str(tmp / "run"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )


def _wait_profile(proc: subprocess.Popen[str], path: Path) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"omnidrill up exited early:\n{proc.stdout.read()}")
        if path.exists():
            profile = yaml.safe_load(path.read_text())
            try:
                if httpx.get(f"{profile['base_url']}/functions/v1/healthz").status_code == 200:
                    return profile
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("omnidrill up was not ready in 60 s")


def _free_block(n: int) -> int:
    """A base port whose next n ports are free right now (below the ephemeral range)."""
    for _ in range(50):
        base = random.randrange(20_000, 32_000, 20)
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    missing("a free block of ports")


def _refused(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) != 0


def test_up_writes_a_valid_profile_uses_its_port_block_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    base = _free_block(21)
    proc = _up(
        tmp_path,
        "--base-port",
        str(base),
        "--instances",
        "2",
        "--rate-limit",
        "7",
        "--rate-algorithm",
        "sliding_window",
    )
    try:
        profile = _wait_profile(proc, tmp_path / "local.yaml")
    except BaseException:
        proc.kill()
        raise
    try:
        assert set(profile) == PROFILE_KEYS
        TargetProfile.model_validate(profile)
        assert profile["name"] == "local" and profile["environment"] == "dev"
        assert profile["base_url"] == f"http://127.0.0.1:{base}"
        assert profile["instances"] == [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 20}"]
        assert profile["controls"]["url"] == f"http://127.0.0.1:{base + 1}/rest/v1"
        assert profile["faults"]["toxiproxy_url"] == f"http://127.0.0.1:{base + 4}"
        assert [p["name"] for p in profile["faults"]["proxies"]] == [
            "rpc_primary",
            "rpc_fallback",
            "control_plane",
            "redis",
        ]
        assert profile["clients"] == {"forwarded_for": True}
        assert profile["limits"]["rate_limit"] == 7
        assert profile["limits"]["rate_window_s"] == 60
        assert profile["limits"]["rate_algorithm"] == "sliding_window"
        # the stack's intake: drills read O1 and O2 there, within bounds of a few seconds
        assert profile["observe"] == {"intake": f"http://127.0.0.1:{base + 11}", "env": "local"}
        assert profile["limits"]["detect_timeout_s"] == profile["limits"]["resolve_timeout_s"] == 15
        # a second stack on the same block is refused with a clear message
        clash = _up(tmp_path / "second", "--base-port", str(base))
        out, _ = clash.communicate(timeout=60)
        assert clash.returncode == 2, out
        assert "--base-port" in out and "Traceback" not in out
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stack stopped" in out
    assert "functions #1" in out and "control_plane" in out and "telemetry intake" in out
    # the table shows where things run, never the keys (they are in the profile)
    assert profile["keys"]["anon"]["value"] not in out
    assert profile["keys"]["service_role"]["value"] not in out
    for url in [
        *profile["instances"],
        profile["controls"]["url"],
        profile["faults"]["toxiproxy_url"],
        profile["observe"]["intake"],
    ]:
        assert _refused(url), url


def test_two_stacks_run_side_by_side(tmp_path: Path) -> None:
    with (
        launch_stack(["--base-port", "0"], tmp_path / "a") as (_, a),
        launch_stack(["--base-port", "0", "--fast"], tmp_path / "b") as (_, b),
    ):
        assert a["base_url"] != b["base_url"]
        for p in (a, b):
            key = p["keys"]["anon"]["value"]
            r = httpx.post(
                f"{p['base_url']}/functions/v1/wallet-balance",
                json={"address": "0x" + "11" * 20},
                headers={"apikey": key, "Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200
        assert a["keys"]["anon"] != b["keys"]["anon"]
        assert b["limits"]["rate_limit"] == 20 and a["limits"]["rate_limit"] == 100


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rate-algorithm", "leaky"], "--rate-algorithm must be one of"),
        (["--instances", "0"], "--instances must be between 1 and 32"),
        (["--redis", "http://127.0.0.1:6379"], "--redis must be a redis:// URL"),
        (["--rate-limit", "0"], "rate_limit must be > 0"),
        (["--no-metrics", "--datadog"], "--no-metrics sends nothing, so it excludes --datadog"),
    ],
)
def test_bad_flags_are_refused_clearly(tmp_path: Path, args: list[str], expected: str) -> None:
    with (
        pytest.raises(Inconclusive) as err,
        launch_stack(["--base-port", "0", *args], tmp_path, timeout_s=30),
    ):
        pass
    assert expected in str(err.value)
    assert "Traceback" not in str(err.value)


def test_r5_i1_two_stack_processes_sharing_one_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """The limit and the idempotency keys are global across processes, not only instances."""
    from omnidrill.ethtx import random_raw_tx, tx_hash

    shared = ["--base-port", "0", "--fast", "--redis", redis_url]
    shared += ["--redis-prefix", f"{redis_prefix}twoproc:"]
    with (
        launch_stack(shared, tmp_path / "a") as (_, a),
        launch_stack(shared, tmp_path / "b") as (_, b),
    ):
        # a fresh client, all at once at the start of a fixed window (windows are
        # epoch-aligned), so the burst cannot straddle a boundary however busy the machine
        window = a["limits"]["rate_window_s"]
        time.sleep(window - time.time() % window + 0.05)
        client = f"198.18.{random.randrange(200, 250)}.{random.randrange(1, 250)}"

        def hit(i: int) -> int:
            p = (a, b)[i % 2]
            key = p["keys"]["anon"]["value"]
            return httpx.post(
                f"{p['base_url']}/functions/v1/wallet-balance",
                json={"address": "0x" + "22" * 20},
                headers={
                    "apikey": key,
                    "Authorization": f"Bearer {key}",
                    "X-Forwarded-For": client,
                },
                timeout=10,
            ).status_code

        with ThreadPoolExecutor(max_workers=13) as pool:
            statuses = list(pool.map(hit, range(a["limits"]["rate_limit"] + 6)))
        assert statuses.count(200) == a["limits"]["rate_limit"], statuses

        raw = random_raw_tx()
        body = {"user_id": "two-proc", "amount_usd": 12.5, "raw_tx": raw}
        answers = []
        for p in (a, b, a):
            key = p["keys"]["anon"]["value"]
            answers.append(
                httpx.post(
                    f"{p['base_url']}/functions/v1/execute-trade",
                    json=body,
                    headers={
                        "apikey": key,
                        "Authorization": f"Bearer {key}",
                        "X-Forwarded-For": "198.18.200.8",
                        "Idempotency-Key": f"two-proc-{raw[-12:]}",
                    },
                )
            )
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert all(r.json() == answers[0].json() for r in answers)
        sends = 0
        for p in (a, b):
            for url in p["rpc_direct"].values():
                calls = httpx.get(f"{url}/__calls").json()["calls"]
                sends += sum(
                    1
                    for c in calls
                    if c["method"] == "eth_sendRawTransaction"
                    and tx_hash(c["params"][0]) == tx_hash(raw)
                )
        assert sends == 1


def test_an_unreachable_database_is_inconclusive_and_keeps_its_password(tmp_path: Path) -> None:
    dsn = "postgresql://postgres:s3cret-pw-42@127.0.0.1:1/nowhere"
    with (
        pytest.raises(Inconclusive) as err,
        launch_stack(["--base-port", "0", "--postgres", dsn], tmp_path, timeout_s=30),
    ):
        pass
    assert "exited with code 5" in str(err.value)
    assert "the control store cannot be opened" in str(err.value)
    assert "s3cret-pw-42" not in (tmp_path / "stack.log").read_text()


def test_an_unreachable_redis_is_inconclusive(tmp_path: Path) -> None:
    from omnidrill.netutil import free_port

    url = f"redis://:hush-{free_port()}@127.0.0.1:{free_port()}/0"
    with (
        pytest.raises(Inconclusive) as err,
        launch_stack(["--base-port", "0", "--redis", url], tmp_path, timeout_s=30),
    ):
        pass
    assert "exited with code 5" in str(err.value) and "does not answer PING" in str(err.value)
    assert "hush-" not in (tmp_path / "stack.log").read_text()


PARTS = {
    "postgres",
    "redis",
    "control_api",
    "rpc_primary",
    "rpc_fallback",
    "faultproxy",
    "intake",
    "functions-0",
    "functions-1",
}


def _parts(pid: int) -> dict[str, int]:
    """The supervisor's children, by the part name it gave each (OMNIHUB_PART)."""
    import psutil

    found = {}
    for child in psutil.Process(pid).children():
        try:
            found[child.environ().get("OMNIHUB_PART", child.name())] = child.pid
        except psutil.NoSuchProcess:
            continue
    return found


def _gone(pids: list[int], within_s: float = 15.0) -> list[int]:
    """The pids still alive after waiting up to within_s."""
    import psutil

    deadline = time.monotonic() + within_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
        ]
        time.sleep(0.1)
    return alive


def test_one_process_per_part_and_a_killed_part_stops_up(tmp_path: Path) -> None:
    """Any part: here the telemetry intake, the harness's command run as a part."""
    proc = _up(tmp_path, "--base-port", "0", "--instances", "2", "--fast")
    try:
        _wait_profile(proc, tmp_path / "local.yaml")
        parts = _parts(proc.pid)
        assert set(parts) == PARTS, parts
        os.kill(parts["intake"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 5, out
    assert f"intake (pid {parts['intake']}) was killed by SIGKILL" in out, out
    assert "Traceback" not in out
    assert _gone(list(parts.values())) == [], "every other part is stopped with the stack"


def test_no_part_outlives_a_killed_supervisor(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--base-port", "0", "--fast")
    try:
        profile = _wait_profile(proc, tmp_path / "local.yaml")
        parts = _parts(proc.pid)
        assert len(parts) == len(PARTS) - 1
        left = tmp_path / "run" / f"stack-{proc.pid}"
        pgdata = (left / "pgdata").resolve()
        assert (pgdata / "PG_VERSION").exists()
    finally:
        proc.kill()  # SIGKILL: no handler, no clean-up code runs
        proc.wait(timeout=10)
    assert _gone(list(parts.values())) == [], "the parent-death signal stopped every part"
    assert all(_refused(url) for url in profile["instances"])
    # the next stack on the same run dir clears what the killed one left
    with launch_stack(["--base-port", "0", "--fast"], tmp_path, timeout_s=60):
        pass
    assert not left.exists() and not pgdata.exists()


def test_sigterm_stops_every_part(tmp_path: Path) -> None:
    proc = _up(tmp_path, "--base-port", "0")
    try:
        _wait_profile(proc, tmp_path / "local.yaml")
        parts = _parts(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stack stopped" in out
    assert _gone(list(parts.values()), within_s=10) == []


def test_up_help_names_every_contract_variable_it_reads() -> None:
    """CONTRACT section 8: every variable of the reference target, in `omnidrill up --help`."""
    named = [
        "DATABASE_URL",
        "REDIS_URL",
        "RPC_PRIMARY_URL",
        "RPC_FALLBACK_URL",
        "CONTROL_API_URL",
        "RATE_LIMIT",
        "RATE_WINDOW_S",
        "APPROVAL_TTL_S",
        "RPC_TIMEOUT_MS",
        "CONTROLS_TTL_MS",
        "CONTROLS_TIMEOUT_MS",
        "ANON_KEY",
        "SERVICE_ROLE_KEY",
        "TRUST_FORWARDED_FOR",
        "SENTRY_DSN",
        "DD_API_KEY",
        "DD_SITE",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "up", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    help_text = " ".join(done.stdout.split())
    assert [v for v in named if v not in help_text] == []


def test_external_providers_from_the_contract_variables(tmp_path: Path) -> None:
    """RPC_PRIMARY_URL over http: reached through the fault proxy's path, named in the profile
    by its variable; RPC_FALLBACK_URL over https: reached directly, so no path is offered."""
    from omnihub_ref.rpc_mock import create_rpc_app
    from omnihub_ref.serving import serve_in_thread

    with serve_in_thread(create_rpc_app("primary")) as primary:
        env = {
            "RPC_PRIMARY_URL": primary.url,
            "RPC_FALLBACK_URL": "https://fallback.invalid/v3/project",
        }
        with launch_stack(["--base-port", "0", "--fast"], tmp_path, env=env) as (_, profile):
            assert profile["rpc_direct"]["primary"] == {"env": "RPC_PRIMARY_URL"}
            assert profile["rpc_direct"]["fallback"] == {"env": "RPC_FALLBACK_URL"}
            paths = {p["name"]: p["upstream"] for p in profile["faults"]["proxies"]}
            assert paths["rpc_primary"] == f"127.0.0.1:{primary.port}"
            assert "rpc_fallback" not in paths
            key = profile["keys"]["anon"]["value"]
            r = httpx.post(
                f"{profile['base_url']}/functions/v1/wallet-balance",
                json={"address": "0x" + "33" * 20},
                headers={"apikey": key, "Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200 and r.headers["X-RPC-Provider"] == "primary", r.text
            calls = httpx.get(f"{primary.url}/__calls").json()["calls"]
            assert [c["method"] for c in calls] == ["eth_getBalance"]
