"""Faulty variants of the reference target, for tests only: each breaks one contract clause.

Put this folder on PYTHONPATH and set OMNIDRILL_FAULT=<name> in the environment of the
process that runs the reference stack; the named behaviour is replaced before it starts.
Nothing here ships: the target itself has no such switches.
"""

from __future__ import annotations

import os

FAULT = os.environ.get("OMNIDRILL_FAULT", "")


def _controls_uppercase() -> None:
    """C2/C5: the design's sample code, ported literally: upper-case column names."""
    from omnihub_ref import controls_client as cc

    def parse(rows):  # type: ignore[no-untyped-def]
        row = rows[0] if isinstance(rows, list) and len(rows) == 1 else {}
        return cc.Controls(
            kill_switch=bool(row.get("OMNIHUB_KILL_SWITCH")),
            safe_mode=bool(row.get("EXECUTION_SAFE_MODE")),
            operator_takeover=bool(row.get("OPERATOR_TAKEOVER")),
            allowed_operations=frozenset(row.get("ALLOWED_OPERATIONS") or []),
            source="table",
        )

    cc.parse_controls = parse


def _controls_slow() -> None:
    """C5: a cache six times longer than the controls TTL the target declares."""
    from omnihub_ref import controls_client as cc

    original = cc.ControlPlane.__init__

    def init(self, config, *a, **kw):  # type: ignore[no-untyped-def]
        original(self, config, *a, **kw)
        self._cfg = config.with_(controls_ttl_ms=max(1000, config.controls_ttl_ms * 6))

    cc.ControlPlane.__init__ = init


def _one_instance() -> None:
    """C2/C5: only the first instance enforces the controls."""
    from omnihub_ref import controls_client as cc
    from omnihub_ref import functions as fn

    # Each instance is a process of its own; the supervisor names it in OMNIHUB_PART.
    if os.environ.get("OMNIHUB_PART", "functions-0") == "functions-0":
        return
    original = fn.Functions.__init__

    def init(self, *a, **kw):  # type: ignore[no-untyped-def]
        original(self, *a, **kw)

        async def permissive(*a, **kw):  # type: ignore[no-untyped-def]
            return cc.Controls(False, False, False, frozenset(), "table")

        self.controls.controls = permissive

    fn.Functions.__init__ = init


def _fail_open_on_timeout() -> None:
    """C1: fails closed when the store refuses, but open when it is slow."""
    import asyncio

    from omnihub_ref import controls_client as cc

    async def read(self):  # type: ignore[no-untyped-def]
        try:
            async with asyncio.timeout(self._cfg.controls_timeout_s):
                resp = await self._http.get(
                    f"{self._base}/emergency_controls",
                    params={"select": "*"},
                    headers=self._headers,
                )
            return cc.parse_controls(resp.json())
        except TimeoutError:
            return cc.Controls(False, False, False, frozenset(), "table")
        except Exception:
            return cc.FAILSAFE_TEMPLATE

    cc.ControlPlane._read_controls = read


def _broadcast_before_refusing() -> None:
    """C7: a trade is sent to the provider, then the controls are judged and it is refused."""
    import json

    from omnihub_ref import functions as fn

    original = fn.Functions._judge

    async def judge(self, request, name, op, trace_id):  # type: ignore[no-untyped-def]
        answer = await original(self, request, name, op, trace_id)
        if op == "execute_trade" and answer.status in (403, 503):
            try:
                raw = json.loads(await request.body())
                await self.rpc.call("eth_sendRawTransaction", [raw["raw_tx"]])
            except Exception:
                pass
        return answer

    fn.Functions._judge = judge


def _takeover_paths() -> None:
    """C3: the allow-list is compared with paths (execute-trade), not operation names."""
    from omnihub_ref import controls_client as cc

    original = cc.parse_controls

    def parse(rows):  # type: ignore[no-untyped-def]
        c = original(rows)
        paths = frozenset(a.replace("_", "-") for a in c.allowed_operations)
        return cc.Controls(c.kill_switch, c.safe_mode, c.operator_takeover, paths, c.source)

    cc.parse_controls = parse


def _safe_mode_everything() -> None:
    """C4: safe mode refuses read-only functions too."""
    from omnihub_ref import functions as fn

    fn.SIDE_EFFECTS = frozenset(fn.OPERATIONS.values())


def _approval_not_compared() -> None:
    """A2: an approved id executes whatever request carries it."""
    from omnihub_ref import functions as fn

    original = fn.Functions._approved_trade

    async def approved(self, body):  # type: ignore[no-untyped-def]
        get = self.controls.get_approval

        async def lenient(aid):  # type: ignore[no-untyped-def]
            row = await get(aid)
            if row is not None:
                row = {
                    **row,
                    "user_id": body["user_id"],
                    "amount_usd": body["amount_usd"],
                    "request": {**(row.get("request") or {}), "tx_hash": body["tx_hash"]},
                }
            return row

        self.controls.get_approval = lenient
        try:
            return await original(self, body)
        finally:
            self.controls.get_approval = get

    fn.Functions._approved_trade = approved


def _approval_never_expires() -> None:
    """A4: the functions treat an expired approval as still pending."""
    from omnihub_ref import functions as fn

    original = fn.Functions._approved_trade
    fn._parse_ts = lambda value: None

    async def approved(self, body):  # type: ignore[no-untyped-def]
        get = self.controls.get_approval

        async def revived(aid):  # type: ignore[no-untyped-def]
            row = await get(aid)
            if row is not None and row.get("status") == "expired":
                row = {**row, "status": "pending"}
            return row

        self.controls.get_approval = revived
        try:
            return await original(self, body)
        finally:
            self.controls.get_approval = get

    fn.Functions._approved_trade = approved


def _no_fallback() -> None:
    """P1: the fallback provider is never tried."""
    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.__init__

    def init(self, primary_url, fallback_url, *a, **kw):  # type: ignore[no-untyped-def]
        original(self, primary_url, primary_url, *a, **kw)

    rc.RpcClient.__init__ = init


def _no_rpc_timeout() -> None:
    """P1: a slow primary is waited for, however long it takes."""
    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.__init__

    def init(self, primary_url, fallback_url, timeout_s, *a, **kw):  # type: ignore[no-untyped-def]
        original(self, primary_url, fallback_url, timeout_s * 10, *a, **kw)

    rc.RpcClient.__init__ = init


def _sticky_fallback() -> None:
    """P3: once the primary failed, traffic never returns to it."""
    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.call

    async def call(self, method, params):  # type: ignore[no-untyped-def]
        if getattr(self, "_stuck", False):
            return await original_fallback_only(self, method, params)
        res = await original(self, method, params)
        if res.provider == "fallback":
            self._stuck = True
        return res

    async def original_fallback_only(self, method, params):  # type: ignore[no-untyped-def]
        primary = self._http["primary"]
        self._http["primary"] = self._http["fallback"]
        try:
            res = await original(self, method, params)
        finally:
            self._http["primary"] = primary
        return rc.RpcResult(res.result, "fallback")

    rc.RpcClient.call = call


def _hang_when_rpc_down() -> None:
    """P2: with both providers down, requests hang for a long while before the 503."""
    import asyncio

    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.call

    async def call(self, method, params):  # type: ignore[no-untyped-def]
        try:
            return await original(self, method, params)
        except rc.RpcUnavailable:
            await asyncio.sleep(self._timeout * 4)
            raise

    rc.RpcClient.call = call


def _fallback_on_connect_errors_only() -> None:
    """P4: the fallback is tried only when the primary cannot be reached; an answer that fails
    (HTTP 429 or 5xx, a JSON-RPC server error) goes back to the caller as an RPC error."""
    from omnihub_ref import rpc_client as rc

    original = rc.judge_reply

    def judge(reply):  # type: ignore[no-untyped-def]
        try:
            return original(reply)
        except (rc.ProviderDown, ValueError) as exc:
            raise rc.RpcRejected("", str(exc)) from None

    rc.judge_reply = judge


def _rpc_error_as_success() -> None:
    """P4: a 200 answer is a success, whatever its body says (a JSON-RPC error included)."""
    import json

    from omnihub_ref import rpc_client as rc

    original = rc.judge_reply

    def judge(reply):  # type: ignore[no-untyped-def]
        if reply.status == 200:
            body = json.loads(reply.body)
            if isinstance(body, dict) and body.get("error") is not None:
                return body.get("result", body["error"])
        return original(reply)

    rc.judge_reply = judge


def _broadcast_retry_forever() -> None:
    """P4: a broadcast the primary answers with a failure is sent to the primary again, and
    again, until it takes it; never to the fallback (unreachable primaries still fail over)."""
    import asyncio
    import itertools

    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.call

    async def call(self, method, params):  # type: ignore[no-untyped-def]
        if method != "eth_sendRawTransaction":
            return await original(self, method, params)
        for n in itertools.count(1):
            payload = {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await self._http["primary"].post_json(payload)
                return rc.RpcResult(rc.judge_reply(reply), "primary")
            except rc.ProviderDown:
                await asyncio.sleep(0.05)
            except (rc.TransportError, TimeoutError, ValueError):
                return await original(self, method, params)
        raise AssertionError("unreachable")

    rc.RpcClient.call = call


def _reads_from_cache_on_error() -> None:
    """P4: a read the primary answers with a failure is served from the last good answer,
    labelled as the fallback's, without asking the fallback (trades still fail over)."""
    import asyncio
    import json

    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.call
    cache: dict[str, object] = {}

    async def call(self, method, params):  # type: ignore[no-untyped-def]
        if method == "eth_sendRawTransaction":
            return await original(self, method, params)
        key = json.dumps([method, params])
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._http["primary"].post_json(payload)
            result = rc.judge_reply(reply)
        except rc.ProviderDown:
            if key in cache:
                return rc.RpcResult(cache[key], "fallback")
            return await original(self, method, params)
        except (rc.TransportError, TimeoutError, ValueError):
            return await original(self, method, params)
        cache[key] = result
        return rc.RpcResult(result, "primary")

    rc.RpcClient.call = call


def _idempotency_ignored() -> None:
    """I1: the Idempotency-Key header is ignored."""
    from omnihub_ref import functions as fn

    fn.idempotency_key = lambda request: None


def _apikey_only() -> None:
    """S1: only the apikey header is checked; Authorization is ignored."""
    import hmac

    from omnihub_ref import functions as fn

    def key_ok(self, request):  # type: ignore[no-untyped-def]
        given = request.headers.get("apikey", "").encode()
        return bool(given) and any(hmac.compare_digest(given, k) for k in self._keys)

    fn.Functions._key_ok = key_ok


def _redis_fail_open() -> None:
    """R7: with the limiter unreachable, trades go through."""
    from omnihub_ref import functions as fn

    fn.SIDE_EFFECTS = frozenset()


FAULTS = {
    "controls_uppercase": _controls_uppercase,
    "controls_slow": _controls_slow,
    "one_instance": _one_instance,
    "fail_open_on_timeout": _fail_open_on_timeout,
    "broadcast_before_refusing": _broadcast_before_refusing,
    "takeover_paths": _takeover_paths,
    "safe_mode_everything": _safe_mode_everything,
    "approval_not_compared": _approval_not_compared,
    "approval_never_expires": _approval_never_expires,
    "no_fallback": _no_fallback,
    "no_rpc_timeout": _no_rpc_timeout,
    "sticky_fallback": _sticky_fallback,
    "hang_when_rpc_down": _hang_when_rpc_down,
    "fallback_on_connect_errors_only": _fallback_on_connect_errors_only,
    "rpc_error_as_success": _rpc_error_as_success,
    "broadcast_retry_forever": _broadcast_retry_forever,
    "reads_from_cache_on_error": _reads_from_cache_on_error,
    "idempotency_ignored": _idempotency_ignored,
    "apikey_only": _apikey_only,
    "redis_fail_open": _redis_fail_open,
}

if FAULT:
    FAULTS[FAULT]()
