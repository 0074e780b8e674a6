"""CONTRACT section 6: RPC failover (P1-P3), cutting the paths through the fault proxy."""

from __future__ import annotations

import time

import pytest
from stackclient import Target

# Machine slack on top of the contract's bounds: two busy cores, other engineers' tests.
SLACK_S = 1.0


def _timed(fn):
    started = time.monotonic()
    r = fn()
    return r, time.monotonic() - started


@pytest.mark.parametrize("how", ["refused", "slow"])
def test_p1_primary_down_means_fallback(target: Target, how: str) -> None:
    timeout_s = target.limits["rpc_timeout_ms"] / 1000
    if how == "refused":
        target.proxy_enabled("rpc_primary", False)
    else:
        target.add_latency("rpc_primary", int(timeout_s * 1000) + 1500)
    for call in (target.agent, target.balance, lambda: target.trade(amount=3)[0]):
        r, took = _timed(call)
        assert r.status_code == 200, r.text
        assert r.headers["X-RPC-Provider"] == "fallback"
        assert r.json()["provider"] == "fallback"
        assert took <= timeout_s + 0.5 + SLACK_S, took


def test_p2_both_down_is_503_and_nothing_is_broadcast(target: Target) -> None:
    timeout_s = target.limits["rpc_timeout_ms"] / 1000
    target.proxy_enabled("rpc_primary", False)
    target.proxy_enabled("rpc_fallback", False)
    for call in (target.agent, target.balance):
        r, took = _timed(call)
        assert r.status_code == 503 and r.json()["code"] == "RPC_UNAVAILABLE"
        assert took <= 2 * timeout_s + 0.5 + SLACK_S
    (r, txh), took = _timed(lambda: target.trade(amount=4))
    assert r.status_code == 503 and r.json()["code"] == "RPC_UNAVAILABLE"
    assert took <= 2 * timeout_s + 0.5 + SLACK_S
    target.reset_faults()
    assert target.tx_on_chain(txh) == [None, None]
    assert target.sends_of(txh) == 0


def test_p2_both_slow_never_hangs(target: Target) -> None:
    timeout_s = target.limits["rpc_timeout_ms"] / 1000
    target.add_latency("rpc_primary", 5000)
    target.add_latency("rpc_fallback", 5000)
    r, took = _timed(target.balance)
    assert r.status_code == 503 and r.json()["code"] == "RPC_UNAVAILABLE"
    assert took <= 2 * timeout_s + 0.5 + SLACK_S


def test_p3_traffic_returns_to_primary_on_the_next_request(target: Target) -> None:
    target.proxy_enabled("rpc_primary", False)
    assert target.balance().headers["X-RPC-Provider"] == "fallback"
    target.proxy_enabled("rpc_primary", True)
    for i in range(len(target.profile["instances"])):
        r = target.balance(instance=i)
        assert r.status_code == 200 and r.headers["X-RPC-Provider"] == "primary"
