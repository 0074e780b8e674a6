"""The Redis rate limiter and idempotency store, through their Python API (R1-R3, R5, I1)."""

from __future__ import annotations

import asyncio
import math

import pytest

from omnihub_ref.idempotency import RedisIdempotencyStore, fingerprint
from omnihub_ref.limiter import LimiterUnavailable, RedisRateLimiter


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


_seq = iter(range(1_000_000))


@pytest.fixture
def make_limiter(redis_url: str, redis_prefix: str):
    """A factory of limiters over a fake clock, each with keys of its own (call it in a loop)."""

    def make(limit: int, window_s: int, algorithm: str, clock: FakeClock):
        import redis.asyncio as aioredis

        return RedisRateLimiter(
            aioredis.Redis.from_url(redis_url),
            limit,
            window_s,
            algorithm,
            prefix=f"{redis_prefix}lim{next(_seq)}:",
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


def test_sliding_window_flood_averages_at_most_the_limit(make_limiter) -> None:
    async def go() -> int:
        clock = FakeClock(6_000_000.0)
        lim = make_limiter(10, 10, "sliding_window", clock)
        admitted = 0
        for _ in range(600):  # 60 s of 10 requests per second
            admitted += (await lim.hit("c")).allowed
            clock.t += 0.1
        return admitted

    assert asyncio.run(go()) <= 10 * 6 + 10  # six windows, plus the first window's burst


def test_sliding_window_waits_are_exact(make_limiter) -> None:
    async def go() -> None:
        clock = FakeClock(8_000_000.0)  # a window boundary (window 10 s)
        lim = make_limiter(10, 10, "sliding_window", clock)
        assert sum(d.allowed for d in await hits(lim, "c", 10)) == 10
        clock.t += 10
        assert sum(d.allowed for d in await hits(lim, "c", 5)) == 0  # previous 10 weigh fully
        clock.t += 5  # half-way: floor(10 * 0.5) = 5 weigh, 5 more fit
        assert sum(d.allowed for d in await hits(lim, "c", 5)) == 5
        refused = (await hits(lim, "c", 1))[0]
        # previous 10, current 5: admitted again once floor(10 * w) < 5, just after mid-window
        assert not refused.allowed and refused.retry_after_s == 1
        clock2 = FakeClock(9_000_003.0)
        other = make_limiter(10, 10, "sliding_window", clock2)
        await hits(other, "d", 10)  # previous window full, 3 s into it, nothing in the next
        clock2.t = 9_000_013.0
        first = (await hits(other, "d", 8))[-1]  # floor(10*0.7) = 7 + 3 admitted: refused
        assert not first.allowed and math.isclose(first.retry_after_s, 1)

    asyncio.run(go())


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


@pytest.fixture
def store_factory(redis_url: str, redis_prefix: str):
    def make():
        import redis.asyncio as aioredis

        return RedisIdempotencyStore(
            aioredis.Redis.from_url(redis_url), prefix=f"{redis_prefix}idemtest{next(_seq)}:"
        )

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


def test_fixed_window_flood_averages_the_limit_and_at_most_twice_across_a_boundary(
    make_limiter,
) -> None:
    async def go() -> list[float]:
        clock = FakeClock(7_000_000.0 + 5)  # mid-window
        lim = make_limiter(10, 10, "fixed_window", clock)
        admitted_at: list[float] = []
        for _ in range(600):  # 60 s of 10 requests per second
            if (await lim.hit("c")).allowed:
                admitted_at.append(clock.t)
            clock.t += 0.1
        return admitted_at

    admitted_at = asyncio.run(go())
    assert len(admitted_at) <= 10 * 7  # six full windows and the partial first
    # any rolling 10 s span holds at most 2 x limit
    for t in admitted_at:
        assert sum(1 for u in admitted_at if t <= u < t + 10) <= 20
