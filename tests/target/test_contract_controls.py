"""CONTRACT section 2: emergency controls (C1-C7), judged through the public surface only."""

from __future__ import annotations

import time
import uuid

import pytest
from stackclient import Target

from omnidrill.ethtx import random_raw_tx, tx_hash

KILL = "OMNIHUB_KILL_SWITCH is enabled - all operations are disabled"
TAKEOVER = "OPERATOR_TAKEOVER is enabled - operation requires manual approval"
# Machine slack on top of the contract's bounds: two busy cores, other engineers' tests.
SLACK_S = 1.0


def _poll_until(pred, timeout_s: float, every_s: float = 0.05) -> float | None:
    """Seconds until pred() held, polling at every_s; None when it never did."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if pred():
            return time.monotonic() - start
        time.sleep(every_s)
    return None


def _all_three(target: Target) -> tuple[list, str]:
    r_trade, txh = target.trade(amount=10)
    return [target.agent(), target.balance(), r_trade], txh


def test_c2_kill_switch_refuses_everything_but_health(target: Target) -> None:
    target.set_controls(omnihub_kill_switch=True)
    answers, txh = _all_three(target)
    for r in answers:
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "KILL_SWITCH"
        assert r.json()["error"] == KILL
    health = target.http.get(f"{target.profile['base_url']}/functions/v1/healthz")
    assert health.status_code == 200
    assert target.sends_of(txh) == 0


def test_c3_takeover_allows_only_the_allow_list(target: Target) -> None:
    target.set_controls(operator_takeover=True, allowed_operations=["wallet_balance"])
    assert target.balance().status_code == 200
    r = target.agent()
    assert r.status_code == 403 and r.json()["code"] == "OPERATOR_TAKEOVER"
    assert r.json()["error"] == TAKEOVER
    r, txh = target.trade(amount=10)
    assert r.status_code == 403 and r.json()["code"] == "OPERATOR_TAKEOVER"
    assert target.sends_of(txh) == 0
    # path names are not operation names: "execute-trade" does not allow execute_trade
    target.set_controls(operator_takeover=True, allowed_operations=["execute-trade"])
    r, txh = target.trade(amount=10)
    assert r.status_code == 403
    target.set_controls(operator_takeover=True, allowed_operations=["execute_trade"])
    r, txh = target.trade(amount=10)
    assert r.status_code == 200 and target.sends_of(txh) == 1


def test_c4_safe_mode_refuses_side_effects_only(target: Target) -> None:
    target.set_controls(execution_safe_mode=True)
    assert target.agent().status_code == 200
    assert target.balance().status_code == 200
    r, txh = target.trade(amount=10)
    assert r.status_code == 503 and r.json()["code"] == "SAFE_MODE"
    assert target.sends_of(txh) == 0


def test_c2_outranks_c3_and_c4(target: Target) -> None:
    target.set_controls(omnihub_kill_switch=True, execution_safe_mode=True, operator_takeover=True)
    r, _ = target.trade(amount=10)
    assert r.json()["code"] == "KILL_SWITCH"
    target.set_controls(omnihub_kill_switch=False)
    r, _ = target.trade(amount=10)
    assert r.json()["code"] == "OPERATOR_TAKEOVER"


@pytest.mark.parametrize("how", ["down", "slow"])
def test_c1_unreadable_controls_fail_closed(target: Target, how: str) -> None:
    lim = target.limits
    bound = (lim["controls_ttl_ms"] + lim["controls_timeout_ms"]) / 1000 + 0.5
    assert target.balance().status_code == 200
    if how == "down":
        target.proxy_enabled("control_plane", False)
    else:  # slower than controls_timeout
        target.add_latency("control_plane", lim["controls_timeout_ms"] + 1500)
    took = _poll_until(lambda: target.balance().status_code == 503, bound + SLACK_S, every_s=0.05)
    assert took is not None, "never failed closed"
    r = target.balance()
    assert r.status_code == 503 and r.json()["code"] == "KILL_SWITCH"
    r, txh = target.trade(amount=20_000)  # neither a send nor an approval row
    assert r.status_code == 503
    target.reset_faults()
    took = _poll_until(lambda: target.balance().status_code == 200, bound + SLACK_S)
    assert took is not None, "did not recover after the control plane came back"
    assert target.sends_of(txh) == 0


def test_c5_changes_take_effect_on_every_instance_within_the_ttl(target: Target) -> None:
    ttl = target.limits["controls_ttl_ms"] / 1000
    poll = 0.05
    target.set_controls(wait=False, execution_safe_mode=True)
    started = time.monotonic()
    effect: dict[int, float] = {}
    while len(effect) < len(target.profile["instances"]) and time.monotonic() - started < 5:
        for i in range(len(target.profile["instances"])):
            if i not in effect:
                r, _ = target.trade(amount=1, instance=i)
                if r.status_code == 503:
                    effect[i] = time.monotonic() - started
        time.sleep(poll)
    assert len(effect) == len(target.profile["instances"]), effect
    # contract: within controls_ttl plus one poll interval; plus stated machine slack
    assert max(effect.values()) <= ttl + poll + SLACK_S, effect


def test_c6_every_change_writes_one_audit_row(target: Target) -> None:
    def audit() -> list:
        r = target.http.get(
            f"{target.rest}/audit_logs",
            params={"resource_type": "eq.emergency_controls", "order": "created_at.desc"},
            headers=target.rest_headers(),
        )
        assert r.status_code == 200
        return r.json()

    before = len(audit())
    reason = f"c6-{uuid.uuid4().hex[:6]}"
    target.set_controls(wait=False, execution_safe_mode=True)
    r = target.http.patch(
        f"{target.rest}/emergency_controls",
        params={"id": "eq.00000000-0000-0000-0000-000000000001"},
        json={"execution_safe_mode": False, "reason": reason},
        headers=target.rest_headers(),
    )
    assert r.status_code in (200, 204)
    rows = audit()
    assert len(rows) == before + 2
    newest = rows[0]
    assert newest["action"] == "emergency_control_updated"
    assert newest["metadata"]["old"]["execution_safe_mode"] is True
    assert newest["metadata"]["new"]["execution_safe_mode"] is False
    assert newest["metadata"]["new"]["reason"] == reason


def test_c7_refused_requests_have_no_side_effect(target: Target) -> None:
    user = f"c7-{uuid.uuid4().hex[:8]}"
    raws = []
    target.set_controls(omnihub_kill_switch=True)
    for amount in (10, 50_000):
        raw = random_raw_tx()
        r, _ = target.trade(amount=amount, user=user, raw_tx=raw)
        assert r.status_code == 503
        raws.append(raw)
    target.set_controls(omnihub_kill_switch=False, execution_safe_mode=True)
    for amount in (10, 50_000):
        raw = random_raw_tx()
        assert target.trade(amount=amount, user=user, raw_tx=raw)[0].status_code == 503
        raws.append(raw)
    target.set_controls(execution_safe_mode=False, operator_takeover=True)
    for amount in (10, 50_000):
        raw = random_raw_tx()
        assert target.trade(amount=amount, user=user, raw_tx=raw)[0].status_code == 403
        raws.append(raw)
    target.clear_controls()
    raw = random_raw_tx()
    assert target.trade(amount=10, user=user, raw_tx=raw, key="wrong-key")[0].status_code == 401
    raws.append(raw)
    assert sum(target.sends_of(tx_hash(r)) for r in raws) == 0
    assert target.approvals_of(user) == []
