"""Rate limiting of CONTRACT section 4 in Redis: fixed and sliding window, one Lua script.

Only admitted requests are counted (429 answers do not count, R1). Windows are aligned to
the epoch, as Upstash aligns them, so every instance that shares a store shares the windows.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from omnihub_ref.config import RATE_ALGORITHMS

Clock = Callable[[], float]


@dataclass(frozen=True)
class Decision:
    """The verdict on one request; retry_after_s is only meaningful when refused."""

    allowed: bool
    retry_after_s: int
    remaining: int


class LimiterUnavailable(Exception):
    """The limiter's store cannot be reached (R7)."""


def _retry_after(wait_s: float, window_s: int) -> int:
    """Whole seconds, at least 1 and at most the window (R3)."""
    return max(1, min(window_s, math.ceil(wait_s - 1e-9)))


# KEYS[1] current window counter, KEYS[2] previous window counter.
# ARGV: limit, window_ms, now_ms, algorithm (0 fixed, 1 sliding). Returns {admitted, wait_ms, n}.
_LUA = """
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local now_ms = tonumber(ARGV[3])
local sliding = ARGV[4] == '1'
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local elapsed = now_ms % window_ms
local to_boundary = window_ms - elapsed
if not sliding then
  if current < limit then
    redis.call('INCR', KEYS[1])
    redis.call('PEXPIRE', KEYS[1], window_ms * 2)
    return {1, 0, current + 1}
  end
  return {0, to_boundary, current}
end
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local weight = 1 - elapsed / window_ms
if math.floor(previous * weight) + current < limit then
  redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], window_ms * 3)
  return {1, 0, current + 1}
end
local room = limit - current
if room > 0 and previous > 0 then
  local wait = (1 - room / previous) * window_ms - elapsed
  if wait < 0 then wait = 0 end
  wait = wait + 1
  if wait > to_boundary then wait = to_boundary end
  return {0, math.floor(wait), current}
end
return {0, to_boundary, current}
"""


class RedisRateLimiter:
    """Limiter in Redis: one atomic Lua script per request, shared by every instance (R5)."""

    def __init__(
        self,
        client: aioredis.Redis,
        limit: int,
        window_s: int,
        algorithm: str = "fixed_window",
        prefix: str = "omnihub:",
        clock: Clock = time.time,
        timeout_s: float = 1.0,
    ) -> None:
        if algorithm not in RATE_ALGORITHMS:
            raise ValueError(f"rate algorithm must be one of {RATE_ALGORITHMS}, got {algorithm!r}")
        self.limit, self.window_s, self.algorithm = limit, window_s, algorithm
        self._redis, self._prefix, self._clock, self._timeout = client, prefix, clock, timeout_s
        self._script = client.register_script(_LUA)

    async def hit(self, client: str) -> Decision:
        now_ms = int(self._clock() * 1000)
        window_ms = self.window_s * 1000
        win = now_ms // window_ms
        base = f"{self._prefix}rl:{self.algorithm}:{self.window_s}:{client}:"
        try:
            async with asyncio.timeout(self._timeout):
                admitted, wait_ms, n = await self._script(
                    keys=[f"{base}{win}", f"{base}{win - 1}"],
                    args=[
                        self.limit,
                        window_ms,
                        now_ms,
                        "1" if self.algorithm == "sliding_window" else "0",
                    ],
                )
        except (TimeoutError, OSError, aioredis.RedisError) as exc:
            raise LimiterUnavailable(type(exc).__name__) from exc
        if int(admitted) == 1:
            return Decision(True, 0, max(0, self.limit - int(n)))
        return Decision(False, _retry_after(int(wait_ms) / 1000, self.window_s), 0)

    async def load_scripts(self) -> None:
        await self._redis.script_load(self._script.script)
