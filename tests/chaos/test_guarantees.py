"""The engine's guarantees: undo after kill -9 (with and without the ledger), halt, SIGTERM,
refusals that touch nothing, the lock, dry runs, and inconclusive faults."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos.drillkit import (
    CHAOS,
    HOLD_KILL_SWITCH,
    KILL_SWITCH_ON,
    ROOT,
    STEADY_READS,
    Stack,
    omnidrill_cmd,
    run_drills,
    start_stack,
)
from omnidrill.chaos.controlstore import CONTROLS, open_store
from omnidrill.chaos.marks import RESTORABLE, Mark, parse_mark
from omnidrill.errors import RunRefused
from omnidrill.faults.client import FaultClient
from omnidrill.profile import TargetProfile, resolve


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # no `observe:`: these drills are written here, in folders without monitors, and judge
    # what a run guarantees, not detection (tests/chaos/test_detection.py does)
    with start_stack(tmp_path_factory.mktemp("guarantees"), "--instances", "2", observe=False) as s:
        yield s


def _profile(stack: Stack) -> TargetProfile:
    return TargetProfile.model_validate(stack.profile)


def target_state(stack: Stack) -> dict[str, Any]:
    """What a drill may change: the controls row and the proxies (enabled, toxics)."""
    resolved = resolve(_profile(stack))
    store = open_store(resolved)
    row = store.get_row(CONTROLS, resolved.profile.controls.row_id) or {}
    store.close()
    with FaultClient(stack.profile["faults"]["toxiproxy_url"]) as faults:
        proxies = {
            name: (p["enabled"], sorted(t["name"] for t in p.get("toxics", [])))
            for name, p in faults.proxies().items()
        }
    return {"controls": {k: row.get(k) for k in RESTORABLE}, "proxies": proxies}


def audit_count(stack: Stack) -> int:
    store = open_store(resolve(_profile(stack)))
    try:
        return len(store.audit_rows(1000))
    finally:
        store.close()


def cli(args: list[str], cwd: Path, state: Path, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "OMNIDRILL_STATE_DIR": str(state), "COLUMNS": "200", **env}
    return subprocess.Popen(
        [*omnidrill_cmd(), *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- kill -9 in the middle of every state-changing step, then recover ----------------------

KILL_POINTS = [
    ("kill-switch", 2),  # controls.set (after approving its own side-door trade)
    ("rpc-primary-outage", 1),  # fault.cut
    ("rpc-primary-outage", 2),  # fault.restore
    ("rpc-both-down", 1),
    ("rpc-both-down", 2),
    ("rpc-both-down", 3),
    ("rpc-both-down", 4),
]


# CI kills at every point once, recovering from the ledger and from another folder in turn;
# `-m slow` adds the other half
WHERES = ["ledger", "another-folder"]
KILLS = [
    pytest.param(drill, change, where, marks=[] if (i + j) % 2 == 0 else [pytest.mark.slow])
    for i, (drill, change) in enumerate(KILL_POINTS)
    for j, where in enumerate(WHERES)
]


@pytest.mark.serial
@pytest.mark.parametrize(("drill", "change", "where"), KILLS)
def test_sigkill_mid_step_then_recover(
    stack: Stack, drill: str, change: int, where: str, tmp_path: Path
) -> None:
    before = target_state(stack)
    here, state = tmp_path / "runner", tmp_path / "runner-state"
    here.mkdir()
    paused = tmp_path / "paused"
    proc = cli(
        [
            "run",
            str(CHAOS / f"{drill}.yaml"),
            "-t",
            str(stack.profile_path),
            "--report-dir",
            str(tmp_path / "report"),
        ],
        here,
        state,
        OMNIDRILL_TEST_PAUSE_AT=str(change),
        OMNIDRILL_TEST_PAUSE_FILE=str(paused),
    )
    try:
        wait_for(lambda: paused.exists() or proc.poll() is not None, 60, "the pause")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    during = target_state(stack)
    assert during != before, "the killed run left its change on the target"
    assert parse_mark(during["controls"]["reason"]) is not None, "and its mark"
    if where == "ledger":
        refused = cli(
            ["run", str(CHAOS / "kill-switch.yaml"), "-t", str(stack.profile_path)], here, state
        )
        out, _ = refused.communicate(timeout=60)
        assert refused.returncode == 2, out
        assert "unfinished undos" in out
        rec = cli(["recover", "-t", str(stack.profile_path)], here, state)
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        rec = cli(["recover", "-t", str(stack.profile_path)], elsewhere, tmp_path / "empty")
    out, _ = rec.communicate(timeout=60)
    assert rec.returncode == 0, out
    assert "undone:" in out
    assert target_state(stack) == before, out


# --- halt, SIGTERM, max_duration --------------------------------------------------------

LONG_DRILL = """
title: Kill switch held for a long while
description: holds the kill switch on, so that it can be halted or killed midway
contract: [C2]
max_duration: {max_duration}
"""
LONG_DRILL += HOLD_KILL_SWITCH


def long_drill(tmp_path: Path, max_duration: str = "120s") -> Path:
    path = tmp_path / "chaos" / "long.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LONG_DRILL.format(max_duration=max_duration))
    return path


def _start_long(stack: Stack, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    state = tmp_path / "state-long"
    proc = cli(
        [
            "run",
            str(long_drill(tmp_path)),
            "-t",
            str(stack.profile_path),
            "--report-dir",
            str(tmp_path / "report"),
        ],
        tmp_path,
        state,
    )

    def waiting() -> bool:
        return (tmp_path / "report" / "journal.json").exists() and '"wait"' in (
            tmp_path / "report" / "journal.json"
        ).read_text()

    wait_for(lambda: waiting() or proc.poll() is not None, 60, "the drill to reach its wait")
    assert proc.poll() is None
    return proc, state


@pytest.mark.serial
def test_halt_from_another_folder_rolls_back_within_a_second(stack: Stack, tmp_path: Path) -> None:
    before = target_state(stack)
    proc, _ = _start_long(stack, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    halt = cli(["halt", "-t", str(stack.profile_path)], other, tmp_path / "other-state")
    out, _ = halt.communicate(timeout=30)
    asked = time.monotonic()
    assert halt.returncode == 0, out
    assert "halt requested" in out
    # timed to the target's state restored (what a halt promises), not to the runner's exit,
    # which also writes the journal and the report
    wait_for(lambda: target_state(stack) == before, 30, "the rollbacks")
    took = time.monotonic() - asked
    run_out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, run_out
    # Within a second on an idle machine; 3 s allows for the 2-core box under other tests.
    assert took < 3.0, f"took {took:.2f} s from the halt request to the target restored"
    assert "aborted" in run_out
    assert target_state(stack) == before


@pytest.mark.serial
@pytest.mark.parametrize(("sig", "said"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_signal_rolls_back_and_exits_3(
    stack: Stack, tmp_path: Path, sig: signal.Signals, said: str
) -> None:
    before = target_state(stack)
    proc, _ = _start_long(stack, tmp_path)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    assert said in out
    assert target_state(stack) == before


@pytest.mark.serial
def test_max_duration_aborts_after_rollbacks(stack: Stack, tmp_path: Path) -> None:
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run

    before = target_state(stack)
    code = run(
        [long_drill(tmp_path, max_duration="3s")],
        _profile(stack),
        RunOptions(target="x", report_dir=tmp_path / "report"),
        printer=Progress(),
    )
    assert code == 3
    assert target_state(stack) == before


# --- refusals that touch nothing ----------------------------------------------------------


@pytest.mark.serial
def test_steady_state_miss_touches_nothing(stack: Stack, tmp_path: Path) -> None:
    resolved = resolve(_profile(stack))
    store = open_store(resolved)
    row_id = resolved.profile.controls.row_id
    store.patch_row(CONTROLS, row_id, {"omnihub_kill_switch": True})
    try:
        time.sleep(0.5)  # past the reference stack's controls TTL
        before, audits = target_state(stack), audit_count(stack)
        result = run_drills(stack, "kill-switch", report=tmp_path / "report")
        assert result.code == 1
        assert "steady state did not hold" in result.drill("kill-switch")["reason"]
        assert target_state(stack) == before
        assert audit_count(stack) == audits, "not even the lock was written"
    finally:
        store.patch_row(CONTROLS, row_id, {"omnihub_kill_switch": False})
        store.close()
        time.sleep(0.5)


def test_lock_held_by_another_run_is_named(stack: Stack, tmp_path: Path) -> None:
    resolved = resolve(_profile(stack))
    store = open_store(resolved)
    row_id = resolved.profile.controls.row_id
    old = store.get_row(CONTROLS, row_id) or {}
    mark = Mark(run="20260101-other", drill="chaos/other.yaml", host="ci-runner-7", pid=4242)
    store.patch_row(CONTROLS, row_id, {"reason": mark.text()})
    try:
        with pytest.raises(RunRefused, match=r"run 20260101-other .* ci-runner-7"):
            run_drills(stack, "kill-switch", report=tmp_path / "report")
    finally:
        store.patch_row(CONTROLS, row_id, {"reason": old.get("reason")})
        store.close()


def test_production_needs_confirm(stack: Stack, tmp_path: Path, monkeypatch: Any) -> None:
    data = dict(stack.profile)
    monkeypatch.setenv("T_ANON", stack.profile["keys"]["anon"]["value"])
    monkeypatch.setenv("T_SERVICE", stack.profile["keys"]["service_role"]["value"])
    data.update(
        name="prod-like",
        environment="production",
        keys={"anon": {"env": "T_ANON"}, "service_role": {"env": "T_SERVICE"}},
    )
    path = tmp_path / "prod-like.yaml"
    path.write_text(yaml.safe_dump(data))
    prod = Stack(path, data, tmp_path)
    before, audits = target_state(stack), audit_count(stack)
    for confirm in (None, "local"):
        with pytest.raises(RunRefused, match="--confirm prod-like"):
            run_drills(prod, "kill-switch", report=tmp_path / "r", confirm=confirm)
    assert target_state(stack) == before
    assert audit_count(stack) == audits


def test_dry_run_prints_resolved_plan_and_touches_nothing(stack: Stack, tmp_path: Path) -> None:
    before, audits = target_state(stack), audit_count(stack)
    proc = cli(
        [
            "run",
            str(CHAOS / "kill-switch.yaml"),
            str(CHAOS / "rpc-primary-slow.yaml"),
            "-t",
            str(stack.profile_path),
            "--dry-run",
            "--report-dir",
            str(tmp_path / "r"),
        ],
        ROOT,
        tmp_path / "state",
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    limits = stack.profile["limits"]
    assert "status 503, code KILL_SWITCH" in out
    assert f"within {limits['controls_ttl_ms'] / 1000:.3f} s" in out
    assert f"latency: {limits['rpc_timeout_ms'] + 1000}" in out.replace("'", "")
    for url in stack.profile["instances"]:
        assert url in out
    assert "nothing was touched" in out
    assert stack.profile["keys"]["service_role"]["value"] not in out
    assert not (tmp_path / "r").exists()
    assert target_state(stack) == before
    assert audit_count(stack) == audits


# --- a fault that does not take effect is inconclusive --------------------------------------


@pytest.mark.serial
def test_fault_outside_the_target_path_is_inconclusive(stack: Stack, tmp_path: Path) -> None:
    """A profile whose proxies the target's traffic does not cross: exit 5, never pass/fail."""
    from omnidrill.netutil import free_port, wait_for_port

    port = free_port()
    server = subprocess.Popen(
        [*omnidrill_cmd(), "faultproxy", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 20)
        data = dict(stack.profile)
        real = {p["name"]: p for p in stack.profile["faults"]["proxies"]}
        data["faults"] = {
            "toxiproxy_url": f"http://127.0.0.1:{port}",
            "populate": True,
            "proxies": [
                {"name": n, "listen": f"127.0.0.1:{free_port()}", "upstream": p["upstream"]}
                for n, p in real.items()
            ],
        }
        path = tmp_path / "decoy.yaml"
        path.write_text(yaml.safe_dump(data))
        before = target_state(stack)
        result = run_drills(
            Stack(path, data, tmp_path), "rpc-primary-outage", report=tmp_path / "report"
        )
        record = result.drill("rpc-primary-outage")
        assert result.code == 5, result.output
        assert record["verdict"] == "inconclusive"
        assert "does not pass through the fault proxy" in record["reason"]
        assert target_state(stack) == before
    finally:
        server.terminate()
        server.wait(10)


# --- the journal ------------------------------------------------------------------------------


@pytest.mark.serial
def test_journal_is_complete_and_scrubbed(stack: Stack, tmp_path: Path) -> None:
    result = run_drills(stack, "kill-switch", report=tmp_path / "report")
    j = result.journal
    text = (tmp_path / "report" / "journal.json").read_text()
    assert j["version"] == "1.1"
    assert j["status"] == "passed" and j["exit_code"] == 0
    for key in ("anon", "service_role"):
        assert stack.profile["keys"][key]["value"] not in text
    drill = result.drill("kill-switch")
    m = drill["measurements"]
    assert 0 <= m["time_to_effect_s"] <= 0.2 + 0.1 + 0.5  # TTL + one poll + margin
    assert m["time_to_effect_resolution_s"] > 0
    assert m["time_to_recover_s"] is not None and m["time_to_recover_resolution_s"] > 0
    phases = {s["phase"] for s in drill["steps"]}
    assert {"steady_state_before", "method", "undo", "steady_state_after"} <= phases
    for s in drill["steps"]:
        assert s["started_at"] and s["ended_at"]
    probe = next(s for s in drill["steps"] if s["clause"] == "C5")
    assert probe["requests"] and {"status", "latency_ms", "instance"} <= set(probe["requests"][0])
    kinds = [e["kind"] for e in j["events"]]
    assert "rollback" in kinds
    assert j["traffic"] and {"t", "source", "count", "by_status", "by_code", "latency_ms"} <= set(
        j["traffic"][0]
    )
    assert sum(b["by_code"].get("KILL_SWITCH", 0) for b in j["traffic"]) > 0


# --- background load -------------------------------------------------------------------------

BACKGROUND_DRILL = """
title: Kill switch under background load
description: background reads go on while the kill switch is on; their stats split per phase
contract: [C2]
max_duration: 90s
background: {{scenario: {scenario}}}
abort_if:
  - elapsed_over: 80s
steady_state:
  - check: http
    function: read-only
    expect: {{status: 200}}
method:
  - action: wait
    for: 2s
  - action: controls.set
    set: {{omnihub_kill_switch: true}}
  - check: http
    clause: C2
    function: read-only
    within: 1s
    hold: 2s
    poll: 200ms
    expect: {{refusal: KILL_SWITCH}}
  - check: load
    clause: C2
    phase: fault
    thresholds: ["error_rate > 50%"]
  - check: load
    clause: C2
    phase: steady
    thresholds: ["error_rate < 1%"]
"""


@pytest.mark.serial
def test_background_load_split_per_phase(stack: Stack, tmp_path: Path) -> None:
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run

    path = tmp_path / "chaos" / "bg.yaml"
    path.parent.mkdir()
    # the background scenario is a template too, and sees the run's --var
    scenario = tmp_path / "scenarios" / "steady-read.yaml"
    scenario.parent.mkdir()
    text = (ROOT / "scenarios" / "steady-read.yaml").read_text()
    assert "\nusers: 4\n" in text
    scenario.write_text(text.replace("\nusers: 4\n", "\nusers: {{ bg_users }}\n"))
    path.write_text(BACKGROUND_DRILL.format(scenario=scenario))
    code = run(
        [path],
        _profile(stack),
        RunOptions(target="x", report_dir=tmp_path / "r", variables={"bg_users": 3}),
        printer=Progress(),
    )
    import json

    journal = json.loads((tmp_path / "r" / "journal.json").read_text())
    assert code == 0, journal["drills"][0]["evidence"]
    phases = journal["drills"][0]["measurements"]["background"]["by_phase"]
    assert phases["steady"]["error_rate"] == 0.0
    assert phases["fault"]["codes"].get("KILL_SWITCH", 0) > 0
    assert any(b["source"] == "background" for b in journal["traffic"])


# --- drills and scenarios in one run; Ctrl-C; paced traffic ----------------------------------

TINY_SCENARIO = """type: load
name: tiny
description: a few seconds of reads, judged leniently
users: 2
spawn_rate: 2
duration: 3s
pacing: {per_user_rps: 2}
clients: 16
tasks:
  - function: wallet-balance
    body: {address: "${address}"}
thresholds:
  all: ["error_rate < 50%"]
"""


@pytest.mark.serial
def test_run_takes_drills_and_scenarios_together(stack: Stack, tmp_path: Path) -> None:
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run

    scenario = tmp_path / "scenarios" / "tiny.yaml"
    scenario.parent.mkdir()
    scenario.write_text(TINY_SCENARIO)
    code = run(
        [CHAOS / "safe-mode.yaml", scenario],
        _profile(stack),
        RunOptions(target="x", report_dir=tmp_path / "r"),
        printer=Progress(),
    )
    import json

    journal = json.loads((tmp_path / "r" / "journal.json").read_text())
    assert code == 0, journal["scenarios"]
    assert journal["drills"][0]["verdict"] == "passed"
    assert journal["scenarios"][0]["verdict"] == "passed"
    assert journal["scenarios"][0]["result"]["name"] == "tiny"


@pytest.mark.serial
def test_run_scales_load_scenarios_over_workers(stack: Stack, tmp_path: Path) -> None:
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run

    scenario = tmp_path / "scenarios" / "tiny.yaml"
    scenario.parent.mkdir()
    scenario.write_text(TINY_SCENARIO)
    code = run(
        [scenario],
        _profile(stack),
        RunOptions(target="x", report_dir=tmp_path / "r", workers=2),
        printer=Progress(),
    )
    assert code == 0
    import json

    records = [
        json.loads(line)
        for line in (tmp_path / "r" / "scenarios" / "tiny" / "load-stats.jsonl").open()
    ]
    sources = {r["src"] for r in records if r.get("n") and r.get("src")}
    assert len(sources) == 2, sources  # both workers sent load, the master none of its own


SLOW_RECOVERY_DRILL = (
    """title: Kill switch, measured back with a slow controls cache
description: the functions keep the cached kill switch for a while after the rollback
contract: [C2]
max_duration: 60s
recover_within: 20s
"""
    + STEADY_READS
    + "method:\n"
    + KILL_SWITCH_ON.replace("within: 2s", "within: 8s").replace(
        "    expect:", "    poll: 200ms\n    expect:"
    )
)


@pytest.mark.serial
def test_ctrl_c_while_recovery_is_measured_still_releases_the_lock(tmp_path: Path) -> None:
    # A controls cache of 6 s keeps the kill switch answered after the rollback restored the
    # row, so the recovery check is still polling when the signal arrives.
    with start_stack(tmp_path / "stack", "--controls-ttl-ms", "6000", observe=False) as slow:
        before = target_state(slow)
        drill = tmp_path / "chaos" / "slow-recovery.yaml"
        drill.parent.mkdir()
        drill.write_text(SLOW_RECOVERY_DRILL)
        state = tmp_path / "state"
        report = tmp_path / "report"
        args = ["run", str(drill), "-t", str(slow.profile_path), "--report-dir", str(report)]
        proc = cli(args, tmp_path, state)

        def recovering() -> bool:
            journal = report / "journal.json"
            return journal.exists() and "steady_state_after" in journal.read_text()

        try:
            wait_for(lambda: recovering() or proc.poll() is not None, 90, "the recovery check")
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 3, out
        assert "Ctrl-C" in out
        # the lock is released: the row is as before, and the next run is not refused
        assert target_state(slow) == before, out
        again = cli(["run", str(drill), "-t", str(slow.profile_path), "--dry-run"], tmp_path, state)
        out2, _ = again.communicate(timeout=60)
        assert again.returncode == 0, out2


@pytest.mark.serial
def test_paced_traffic_stays_under_the_limit_and_says_what_it_cannot_prove(
    tmp_path: Path,
) -> None:
    """Without X-Forwarded-For or a bypass header, drills pace themselves inside the limit."""
    args = ("--no-trust-forwarded-for", "--instances", "2")
    with start_stack(tmp_path / "stack", *args, observe=False) as paced:
        result = run_drills(paced, "kill-switch", report=tmp_path / "r")
    j = result.journal
    assert j["target"]["clients"] == "paced"
    assert sum(b["by_status"].get("429", 0) for b in j["traffic"]) == 0
    drill = result.drill("kill-switch")
    assert drill["verdict"] == "passed", result.output
    c5 = next(s for s in drill["steps"] if s["clause"] == "C5")
    # 3 functions x 2 instances at 80 % of 20 per 5 s cannot look within the 200 ms TTL
    assert c5["verdict"] == "skipped", c5
    assert "cannot prove" in c5["evidence"][-1]
    assert drill["skipped_checks"], "listed, so --strict counts it"


# --- a rollback that fails: exit 4, said loudly, and recover finishes the job -----------------


@pytest.mark.serial
def test_failed_rollback_exits_4_and_recover_finishes(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _state_dir: Path
) -> None:
    import threading

    from omnidrill.chaos import controlstore
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.ledger import Ledger
    from omnidrill.chaos.lock import halt_file
    from omnidrill.chaos.recover import recover
    from omnidrill.chaos.runner import RunOptions, open_world, run

    before = target_state(stack)
    real_patch = controlstore.PostgrestStore.patch_row_if

    def broken(
        self: Any, table: str, row_id: str, expect: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        if values.get("omnihub_kill_switch") is False:  # only the undo of the kill switch
            raise controlstore.ControlStoreError("control tables unreachable (injected)")
        return real_patch(self, table, row_id, expect, values)

    monkeypatch.setattr(controlstore.PostgrestStore, "patch_row_if", broken)

    def halt_soon() -> None:
        time.sleep(3)
        path = halt_file("local")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("test 0\n")

    threading.Thread(target=halt_soon, daemon=True).start()
    code = run(
        [long_drill(tmp_path)],
        _profile(stack),
        RunOptions(target="x", report_dir=tmp_path / "r"),
        printer=Progress(),
    )
    import json

    journal = json.loads((tmp_path / "r" / "journal.json").read_text())
    assert code == 4
    drill = journal["drills"][0]
    assert drill["verdict"] == "rollback_failed"
    assert "ROLLBACK FAILED" in drill["reason"] and drill["left_changed"]
    assert [u["kind"] for u in journal["pending_undos"]] == ["lock.release", "controls.restore"]
    during = target_state(stack)
    assert during != before
    assert parse_mark(during["controls"]["reason"]) is not None, "the lock stays: not clean"
    monkeypatch.setattr(controlstore.PostgrestStore, "patch_row_if", real_patch)
    profile = _profile(stack)
    rec = recover(
        open_world(resolve(profile)),
        Ledger("local"),
        "local",
        [p.name for p in profile.faults.proxies],
    )
    assert rec.exit_code == 0, rec.failed
    assert target_state(stack) == before


@pytest.mark.serial
def test_undo_restores_the_previous_values_not_all_off(stack: Stack, tmp_path: Path) -> None:
    """An operator's own settings (an allow-list, who changed it, why) come back exactly."""
    resolved = resolve(_profile(stack))
    store = open_store(resolved)
    row_id = resolved.profile.controls.row_id
    original = store.get_row(CONTROLS, row_id) or {}
    mine = {
        "allowed_operations": ["wallet_balance", "omnilink_agent"],
        "updated_by": "alice",
        "reason": "maintenance window 42",
    }
    store.patch_row(CONTROLS, row_id, mine)
    try:
        before = target_state(stack)
        result = run_drills(stack, "operator-takeover", report=tmp_path / "r")
        assert result.code == 0, result.output
        after = target_state(stack)
        assert after == before
        assert after["controls"]["allowed_operations"] == ["wallet_balance", "omnilink_agent"]
        assert after["controls"]["reason"] == "maintenance window 42"
    finally:
        store.patch_row(CONTROLS, row_id, {k: original.get(k) for k in mine})
        store.close()
