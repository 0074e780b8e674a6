"""An undo never overwrites a change it did not make: someone else's change during a drill or
after a crash is left as they set it and reported (exit 4, or exit 3 when the guardrail saw them
take the wheel), in the console, `journal.json` and `report.html`; a stale ledger is reconciled;
a drill's approval rows do not outlive it. Through the real reference stack: an operator's
PATCH through the control API, a proxy changed through the fault proxy's API, two
OMNIDRILL_STATE_DIRs for two machines."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos.drillkit import CHAOS, HOLD_KILL_SWITCH, ROOT, Stack, start_stack
from chaos.test_guarantees import cli, wait_for
from omnidrill.chaos.marks import parse_mark
from omnidrill.faults.client import FaultClient

pytestmark = pytest.mark.serial

ROW_FIELDS = ("omnihub_kill_switch", "execution_safe_mode", "operator_takeover", "updated_by")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # no `observe:`: drills written here, in folders without monitors, judged on conflicts
    with start_stack(tmp_path_factory.mktemp("conflicts"), observe=False) as s:
        yield s


class Operator:
    """A person at the control API (service-role key) and the fault proxy's API."""

    def __init__(self, stack: Stack) -> None:
        p = stack.profile
        self.url = f"{p['controls']['url'].rstrip('/')}/emergency_controls"
        self.row_id = p["controls"]["row_id"]
        key = p["keys"]["service_role"]["value"]
        self.headers = {"apikey": key, "Authorization": f"Bearer {key}"}
        self.faults = FaultClient(p["faults"]["toxiproxy_url"])
        self.proxies = {x["name"]: x for x in p["faults"]["proxies"]}

    def row(self) -> dict[str, Any]:
        r = httpx.get(self.url, params={"id": f"eq.{self.row_id}"}, headers=self.headers)
        r.raise_for_status()
        return dict(r.json()[0])

    def patch(self, **values: Any) -> None:
        r = httpx.patch(
            self.url, params={"id": f"eq.{self.row_id}"}, json=values, headers=self.headers
        )
        r.raise_for_status()


@pytest.fixture
def operator(stack: Stack) -> Iterator[Operator]:
    """The operator; afterwards the row and the proxies go back to how the stack started."""
    op = Operator(stack)
    start = {k: v for k, v in op.row().items() if k in (*ROW_FIELDS, "reason")}
    try:
        yield op
    finally:
        op.patch(**start)
        for name, spec in op.proxies.items():
            op.faults.update_proxy(name, upstream=spec["upstream"], enabled=True)
            for tox in op.faults.toxics(name):
                op.faults.remove_toxic(name, tox["name"], missing_ok=True)
        op.faults.close()
        time.sleep(0.3)  # past the stack's controls TTL


def _run(stack: Stack, drill: Path, tmp_path: Path, state: Path, *extra: str) -> subprocess.Popen:
    args = ["run", str(drill), "-t", str(stack.profile_path), "--report-dir", str(tmp_path / "r")]
    return cli([*args, *extra], tmp_path, state)


def _journal(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "r" / "journal.json").read_text())


def _reached(tmp_path: Path, step_kind: str) -> bool:
    path = tmp_path / "r" / "journal.json"
    return path.exists() and f'"{step_kind}"' in path.read_text()


def _drill(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "chaos" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _assert_conflict_everywhere(tmp_path: Path, out: str, where: str, field: str) -> None:
    """Named in the console, the journal (structured) and report.html."""
    assert "CONFLICT" in out and where in out, out
    drill = _journal(tmp_path)["drills"][0]
    named = [c for c in drill["conflicts"] if c["where"] == where and c["field"] == field]
    assert named, drill["conflicts"]
    assert drill["verdict"] == "rollback_failed" and "UNDO CONFLICT" in drill["reason"]
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Undo conflicts" in html and where in html, "report.html names the conflict"


# --- the four steps: two machines, a stale ledger -----------------------------------


def _change_that_sets(stack: Stack, drill: str, control: str) -> int:
    """Which state-changing step of a standard drill first sets `control` (the pause hook's N)."""
    from omnidrill.chaos.models import STATE_CHANGING, step_kind
    from omnidrill.cliutil import load_profile
    from omnidrill.profile import template_variables
    from omnidrill.spec.loader import load_file

    profile = load_profile(str(stack.profile_path))
    model = load_file(CHAOS / f"{drill}.yaml", variables=template_variables(profile, {})).model
    changes = [s for s in model.method if step_kind(s) in STATE_CHANGING]
    return next(
        i + 1 for i, s in enumerate(changes) if step_kind(s) == "controls.set" and control in s.set
    )


@pytest.mark.parametrize("then", ["recover", "run"])
def test_a_stale_ledger_never_turns_an_operators_kill_switch_off(
    stack: Stack, operator: Operator, tmp_path: Path, then: str
) -> None:
    machine_a, machine_b = tmp_path / "state-a", tmp_path / "state-b"
    paused = tmp_path / "paused"
    # 1. machine A: the kill-switch drill, killed with SIGKILL while the switch is on
    proc = cli(
        ["run", str(CHAOS / "kill-switch.yaml"), "-t", str(stack.profile_path)],
        tmp_path,
        machine_a,
        OMNIDRILL_TEST_PAUSE_AT=str(_change_that_sets(stack, "kill-switch", "omnihub_kill_switch")),
        OMNIDRILL_TEST_PAUSE_FILE=str(paused),
    )
    try:
        wait_for(lambda: paused.exists() or proc.poll() is not None, 60, "the pause")
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert operator.row()["omnihub_kill_switch"] is True
    # 2. machine B (its own state dir): recover restores the row and releases the mark
    b = cli(["recover", "-t", str(stack.profile_path)], tmp_path, machine_b)
    out_b, _ = b.communicate(timeout=60)
    assert b.returncode == 0, out_b
    assert operator.row()["omnihub_kill_switch"] is False
    # 3. an operator turns the kill switch on for a real incident
    operator.patch(omnihub_kill_switch=True, reason="INCIDENT-42 card processor fraud")
    # 4. back on machine A
    if then == "recover":
        a = cli(["recover", "-t", str(stack.profile_path)], tmp_path, machine_a)
        out, _ = a.communicate(timeout=60)
        assert a.returncode == 0, out
        assert "already undone elsewhere" in out, out
        assert "undone: " not in out.replace("already undone", ""), out
    else:
        a = _run(stack, CHAOS / "kill-switch.yaml", tmp_path, machine_a)
        out, _ = a.communicate(timeout=120)
        assert "unfinished undos" not in out and "omnidrill recover" not in out, out
        assert "already undone elsewhere" in out, out
        # the run goes on to find the switch on: its steady state does not hold, nothing touched
        assert a.returncode == 1, out
    row = operator.row()
    assert row["omnihub_kill_switch"] is True, "the operator's kill switch is still on"
    assert row["reason"] == "INCIDENT-42 card processor fraud"
    again = cli(["recover", "-t", str(stack.profile_path)], tmp_path, machine_a)
    out2, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and "nothing to recover" in out2, out2


def test_pending_undos_that_still_apply_send_users_to_recover(
    stack: Stack, operator: Operator, tmp_path: Path
) -> None:
    """The refusal points to `recover` only when recover has something to do, and recover
    then does exactly that."""
    from omnidrill.chaos.ledger import Ledger

    spec = operator.proxies["rpc_primary"]
    shown = operator.faults.get_proxy("rpc_primary")
    left = {"enabled": False, "upstream": spec["upstream"], "listen": shown["listen"]}
    Ledger("local", tmp_path / "state").register(
        "older-run",
        1,
        "fault.enable",
        {"proxy": "rpc_primary", "enabled": True, "left": left},
        "re-enable proxy rpc_primary",
    )
    operator.faults.set_enabled("rpc_primary", False)
    refused = _run(stack, CHAOS / "kill-switch.yaml", tmp_path, tmp_path / "state")
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2, out
    assert "unfinished undos" in out and "omnidrill recover --target local" in out, out
    rec = cli(["recover", "-t", str(stack.profile_path)], tmp_path, tmp_path / "state")
    out, _ = rec.communicate(timeout=60)
    assert rec.returncode == 0, out
    assert operator.faults.get_proxy("rpc_primary")["enabled"] is True


# --- someone takes the wheel during a live drill: the guardrail ---------------------------

LONG = """title: Kill switch held for a long while
description: holds the kill switch on, so that someone else can change it midway
contract: [C2]
max_duration: 120s
"""
LONG += HOLD_KILL_SWITCH.format()


@pytest.mark.parametrize(
    "change",
    [
        {"omnihub_kill_switch": True, "reason": "INCIDENT-43 real outage"},  # the mark is gone
        {"omnihub_kill_switch": False, "updated_by": "alice"},  # a value it did not set
    ],
    ids=["mark-gone", "value-changed"],
)
def test_an_operator_change_during_a_live_drill_aborts_it_and_stays(
    stack: Stack, operator: Operator, tmp_path: Path, change: dict[str, Any]
) -> None:
    proc = _run(stack, _drill(tmp_path, "long", LONG), tmp_path, tmp_path / "state")
    try:
        wait_for(lambda: _reached(tmp_path, "wait") or proc.poll() is not None, 60, "the wait")
        assert proc.poll() is None
        operator.patch(**change)
        changed = time.monotonic()
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # At once: well before the 30 s wait ends (0.2 s polls, with room for a loaded machine).
    assert time.monotonic() - changed < 10, "it aborts at once, not at the end of its wait"
    assert proc.returncode == 3, out
    assert "took the wheel" in out, out
    row = operator.row()
    for k, v in change.items():
        assert row[k] == v, f"{k}: the operator's value stays ({row[k]!r})"
    if "reason" not in change:  # the mark was the drill's own: released, nothing else
        assert parse_mark(row["reason"]) is None
    journal = _journal(tmp_path)
    drill = journal["drills"][0]
    assert drill["verdict"] == "aborted" and "took the wheel" in drill["reason"]
    assert journal["exit_code"] == 3
    assert any(e["kind"] == "abort" and e.get("by") == "takeover" for e in journal["events"])
    assert drill["conflicts"] and all(c["taken_over"] for c in drill["conflicts"])
    assert "took the wheel" in (tmp_path / "r" / "report.html").read_text()


# --- one conflict test per undo kind: exit 4, named everywhere, nothing overwritten ----------

CONTROLS_THEN_PAUSE = """title: Kill switch, then a slow rollback
description: turns the kill switch on; its own rollbacks wait, so someone can act meanwhile
contract: [C2]
max_duration: 60s
steady_state:
  - check: http
    function: read-only
    expect: {status: 200}
method:
  - action: controls.set
    set: {omnihub_kill_switch: true}
  - check: http
    clause: C2
    function: read-only
    within: 2s
    expect: {refusal: KILL_SWITCH}
rollbacks:
  - action: wait
    for: 4s
"""


def test_controls_conflict(stack: Stack, operator: Operator, tmp_path: Path) -> None:
    proc = _run(stack, _drill(tmp_path, "ctl", CONTROLS_THEN_PAUSE), tmp_path, tmp_path / "s")
    wait_for(lambda: _reached(tmp_path, "rollbacks") or proc.poll() is not None, 60, "rollbacks")
    operator.patch(omnihub_kill_switch=True, reason="INCIDENT-44 hold everything")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 4, out

    _assert_conflict_everywhere(tmp_path, out, "emergency_controls", "reason")
    assert "INCIDENT-44" in out
    row = operator.row()
    assert row["omnihub_kill_switch"] is True and row["reason"] == "INCIDENT-44 hold everything"


CUT_AND_WAIT = """title: Primary cut for a few seconds
description: cuts the primary RPC path and waits, so someone can change the proxy meanwhile
contract: [P1]
max_duration: 60s
steady_state:
  - check: http
    function: read-only
    expect: {status: 200}
method:
  - action: fault.cut
    proxy: rpc_primary
  - check: http
    clause: P1
    function: read-only
    expect: {status: 200}
  - action: wait
    for: 4s
"""


@pytest.mark.parametrize("change", ["re-enabled", "re-pointed"])
def test_proxy_conflict(stack: Stack, operator: Operator, tmp_path: Path, change: str) -> None:
    proc = _run(stack, _drill(tmp_path, "cut", CUT_AND_WAIT), tmp_path, tmp_path / "s")
    wait_for(lambda: _reached(tmp_path, "wait") or proc.poll() is not None, 60, "the wait")
    other = operator.proxies["rpc_fallback"]["upstream"]
    if change == "re-enabled":
        operator.faults.set_enabled("rpc_primary", True)
    else:
        operator.faults.update_proxy("rpc_primary", upstream=other)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 4, out

    field = "enabled" if change == "re-enabled" else "upstream"
    _assert_conflict_everywhere(tmp_path, out, "proxy rpc_primary", field)
    shown = operator.faults.get_proxy("rpc_primary")
    if change == "re-enabled":
        assert shown["enabled"] is True
    else:
        assert shown["upstream"] == other and shown["enabled"] is False, "left as they set it"


TOXIC_AND_WAIT = """title: A slow primary for a few seconds
description: throttles the primary RPC path and waits, so someone can change the toxic
contract: [P1]
max_duration: 60s
steady_state:
  - check: http
    function: read-only
    expect: {status: 200}
method:
  - action: fault.toxic
    proxy: rpc_primary
    type: bandwidth
    attributes: {rate: 1000}
  - check: http
    clause: P1
    function: read-only
    expect: {status: 200}
  - action: wait
    for: 4s
"""


def test_toxic_conflict(stack: Stack, operator: Operator, tmp_path: Path) -> None:
    proc = _run(stack, _drill(tmp_path, "tox", TOXIC_AND_WAIT), tmp_path, tmp_path / "s")
    wait_for(lambda: _reached(tmp_path, "wait") or proc.poll() is not None, 60, "the wait")
    (toxic,) = operator.faults.toxics("rpc_primary")
    operator.faults.update_toxic("rpc_primary", toxic["name"], attributes={"rate": 50})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 4, out

    where = f"toxic {toxic['name']} on rpc_primary"
    _assert_conflict_everywhere(tmp_path, out, where, "attributes.rate")
    (still,) = operator.faults.toxics("rpc_primary")
    assert still["attributes"]["rate"] == 50, "their change stays"


APPROVAL_AND_WAIT = """title: A high-value trade waits, and so does the drill
description: leaves a pending approval, so someone can decide it before the clean-up
contract: [A1]
max_duration: 60s
steady_state:
  - check: http
    function: read-only
    expect: {status: 200}
method:
  - check: http
    id: ask
    clause: A1
    function: execute-trade
    body: {user_id: "omnidrill-${run.id}-a", amount_usd: 15000}
    expect: {refusal: APPROVAL_PENDING}
  - action: wait
    for: 4s
"""


def test_approval_conflict(stack: Stack, operator: Operator, tmp_path: Path) -> None:
    proc = _run(stack, _drill(tmp_path, "appr", APPROVAL_AND_WAIT), tmp_path, tmp_path / "s")
    wait_for(lambda: _reached(tmp_path, "wait") or proc.poll() is not None, 60, "the wait")
    ask = next(s for s in _journal(tmp_path)["drills"][0]["steps"] if s["kind"] == "http")
    approvals = operator.url.replace("emergency_controls", "approval_queue")
    run_id = _journal(tmp_path)["run_id"]
    rows = httpx.get(
        approvals, params={"user_id": f"eq.omnidrill-{run_id}-a"}, headers=operator.headers
    ).json()
    assert len(rows) == 1 and rows[0]["status"] == "pending", ask
    aid = rows[0]["id"]
    httpx.patch(
        approvals,
        params={"id": f"eq.{aid}"},
        json={"status": "approved", "decided_by": "bob"},
        headers=operator.headers,
    ).raise_for_status()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 4, out

    _assert_conflict_everywhere(tmp_path, out, f"approval {aid}", "status")
    drill = _journal(tmp_path)["drills"][0]
    assert any(aid in x and "bob" in x for x in drill["not_cleaned"]), drill["not_cleaned"]
    assert "could not clean" in (tmp_path / "r" / "report.html").read_text()
    now = httpx.get(approvals, params={"id": f"eq.{aid}"}, headers=operator.headers).json()
    assert now[0]["status"] == "approved", "bob's decision stays"


# --- the same machine, a second run: told who holds the lock ---------------------------------


def test_a_second_run_here_is_told_who_holds_the_lock(
    stack: Stack, operator: Operator, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = _run(stack, _drill(tmp_path, "long", LONG), tmp_path, state)
    try:
        wait_for(lambda: _reached(tmp_path, "wait") or first.poll() is not None, 60, "the wait")
        second = cli(
            ["run", str(CHAOS / "kill-switch.yaml"), "-t", str(stack.profile_path)],
            tmp_path,
            state,
        )
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 2, out
        assert "held by another run on this machine" in out, out
        assert f"pid {first.pid}" in out and "since 20" in out, out
        assert "unfinished undos" not in out and "omnidrill recover" not in out, out
    finally:
        first.send_signal(signal.SIGTERM)
        out1, _ = first.communicate(timeout=30)
    assert first.returncode == 3, out1
    # (b) after an abort the console says which undos ran
    assert "undo: restore omnihub_kill_switch=False" in out1, out1
    assert "undo: release the lock" in out1, out1
    assert ROOT.exists()


# --- a drill leaves nothing of its own behind ------------------------------------------------


def _asking_for_approval(path: Path) -> bool:
    return "approval" in path.read_text().lower()


# CI: the drills whose text deals with approvals (the others send only small trades); by hand
# (`-m slow`), every standard drill
@pytest.mark.parametrize(
    "which",
    [
        pytest.param(_asking_for_approval, id="approval-drills"),
        pytest.param(lambda _: True, id="all-drills", marks=pytest.mark.slow),
    ],
)
def test_no_approval_a_standard_drill_caused_is_left_pending(
    tmp_path: Path, which: Callable[[Path], bool]
) -> None:
    """With the contract's one-hour approval TTL (not --fast's seconds), so that nothing
    expires on its own before it is looked at."""
    from chaos.drillkit import run_drills

    drills = sorted(p.stem for p in CHAOS.glob("*.yaml") if which(p))
    assert "approval-flow" in drills and "kill-switch" in drills
    args = ("--approval-ttl-s", "3600")  # approvals are judged here, O1 elsewhere
    with start_stack(tmp_path / "stack", *args, observe=False) as contract_ttl:
        assert contract_ttl.profile["limits"]["approval_ttl_s"] == 3600
        result = run_drills(contract_ttl, *drills, report=tmp_path / "r")
        op = Operator(contract_ttl)
        approvals = op.url.replace("emergency_controls", "approval_queue")
        rows = httpx.get(approvals, params={"select": "*"}, headers=op.headers).json()
        op.faults.close()
    assert result.code == 0, result.output
    run_id = result.journal["run_id"]
    ours = [r for r in rows if run_id in str(r["user_id"])]
    assert len(ours) >= 3, "approval-flow (and idempotency) caused approval rows"
    pending = [r for r in ours if r["status"] == "pending"]
    assert pending == [], f"left pending in an operator's queue: {pending}"
    cleaned = [r for r in ours if r["status"] == "rejected" and run_id in str(r.get("reason"))]
    assert cleaned, "the clean-up rejected what was left pending, naming the run"
    flow = result.drill("approval-flow")
    assert any("broadcast" in x for x in flow["not_cleaned"]), flow["not_cleaned"]
    assert "could not clean" in (tmp_path / "r" / "report.html").read_text()


MUTED = """title: Kill switch with its monitors muted
description: turns the kill switch on with its monitors muted, and waits
contract: [C2]
max_duration: 60s
steady_state:
  - check: http
    function: read-only
    expect: {status: 200}
method:
  - action: controls.set
    set: {omnihub_kill_switch: true}
  - check: http
    clause: C2
    function: read-only
    within: 2s
    expect: {refusal: KILL_SWITCH}
  - action: wait
    for: 4s
"""


def test_downtime_conflict(stack: Stack, operator: Operator, tmp_path: Path) -> None:
    """A downtime someone extended while the drill held it is not cancelled under them."""
    from observe.fake_datadog import FakeDatadog

    fake = FakeDatadog().start()
    try:
        drill = _drill(tmp_path, "kill-switch", MUTED)  # its monitors: tripped_by kill-switch
        args = ["run", str(drill), "-t", str(stack.profile_path), "--mute-monitors"]
        args += ["--report-dir", str(tmp_path / "r")]
        proc = cli(args, ROOT, tmp_path / "state", **fake.sdk_env())
        wait_for(lambda: _reached(tmp_path, "wait") or proc.poll() is not None, 60, "the wait")
        assert len(fake.downtimes) >= 1, "the kill-switch monitors were muted"
        theirs = sorted(fake.downtimes)[0]
        httpx.patch(
            f"{fake.url}/api/v2/downtime/{theirs}",
            json={
                "data": {
                    "type": "downtime",
                    "id": theirs,
                    "attributes": {"message": "INCIDENT-45: keep muted until the fix ships"},
                }
            },
            headers={"DD-API-KEY": fake.api_key, "DD-APPLICATION-KEY": fake.app_key},
        ).raise_for_status()
        out, _ = proc.communicate(timeout=60)
    finally:
        fake.stop()
    assert proc.returncode == 4, out
    _assert_conflict_everywhere(tmp_path, out, f"downtime {theirs}", "message")
    assert fake.downtimes[theirs]["status"] != "canceled", "their downtime stays"
    others = [d for i, d in fake.downtimes.items() if i != theirs]
    assert all(d["status"] == "canceled" for d in others)
