"""CONTRACT section 4: rate limiting (R1-R7) through the public surface.

The embedded stack runs fixed_window, the external Postgres/Redis stack sliding_window (both
in Redis); each test reads the algorithm from the stack's profile. Clients are told apart
by X-Forwarded-For (the stack trusts it), one fresh address per test client.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from stackclient import Target, new_client

SLACK_S = 1.0  # machine slack on top of the contract's time bounds


def _burst(target: Target, client: str, n: int, instances: int = 1) -> list[httpx.Response]:
    """n balance requests as fast as we can, spread over the first `instances` instances."""

    def one(i: int) -> httpx.Response:
        return target.balance(client=client, instance=i % instances)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(n)))


def _fresh_window(target: Target, client: str) -> None:
    """Bring `client` to the start of a window, as the contract's R1 says for each algorithm.

    fixed_window: exhaust the window, then wait the announced Retry-After.
    sliding_window: the client is new (no requests for two windows); the burst must not
    straddle a window boundary, where Upstash's approximation lets the previous window's
    part through early, so start it at least a second before the next boundary (windows are
    aligned to the epoch and this machine shares the stack's clock).
    """
    window = target.limits["rate_window_s"]
    if target.limits["rate_algorithm"] == "fixed_window":
        for _ in range(target.limits["rate_limit"] + 1):
            r = target.balance(client=client)
            if r.status_code == 429:
                time.sleep(int(r.headers["Retry-After"]))
                return
        pytest.fail("the limit never answered 429")
    if window - time.time() % window < 1.0:
        time.sleep(window - time.time() % window + 0.05)


@pytest.mark.parametrize("instances", [1, 2], ids=["R1-one-instance", "R5-two-instances"])
def test_r1_r5_a_burst_gets_exactly_the_limit(target: Target, instances: int) -> None:
    limit = target.limits["rate_limit"]
    client = new_client()
    _fresh_window(target, client)
    started = time.monotonic()
    answers = _burst(target, client, limit + 8, instances)
    took = time.monotonic() - started
    statuses = [r.status_code for r in answers]
    # (a burst slower than window/10 is outside R1's premise: say so if it ever fails)
    assert sum(s != 429 for s in statuses) == limit, (statuses, f"burst took {took:.2f} s")
    assert set(statuses) <= {200, 429}


def test_r2_a_client_under_the_limit_is_never_limited(target: Target) -> None:
    limit, window = target.limits["rate_limit"], target.limits["rate_window_s"]
    per_window = int(limit * 0.8)
    gap = window / per_window
    client = new_client()
    started = time.monotonic()
    n = int(per_window * 1.5)  # a window and a half, evenly
    for i in range(n):
        delay = started + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        r = target.balance(client=client, instance=i % 2)
        assert r.status_code == 200, (i, r.status_code, r.text)


def test_r3_retry_after_is_honest(target: Target) -> None:
    limit, window = target.limits["rate_limit"], target.limits["rate_window_s"]
    client = new_client()
    answers = _burst(target, client, limit + 3)
    refused = [r for r in answers if r.status_code == 429]
    assert refused
    for r in refused:
        assert r.json()["code"] == "RATE_LIMITED"
        retry_after = r.headers["Retry-After"]
        assert retry_after.isdigit() and 1 <= int(retry_after) <= window
    r = target.balance(client=client)
    assert r.status_code == 429
    time.sleep(int(r.headers["Retry-After"]))
    assert target.balance(client=client).status_code == 200


def test_r4_clients_are_counted_apart(target: Target) -> None:
    limit = target.limits["rate_limit"]
    flood, quiet = new_client(), new_client()
    answers = _burst(target, flood, limit + 5)
    assert any(r.status_code == 429 for r in answers)
    for i in range(3):
        assert target.balance(client=quiet, instance=i % 2).status_code == 200
    # every function counts, not only the one flooded
    assert target.agent(client=flood).status_code == 429


def test_r6_health_is_never_limited_and_does_not_count(target: Target) -> None:
    limit = target.limits["rate_limit"]
    client = new_client()
    url = f"{target.profile['base_url']}/functions/v1/healthz"
    for _ in range(2 * limit + 5):
        r = target.http.get(url, headers={"X-Forwarded-For": client})
        assert r.status_code == 200
    assert target.balance(client=client).status_code == 200


def test_r7_a_restored_redis_path_serves_every_request_at_once(target: Target) -> None:
    """After Redis comes back, no request pays for a connection the outage broke: a burst of
    trades on every instance is served (none refused as if Redis were still down)."""
    target.proxy_enabled("redis", False)
    assert target.trade(amount=5)[0].status_code == 503
    target.reset_faults()
    jobs = [(i % len(target.profile["instances"]), new_client()) for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda j: target.trade(amount=5, instance=j[0], client=j[1]), jobs))
    codes = [(r.status_code, r.json().get("code")) for r, _ in answers]
    assert all(c == (200, None) for c in codes), codes


@pytest.mark.parametrize("how", ["down", "slow"])
def test_r7_redis_unreachable_refuses_trades_and_serves_reads(target: Target, how: str) -> None:
    assert target.has_proxy("redis"), "every reference stack offers the redis path"
    timeout_s = target.limits["rpc_timeout_ms"] / 1000
    if how == "down":
        target.proxy_enabled("redis", False)
    else:
        target.add_latency("redis", 5000)
    started = time.monotonic()
    r, txh = target.trade(amount=5)
    took = time.monotonic() - started
    assert r.status_code == 503 and r.json()["code"] == "RATE_LIMIT_UNAVAILABLE", r.text
    assert took <= timeout_s + SLACK_S
    assert target.balance().status_code == 200  # expect.redis_outage_reads: serve
    assert target.agent().status_code == 200
    r2, txh2 = target.trade(amount=5, headers={"Idempotency-Key": f"r7-{how}"})
    assert r2.status_code == 503
    target.reset_faults()
    assert target.sends_of(txh) == 0 and target.sends_of(txh2) == 0
    r, txh = target.trade(amount=5)
    assert r.status_code == 200 and target.sends_of(txh) == 1
