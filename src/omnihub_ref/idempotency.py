"""Idempotency store of CONTRACT section 5, in Redis.

A key is claimed atomically: the first request owns it and runs the operation; the others
wait for its answer and replay it. A different body under the same key is a mismatch (I2).
Only 200 and 202 answers are remembered; any other answer releases the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

REMEMBERED_STATUSES = frozenset({200, 202})
DAY_S = 24 * 3600


def fingerprint(body: Any) -> str:
    """Stable hash of a parsed JSON body: key order and whitespace do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """owner: run the operation, then complete() or release(); replay: answer status/body."""

    outcome: Literal["owner", "replay", "mismatch", "busy"]
    status: int = 0
    body: dict[str, Any] | None = None


class StoreUnavailable(Exception):
    """The store cannot be reached."""


_POLL_S = 0.02


# claim: KEYS[1]; ARGV fingerprint, pending_ttl_ms. Returns {outcome, status, body}.
_CLAIM = """
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('SET', KEYS[1], cjson.encode({fp=ARGV[1], state='pending'}), 'PX', ARGV[2])
  return {'owner', 0, ''}
end
local row = cjson.decode(raw)
if row.fp ~= ARGV[1] then return {'mismatch', 0, ''} end
if row.state == 'done' then return {'replay', row.status, row.body} end
return {'pending', 0, ''}
"""

# release: delete only our own pending claim.
_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local row = cjson.decode(raw)
if row.state == 'pending' and row.fp == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class RedisIdempotencyStore:
    """Store in Redis: keys are global across instances and machines (I1)."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "omnihub:",
        ttl_s: int = DAY_S,
        pending_ttl_s: float = 60.0,
        timeout_s: float = 1.0,
    ) -> None:
        self._redis, self._prefix, self._ttl = client, prefix, ttl_s
        self._pending_ms = int(pending_ttl_s * 1000)
        self._timeout = timeout_s
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def _key(self, key: str) -> str:
        return f"{self._prefix}idem:{key}"

    async def _call(self, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await coro
        except (TimeoutError, OSError, aioredis.RedisError) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def claim(self, key: str, fp: str, wait_s: float) -> Claim:
        deadline = time.monotonic() + wait_s
        while True:
            outcome, status, body = await self._call(
                self._claim(keys=[self._key(key)], args=[fp, self._pending_ms])
            )
            outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
            if outcome == "replay":
                return Claim("replay", int(status), json.loads(body))
            if outcome in ("owner", "mismatch"):
                return Claim(outcome)
            if time.monotonic() >= deadline:
                return Claim("busy")
            await asyncio.sleep(_POLL_S)

    async def complete(self, key: str, fp: str, status: int, body: dict[str, Any]) -> None:
        if status not in REMEMBERED_STATUSES:
            await self.release(key, fp)
            return
        row = {"fp": fp, "state": "done", "status": status, "body": json.dumps(body)}
        await self._call(self._redis.set(self._key(key), json.dumps(row), ex=self._ttl))

    async def release(self, key: str, fp: str) -> None:
        await self._call(self._release(keys=[self._key(key)], args=[fp]))

    async def load_scripts(self) -> None:
        for script in (self._claim, self._release):
            await self._redis.script_load(script.script)
