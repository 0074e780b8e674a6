"""JSON-RPC with failover (CONTRACT section 6): the primary first, then the fallback.

Each attempt is bounded by `rpc_timeout` as a whole (connect, send and answer). There is no
circuit breaker: the next request tries the primary again (P3, rpc_recovery_s = 0).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import httpx

from omnidrill.target.telemetry import Telemetry


class RpcUnavailable(Exception):
    """Neither provider gave an answer (P2)."""


class RpcRejected(Exception):
    """A provider answered with a JSON-RPC error object."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(message)
        self.provider = provider


@dataclass(frozen=True)
class RpcResult:
    result: Any
    provider: str  # primary | fallback


class RpcClient:
    """Calls a method on the primary, and on the fallback when the primary gives no answer."""

    def __init__(
        self,
        primary_url: str,
        fallback_url: str,
        timeout_s: float,
        telemetry: Telemetry,
    ) -> None:
        self._urls = {"primary": primary_url, "fallback": fallback_url}
        self._timeout = timeout_s
        self._tm = telemetry
        self._ids = itertools.count(1)
        self._http = {
            name: httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            for name in self._urls
        }

    async def call(self, method: str, params: list[Any]) -> RpcResult:
        problems: list[str] = []
        for provider in ("primary", "fallback"):
            payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
            outcome = "error"
            try:
                async with asyncio.timeout(self._timeout):
                    resp = await self._http[provider].post(self._urls[provider], json=payload)
                if resp.status_code != 200:
                    raise ValueError(f"HTTP {resp.status_code}")
                body = resp.json()
                if not isinstance(body, dict):
                    raise ValueError("answer is not a JSON-RPC object")
                if body.get("error") is not None:
                    outcome = "ok"  # the provider is up; it refused this request
                    err = body["error"]
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                    raise RpcRejected(provider, str(msg)[:200])
                if "result" not in body:
                    raise ValueError("answer has neither result nor error")
                outcome = "ok"
                return RpcResult(body["result"], provider)
            except RpcRejected:
                raise
            except TimeoutError:
                outcome = "timeout"
                problems.append(f"{provider}: no answer within {int(self._timeout * 1000)} ms")
            except (httpx.HTTPError, ValueError) as exc:
                problems.append(f"{provider}: {type(exc).__name__}")
            finally:
                self._tm.count(
                    "omnihub.rpc.requests", tags=[f"provider:{provider}", f"outcome:{outcome}"]
                )
        raise RpcUnavailable("; ".join(problems))

    async def aclose(self) -> None:
        for client in self._http.values():
            await client.aclose()
