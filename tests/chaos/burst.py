"""Bursts of simultaneous requests over every instance of a stack, from client identities of
their own (IPv6 documentation addresses, never the 198.18.0.0/15 ones drills use), beside
whatever else the stack is doing.

Each burst mixes the three functions and pairs of identical trades under one Idempotency-Key
sent at the same moment to two instances (I1): where both succeed, they must get the same answer.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

_identities = itertools.count(1)


def _identity() -> str:
    # 2001:db8::/32 is for documentation (RFC 3849): no drill client is ever one of these
    n = next(_identities)
    return f"2001:db8:b0::{n // 65536:x}:{n % 65536:x}"


@dataclass
class BurstResult:
    """What one burst got back: answers by function, status and code; broken pairs."""

    size: int
    seconds: float
    answers: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    transport_errors: list[str] = field(default_factory=list)
    pair_mismatches: list[str] = field(default_factory=list)

    def statuses(self) -> Counter[int]:
        out: Counter[int] = Counter()
        for (_, status, _), n in self.answers.items():
            out[status] += n
        return out

    def all_ok(self) -> bool:
        """Every answer a success (200, or 202 for nothing here), no error, no broken pair."""
        return (
            not self.transport_errors
            and not self.pair_mismatches
            and set(self.statuses()) <= {200}
            and sum(self.answers.values()) == self.size
        )

    def summary(self) -> str:
        codes = ", ".join(f"{f} {s} {c}: {n}" for (f, s, c), n in sorted(self.answers.items()))
        extra = self.transport_errors[:3] + self.pair_mismatches[:3]
        return f"{self.size} requests in {self.seconds:.2f} s; {codes}" + (
            f"; problems: {extra}" if extra else ""
        )


def _sans_trace(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "trace_id"} if isinstance(body, dict) else body


def _random_raw_tx() -> str:
    return "0x" + secrets.token_hex(110)


async def _burst(profile: dict[str, Any], size: int, timeout_s: float) -> BurstResult:
    instances = list(profile.get("instances") or [profile["base_url"]])
    key = profile["keys"]["anon"]["value"]
    result = BurstResult(size=size, seconds=0.0)
    limits = httpx.Limits(max_connections=size + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

        async def send(i: int, fn: str, body: dict[str, Any], extra: dict[str, str]) -> Any:
            url = f"{instances[i % len(instances)]}/functions/v1/{fn}"
            headers = {"apikey": key, "Authorization": f"Bearer {key}", **extra}
            headers.setdefault("X-Forwarded-For", _identity())
            try:
                r = await client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                result.transport_errors.append(f"{fn}: {type(exc).__name__}")
                return None
            code = r.json().get("code", "") if r.headers.get("content-type", "") else ""
            result.answers[(fn, r.status_code, str(code))] += 1
            return r

        jobs = []
        pairs = []
        for slot in range(size):
            kind = slot % 4 if slot + 1 < size else 0
            if kind == 0:
                jobs.append(send(slot, "wallet-balance", {"address": "0x" + "5a" * 20}, {}))
            elif kind == 1:
                jobs.append(send(slot, "omnilink-agent", {"user_id": "burst", "intent": "b"}, {}))
            elif kind == 2:
                body = {"user_id": "burst", "amount_usd": 12.5, "raw_tx": _random_raw_tx()}
                jobs.append(send(slot, "execute-trade", body, {}))
            else:
                # with the next slot: the same trade under one key, at the same moment, to two
                # instances (I1)
                body = {"user_id": "burst-pair", "amount_usd": 7.0, "raw_tx": _random_raw_tx()}
                extra = {"Idempotency-Key": f"burst-{secrets.token_hex(8)}"}
                pairs.append(len(jobs))
                jobs.append(send(slot, "execute-trade", body, extra))
                jobs.append(send(slot + 1, "execute-trade", body, extra))
            if len(jobs) >= size:
                break
        started = time.monotonic()
        answers = await asyncio.gather(*jobs)
        result.seconds = time.monotonic() - started
        for at in pairs:
            a, b = answers[at], answers[at + 1]
            if a is None or b is None or not {a.status_code, b.status_code} <= {200, 202}:
                # only successes are remembered (I1): beside a failure (say RPC_UNAVAILABLE
                # while a drill cuts both providers) the other may still execute, once
                continue
            if (a.status_code, _sans_trace(a.json())) != (b.status_code, _sans_trace(b.json())):
                result.pair_mismatches.append(f"{a.status_code} {a.text[:80]} / {b.text[:80]}")
    return result


def burst(profile: dict[str, Any], size: int = 60, timeout_s: float = 30.0) -> BurstResult:
    """Send `size` requests at once over every instance and wait for all their answers."""
    return asyncio.run(_burst(profile, size, timeout_s))
