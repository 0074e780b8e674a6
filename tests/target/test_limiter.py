"""The rate limiters and the idempotency store, through their Python API (R1-R3, R5, I1)."""

from __future__ import annotations

import asyncio
import math

import pytest

from omnihub_ref.idempotency import (
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
    fingerprint,
)
from omnihub_ref.limiter import (
    LimiterUnavailable,
    MemoryRateLimiter,
    RedisRateLimiter,
    sliding_window_decide,
)


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


_seq = iter(range(1_000_000))


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request):
    """A factory of limiters of either backend over a fake clock (call it inside a loop)."""
    target = None
    if request.param == "redis":
        target = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")

    def make(limit: int, window_s: int, algorithm: str, clock: FakeClock):
        if target is None:
            return MemoryRateLimiter(limit, window_s, algorithm, clock=clock)
        import redis.asyncio as aioredis

        url, prefix = target
        return RedisRateLimiter(
            aioredis.Redis.from_url(url),
            limit,
            window_s,
            algorithm,
            prefix=f"{prefix}lim{next(_seq)}:",
            clock=clock,
        )

    return make


async def hits(limiter, client: str, n: int) -> list:
    return [await limiter.hit(client) for _ in range(n)]


def run(coro) -> None:
    asyncio.run(coro)


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window"])
def test_burst_gets_exactly_the_limit(make_limiter, algorithm: str) -> None:
    async def go():
        clock = FakeClock(1_000_000.0)  # a window boundary (window 10 s)
        lim = make_limiter(20, 10, algorithm, clock)
        got = await hits(lim, "c1", 30)
        assert sum(d.allowed for d in got) == 20
        assert all(d.allowed for d in got[:20]) and not any(d.allowed for d in got[20:])

    run(go())


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window"])
def test_retry_after_is_whole_seconds_within_the_window_and_honest(
    make_limiter, algorithm: str
) -> None:
    window = 10

    async def go():
        # Rejections at several phases of the window: Retry-After must always be honoured.
        for phase in (0.01, 0.3, 2.5, 7.9, 9.99):
            clock = FakeClock(2_000_000.0 + phase)
            lim = make_limiter(5, window, algorithm, clock)
            client = f"c-{algorithm}-{phase}"
            assert sum(d.allowed for d in await hits(lim, client, 5)) == 5
            refused = (await hits(lim, client, 1))[0]
            assert not refused.allowed
            assert 1 <= refused.retry_after_s <= window
            clock.t += refused.retry_after_s
            assert (await hits(lim, client, 1))[0].allowed, (phase, refused.retry_after_s)

    run(go())


def test_refused_requests_do_not_count(make_limiter) -> None:
    async def go():
        clock = FakeClock(3_000_000.0)
        lim = make_limiter(3, 10, "fixed_window", clock)
        assert sum(d.allowed for d in await hits(lim, "c", 50)) == 3
        clock.t += 10
        assert sum(d.allowed for d in await hits(lim, "c", 5)) == 3

    run(go())


def test_clients_are_counted_apart(make_limiter) -> None:
    async def go():
        clock = FakeClock(4_000_000.0)
        lim = make_limiter(3, 10, "fixed_window", clock)
        await hits(lim, "flood", 20)
        assert all(d.allowed for d in await hits(lim, "quiet", 3))

    run(go())


def test_sliding_window_weighs_the_previous_window(make_limiter) -> None:
    async def go():
        clock = FakeClock(5_000_000.0)
        lim = make_limiter(10, 10, "sliding_window", clock)
        assert sum(d.allowed for d in await hits(lim, "c", 10)) == 10
        clock.t += 15  # half-way into the next window: floor(10 * 0.5) = 5 still weigh
        assert sum(d.allowed for d in await hits(lim, "c", 10)) == 5
        # a fixed window would have let all 10 through here
        clock2 = FakeClock(5_000_000.0)
        fixed = make_limiter(10, 10, "fixed_window", clock2)
        await hits(fixed, "c", 10)
        clock2.t += 15
        assert sum(d.allowed for d in await hits(fixed, "c", 10)) == 10

    run(go())


def test_sliding_window_flood_averages_at_most_the_limit() -> None:
    clock = FakeClock(6_000_000.0)
    lim = MemoryRateLimiter(10, 10, "sliding_window", clock=clock)
    admitted = 0
    for _ in range(600):  # 60 s of 10 requests per second
        admitted += lim.hit_sync("c").allowed
        clock.t += 0.1
    assert admitted <= 10 * 6 + 10  # six windows, plus the first window's burst


def test_sliding_decide_waits_are_exact() -> None:
    # previous 10, current 5, limit 10, half-way: floor(5)+5 = 10 -> refuse;
    ok, wait = sliding_window_decide(10, 5, 5.0, 10, 10)
    assert not ok
    # admitted once floor(10*w) < 5, i.e. w < 0.5: just after 5.0 s
    assert 0 < wait <= 0.01
    ok, wait = sliding_window_decide(0, 10, 3.0, 10, 10)
    assert not ok and math.isclose(wait, 7.0)


def test_redis_limiter_unreachable_raises_quickly() -> None:
    import time

    import redis.asyncio as aioredis

    from omnidrill.netutil import free_port

    port = free_port()
    client = aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2
    )
    lim = RedisRateLimiter(client, 5, 10, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        asyncio.run(lim.hit("c"))
    assert time.monotonic() - started < 2.0  # generous: 0.3 s bound on a busy machine


# --- idempotency --------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def store_factory(request):
    if request.param == "memory":
        return lambda: MemoryIdempotencyStore()
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")

    def make():
        import redis.asyncio as aioredis

        return RedisIdempotencyStore(aioredis.Redis.from_url(url), prefix=f"{prefix}idemtest:")

    return make


def test_concurrent_claims_have_one_owner_and_identical_replays(store_factory) -> None:
    async def go():
        store = store_factory()
        key = f"k-{id(store)}"
        fp = fingerprint({"a": 1})
        runs = 0

        async def request() -> tuple[int, dict]:
            nonlocal runs
            claim = await store.claim(key, fp, wait_s=5)
            if claim.outcome == "owner":
                runs += 1
                await asyncio.sleep(0.1)
                await store.complete(key, fp, 200, {"tx_hash": "0xabc", "provider": "primary"})
                return 200, {"tx_hash": "0xabc", "provider": "primary"}
            assert claim.outcome == "replay"
            return claim.status, claim.body

        answers = await asyncio.gather(*[request() for _ in range(8)])
        return runs, answers

    runs, answers = asyncio.run(go())
    assert runs == 1
    assert all(a == answers[0] for a in answers)


def test_other_body_is_a_mismatch_and_errors_are_forgotten(store_factory) -> None:
    async def go():
        store = store_factory()
        key = f"m-{id(store)}"
        first = await store.claim(key, "fp1", 1)
        other = await store.claim(key, "fp2", 1)
        await store.complete(key, "fp1", 503, {"error": "x"})  # not remembered
        again = await store.claim(key, "fp1", 1)
        return first.outcome, other.outcome, again.outcome

    assert asyncio.run(go()) == ("owner", "mismatch", "owner")


def test_fingerprint_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1, "approval_id": "x"})


def test_fixed_window_flood_averages_the_limit_and_at_most_twice_across_a_boundary() -> None:
    clock = FakeClock(7_000_000.0 + 5)  # mid-window
    lim = MemoryRateLimiter(10, 10, "fixed_window", clock=clock)
    admitted_at: list[float] = []
    for _ in range(600):  # 60 s of 10 requests per second
        if lim.hit_sync("c").allowed:
            admitted_at.append(clock.t)
        clock.t += 0.1
    assert len(admitted_at) <= 10 * 7  # six full windows and the partial first
    # any rolling 10 s span holds at most 2 x limit
    for t in admitted_at:
        assert sum(1 for u in admitted_at if t <= u < t + 10) <= 20
