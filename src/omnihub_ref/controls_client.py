"""The functions' view of the control tables, over the PostgREST surface with the service-role key.

Controls are cached for `controls_ttl` and read at most once at a time per instance; a read
that fails (down, refused, slow, not exactly one well-formed row) fails closed (C1).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from omnihub_ref.config import FunctionsConfig
from omnihub_ref.telemetry import Telemetry


@dataclass(frozen=True)
class Controls:
    """The emergency controls as enforced; source is `table` or `failsafe` (C1)."""

    kill_switch: bool
    safe_mode: bool
    operator_takeover: bool
    allowed_operations: frozenset[str]
    source: str
    problem: str = ""


FAILSAFE_TEMPLATE = Controls(True, True, True, frozenset(), "failsafe")

_BOOL_COLUMNS = ("omnihub_kill_switch", "execution_safe_mode", "operator_takeover")


class ControlPlaneError(Exception):
    """The control API answered something the functions cannot use."""


def parse_controls(rows: Any) -> Controls:
    """Controls from the rows of `emergency_controls`, or raise ControlPlaneError saying why."""
    if not isinstance(rows, list):
        raise ControlPlaneError(f"expected a JSON array of rows, got {type(rows).__name__}")
    if len(rows) != 1:
        raise ControlPlaneError(f"expected exactly one emergency_controls row, got {len(rows)}")
    row = rows[0]
    if not isinstance(row, dict):
        raise ControlPlaneError("the emergency_controls row is not an object")
    for col in _BOOL_COLUMNS:
        if not isinstance(row.get(col), bool):
            raise ControlPlaneError(f"column {col} is missing or not a boolean")
    allowed = row.get("allowed_operations")
    if allowed is None:
        allowed = []
    if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
        raise ControlPlaneError("column allowed_operations is not an array of text")
    return Controls(
        kill_switch=row["omnihub_kill_switch"],
        safe_mode=row["execution_safe_mode"],
        operator_takeover=row["operator_takeover"],
        allowed_operations=frozenset(allowed),
        source="table",
    )


class ControlPlane:
    """HTTP client of the control API (controls and approval queue), as supabase-js would be."""

    def __init__(
        self,
        config: FunctionsConfig,
        telemetry: Telemetry | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._cfg = config
        self._tm = telemetry
        self._base = config.control_api_url.rstrip("/")
        key = config.service_role_key
        self._headers = {"apikey": key, "Authorization": f"Bearer {key}"}
        self._http = client or httpx.AsyncClient(
            timeout=httpx.Timeout(config.controls_timeout_s),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
        )
        self._cached: Controls | None = None
        self._cached_at = float("-inf")
        self._failsafe_shown = False
        self._inflight: asyncio.Future[Controls] | None = None

    async def controls(self, trace_id: str = "") -> Controls:
        """The controls to enforce now: cached for controls_ttl, failsafe when unreadable.

        A failed read is reported once (with the trace id of the request that made it), not
        once per request that the failsafe answer then refuses.
        """
        if time.monotonic() - self._cached_at < self._cfg.controls_ttl_s and self._cached:
            return self._cached
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        fut: asyncio.Future[Controls] = asyncio.get_running_loop().create_future()
        self._inflight = fut
        try:
            result = await self._read_controls()
            self._report(result, trace_id)
            self._cached, self._cached_at = result, time.monotonic()
            fut.set_result(result)
            return result
        except BaseException:  # cancelled: waiters fail closed rather than hang
            if not fut.done():
                fut.set_result(FAILSAFE_TEMPLATE)
            raise
        finally:
            self._inflight = None

    def _report(self, c: Controls, trace_id: str) -> None:
        if self._tm is None:
            return
        if c.source == "failsafe":
            self._tm.error(f"controls unreadable: {c.problem}", trace_id, "CONTROLS_UNREADABLE")
        tags = [f"source:{c.source}"]
        self._tm.gauge("omnihub.emergency.kill_switch", int(c.kill_switch), tags)
        self._tm.gauge("omnihub.emergency.safe_mode", int(c.safe_mode), tags)
        self._tm.gauge("omnihub.emergency.operator_takeover", int(c.operator_takeover), tags)
        if c.source == "failsafe":
            self._failsafe_shown = True
        elif self._failsafe_shown:
            # the fail-safe is over: its series says so, rather than repeat its last 1
            self._failsafe_shown = False
            self._tm.gauge("omnihub.emergency.kill_switch", 0, ["source:failsafe"])

    async def _read_controls(self) -> Controls:
        try:
            async with asyncio.timeout(self._cfg.controls_timeout_s):
                resp = await self._http.get(
                    f"{self._base}/emergency_controls",
                    params={"select": "*"},
                    headers=self._headers,
                )
            if resp.status_code != 200:
                raise ControlPlaneError(f"control API answered HTTP {resp.status_code}")
            return parse_controls(resp.json())
        except TimeoutError:
            problem = f"no answer within controls_timeout ({self._cfg.controls_timeout_ms} ms)"
        except httpx.HTTPError as exc:
            problem = f"control API unreachable ({type(exc).__name__})"
        except (ControlPlaneError, ValueError) as exc:
            problem = str(exc)
        return Controls(True, True, True, frozenset(), "failsafe", problem)

    # --- approval queue -------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self._headers, **kw.pop("headers", {})}
        async with asyncio.timeout(self._cfg.controls_timeout_s):
            return await self._http.request(method, f"{self._base}/{path}", headers=headers, **kw)

    async def create_approval(self, row: dict[str, Any]) -> dict[str, Any]:
        resp = await self._request(
            "POST",
            "approval_queue",
            json=row,
            headers={"Prefer": "return=representation"},
        )
        if resp.status_code not in (200, 201):
            raise ControlPlaneError(f"creating the approval answered HTTP {resp.status_code}")
        body = resp.json()
        rows = body if isinstance(body, list) else [body]
        if len(rows) != 1 or not isinstance(rows[0], dict) or "id" not in rows[0]:
            raise ControlPlaneError("creating the approval did not return the row")
        return rows[0]

    async def get_approval(self, approval_id: str) -> dict[str, Any] | None:
        resp = await self._request(
            "GET", "approval_queue", params={"id": f"eq.{approval_id}", "select": "*"}
        )
        if resp.status_code != 200:
            raise ControlPlaneError(f"reading the approval answered HTTP {resp.status_code}")
        rows = resp.json()
        if not isinstance(rows, list) or len(rows) > 1:
            raise ControlPlaneError("reading the approval returned an unexpected shape")
        return rows[0] if rows else None

    async def update_approval(self, approval_id: str, changes: dict[str, Any]) -> None:
        resp = await self._request(
            "PATCH", "approval_queue", params={"id": f"eq.{approval_id}"}, json=changes
        )
        if resp.status_code not in (200, 204):
            raise ControlPlaneError(f"updating the approval answered HTTP {resp.status_code}")

    async def pending_by_risk(self) -> dict[str, int]:
        """Count of pending approvals per risk level (for the pending gauge)."""
        resp = await self._request(
            "GET", "approval_queue", params={"status": "eq.pending", "select": "risk_level"}
        )
        if resp.status_code != 200:
            raise ControlPlaneError(f"listing approvals answered HTTP {resp.status_code}")
        counts: dict[str, int] = {"high": 0, "critical": 0}
        for row in resp.json():
            level = str(row.get("risk_level"))
            counts[level] = counts.get(level, 0) + 1
        return counts

    async def aclose(self) -> None:
        await self._http.aclose()
