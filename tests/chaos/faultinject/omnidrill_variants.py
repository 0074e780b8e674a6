"""The catalogue of faulty variants of the reference stack: each breaks one sentence of one
contract clause by the smallest realistic change, near its bound.

A variant is applied in the stack's own process (sitecustomize.py in this folder, with
OMNIDRILL_FAULT=<name>); nothing here ships, the stack has no switch for any of it. Patches
reach only the parts of the stack that stay whatever its process layout: the functions, the
controls client, the Redis limiter and idempotency store, the Postgres store's migrations, the
RPC client. `clause` is what the standard suite must fail; `also` names a clause whose own
sentence the same defect breaks (said why in `doc`), so it may fail too.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    name: str
    clause: str
    doc: str
    patch: Callable[[], None]
    also: frozenset[str] = field(default_factory=frozenset)
    ci: bool = False  # the one variant of its clause that CI runs


CATALOGUE: dict[str, Variant] = {}


def variant(clause: str, also: tuple[str, ...] = (), ci: bool = False) -> Callable[..., Any]:
    def add(fn: Callable[[], None]) -> Callable[[], None]:
        name = fn.__name__.lstrip("_")
        doc = (fn.__doc__ or "").strip()
        CATALOGUE[name] = Variant(name, clause, doc, fn, frozenset(also), ci)
        return fn

    return add


# --- shared helpers (run inside the stack's process) -------------------------------------------

REQUEST: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("omnidrill_request")


def _first_instance(tag: str) -> bool:
    """True in the stack's first functions instance (each is a process of its own, named in
    OMNIHUB_PART); where parts share a process, for the first object to ask under `tag`."""
    part = os.environ.get("OMNIHUB_PART")
    if part is not None:
        return part == "functions-0"
    state = os.environ.get("OMNIDRILL_FAULT_STATE", "/tmp")
    os.makedirs(state, exist_ok=True)
    try:
        fd = os.open(os.path.join(state, f"first-{tag}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _track_requests() -> None:
    """Every judged request's operation, headers and JSON body, for the patches below."""
    import json

    from omnihub_ref import functions as fn

    if getattr(fn.Functions._judge, "_tracked", False):
        return
    original = fn.Functions._judge

    async def judge(self, request, name, op, trace_id):  # type: ignore[no-untyped-def]
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        token = REQUEST.set({"op": op, "headers": request.headers, "body": body, "fn": self})
        try:
            return await original(self, request, name, op, trace_id)
        finally:
            REQUEST.reset(token)

    judge._tracked = True  # type: ignore[attr-defined]
    fn.Functions._judge = judge


def _controls_seen(change: Callable[[Any, dict[str, Any]], Any]) -> None:
    """The controls as the functions see them, changed per request by `change`."""
    from omnihub_ref import controls_client as cc

    _track_requests()
    original = cc.ControlPlane.controls

    async def controls(self, trace_id=""):  # type: ignore[no-untyped-def]
        c = await original(self, trace_id)
        req = REQUEST.get(None)
        return change(c, req) if req is not None else c

    cc.ControlPlane.controls = controls


def _wrap_judge(after: Callable[..., Any]) -> None:
    """`after(self, request, op, answer)` may replace the answer of every judged request."""
    from omnihub_ref import functions as fn

    original = fn.Functions._judge

    async def judge(self, request, name, op, trace_id):  # type: ignore[no-untyped-def]
        await _body(request)  # read (and kept by Starlette) before the stack streams it
        answer = await original(self, request, name, op, trace_id)
        return await after(self, request, op, answer)

    fn.Functions._judge = judge


async def _body(request: Any) -> Any:
    """The request's JSON body (Starlette keeps it, so reading it again costs nothing)."""
    import json

    try:
        return json.loads(await request.body() or b"null")
    except (ValueError, RuntimeError):
        return None


def _replace(c: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(c, **changes)


async def _stored_replay(fn_self: Any, req: dict[str, Any]) -> bool:
    """Whether this request would be answered from the idempotency store."""
    key = req["headers"].get("idempotency-key")
    store = fn_self.backends.store
    if not key or not hasattr(store, "_redis"):
        return False
    raw = await store._redis.get(store._key(key))
    return bool(raw) and b'"done"' in raw


def _sql(edit: Callable[[str, str], str]) -> None:
    """Migrations as the stack applies them, edited (name, sql) -> sql."""
    from omnihub_ref.stores import postgres_store as ps

    original = ps.migration_files

    def files():  # type: ignore[no-untyped-def]
        return [(v, n, edit(n, sql)) for v, n, sql in original()]

    ps.migration_files = files


def _audit_sql(guard: str = "", metadata: str = "") -> None:
    def edit(name: str, sql: str) -> str:
        if "control_triggers" not in name:
            return sql
        if guard:
            sql = sql.replace(
                "begin\n  insert into audit_logs", f"begin\n  {guard}\n  insert into audit_logs", 1
            )
        if metadata:
            sql = sql.replace(
                "jsonb_build_object('old', to_jsonb(old), 'new', to_jsonb(new))", metadata, 1
            )
        return sql

    _sql(edit)


def _send_raw(fn_self: Any, raw_tx: str) -> Any:
    return fn_self.rpc.call("eth_sendRawTransaction", [raw_tx])


def _rpc_wrap(wrap: Callable[..., Any]) -> None:
    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.call

    async def call(self, method, params):  # type: ignore[no-untyped-def]
        return await wrap(original, self, method, params)

    rc.RpcClient.call = call


def _pools(client: Any, primary: str, fallback: str) -> Any:
    """The RPC client seen with other connection pools in the two roles (nothing shared is
    changed, so concurrent requests cannot swap each other's pools)."""
    import copy

    view = copy.copy(client)
    view._http = {"primary": client._http[primary], "fallback": client._http[fallback]}
    return view


async def _from_fallback(original: Any, client: Any, method: str, params: Any) -> Any:
    """The fallback's answer, once the primary has failed (it is not asked a second time,
    which would spend another rpc_timeout on a slow one)."""
    from omnihub_ref import rpc_client as rc

    res = await original(_pools(client, "fallback", "fallback"), method, params)
    return rc.RpcResult(res.result, "fallback")


def _lua(old: str, new: str) -> None:
    from omnihub_ref import limiter

    assert old in limiter._LUA, old
    limiter._LUA = limiter._LUA.replace(old, new)


# --- S1 -----------------------------------------------------------------------------------------


@variant("S1", ci=True)
def _apikey_only() -> None:
    """S1: only the apikey header is checked; a wrong key in Authorization alone passes."""
    import hmac

    from omnihub_ref import functions as fn

    def key_ok(self, request):  # type: ignore[no-untyped-def]
        given = request.headers.get("apikey", "").encode()
        return bool(given) and any(hmac.compare_digest(given, k) for k in self._keys)

    fn.Functions._key_ok = key_ok


@variant("S1")
def _bearer_only() -> None:
    """S1: only Authorization is checked; a wrong key in apikey alone passes."""
    import hmac

    from omnihub_ref import functions as fn

    def key_ok(self, request):  # type: ignore[no-untyped-def]
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        given = bearer.strip().encode()
        ok = scheme.lower() == "bearer" and bool(given)
        return ok and any(hmac.compare_digest(given, k) for k in self._keys)

    fn.Functions._key_ok = key_ok


@variant("S1")
def _anon_writes_controls() -> None:
    """S1: the control API lets the anon key PATCH emergency_controls (RLS only on reads)."""
    from omnihub_ref import control_api as ca

    original = ca.ControlApi.role

    def role(self, request):  # type: ignore[no-untyped-def]
        who = original(self, request)
        if who == "anon" and request.method == "PATCH":
            return "service_role"
        return who

    ca.ControlApi.role = role


# --- S2 -----------------------------------------------------------------------------------------


@variant("S2")
def _traceback_in_bad_request() -> None:
    """S2: a validation error's message carries the Python traceback of the failed check."""
    import traceback

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.status == 400:
            try:
                raise ValueError(answer.body.get("error"))
            except ValueError:
                answer.body["error"] += "\n" + traceback.format_exc()
        return answer

    _wrap_judge(after)


@variant("S2", ci=True)
def _provider_url_in_header() -> None:
    """S2: RPC_UNAVAILABLE answers name the upstream in a debug header, key in its path."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.code == "RPC_UNAVAILABLE":
            answer.headers["X-Upstream"] = (
                "https://eth-mainnet.g.alchemy.com/v2/k3yOmn1HubAlch3myPr0j3ct0000"
            )
        return answer

    _wrap_judge(after)


@variant("S2")
def _redis_url_in_error() -> None:
    """S2: RATE_LIMIT_UNAVAILABLE says which Redis it could not reach (its URL)."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.code == "RATE_LIMIT_UNAVAILABLE":
            answer.body["error"] += f" (redis at {self.cfg.redis_url})"
        return answer

    _wrap_judge(after)


@variant("S2")
def _service_key_in_401() -> None:
    """S2: a 401 echoes the key it expected, for "debugging"."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.status == 401:
            answer.body["error"] += f"; expected apikey {self.cfg.service_role_key}"
        return answer

    _wrap_judge(after)


@variant("S2")
def _postgrest_shaped_401() -> None:
    """S2: function 401s use PostgREST's shape {"message", "code"}: no `error` field."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.status == 401:
            answer.body = {"message": answer.body.pop("error"), "code": "PGRST301"}
        return answer

    _wrap_judge(after)


# --- C1 -----------------------------------------------------------------------------------------


@variant("C1", ci=True)
def _fail_open_on_timeout() -> None:
    """C1: fails closed when the store refuses, but serves the last known row when it is slow."""
    from omnihub_ref import controls_client as cc

    original = cc.ControlPlane._read_controls

    async def read(self):  # type: ignore[no-untyped-def]
        got = await original(self)
        if got.source == "failsafe" and "controls_timeout" in got.problem:
            return getattr(self, "_last_good", got)
        self._last_good = got
        return got

    cc.ControlPlane._read_controls = read


@variant("C1")
def _stale_if_unreachable() -> None:
    """C1: stale-if-error: a refused connection serves the last row read; a slow one fails
    closed."""
    from omnihub_ref import controls_client as cc

    original = cc.ControlPlane._read_controls

    async def read(self):  # type: ignore[no-untyped-def]
        got = await original(self)
        if got.source == "failsafe" and "unreachable" in got.problem:
            return getattr(self, "_last_good", got)
        self._last_good = got
        return got

    cc.ControlPlane._read_controls = read


@variant("C1")
def _controls_timeout_not_honoured() -> None:
    """C1: a read waits controls_timeout + controls_ttl + 0.8 s, past the fail-closed bound."""
    import httpx

    from omnihub_ref import controls_client as cc

    original = cc.ControlPlane.__init__

    def init(self, config, *a, **kw):  # type: ignore[no-untyped-def]
        original(self, config, *a, **kw)
        slow = config.controls_timeout_ms + config.controls_ttl_ms + 800
        self._cfg = config.with_(controls_timeout_ms=slow)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(slow / 1000))

    cc.ControlPlane.__init__ = init


# --- C2 -----------------------------------------------------------------------------------------


@variant("C2", ci=True)
def _replay_before_kill_switch() -> None:
    """C2: a remembered idempotent answer is replayed before the kill switch is looked at."""

    def change(c, req):  # type: ignore[no-untyped-def]
        if req.get("replay"):
            return _replace(c, kill_switch=False)
        return c

    _controls_seen(change)
    from omnihub_ref import controls_client as cc

    seen = cc.ControlPlane.controls

    async def controls(self, trace_id=""):  # type: ignore[no-untyped-def]
        req = REQUEST.get(None)
        if req is not None and req["op"] == "execute_trade":
            req["replay"] = await _stored_replay(req["fn"], req)
        return await seen(self, trace_id)

    cc.ControlPlane.controls = controls


@variant("C2", also=("C5",))
def _kill_switch_on_side_effects_only() -> None:
    """C2: the kill switch stops trades, but read-only functions keep answering; C5's check
    (every function refuses within the TTL) cannot see the effect on reads either."""

    def change(c, req):  # type: ignore[no-untyped-def]
        if c.source == "table" and req["op"] != "execute_trade":
            return _replace(c, kill_switch=False)
        return c

    _controls_seen(change)


@variant("C2")
def _approved_retry_skips_kill_switch() -> None:
    """C2: a retry carrying an approval_id ("already vetted by an operator") skips the switch."""

    def change(c, req):  # type: ignore[no-untyped-def]
        body = req.get("body")
        if c.source == "table" and isinstance(body, dict) and body.get("approval_id"):
            return _replace(c, kill_switch=False)
        return c

    _controls_seen(change)


# --- C3 -----------------------------------------------------------------------------------------


@variant("C3")
def _takeover_paths() -> None:
    """C3: the allow-list is compared with paths (execute-trade), not operation names."""
    from omnihub_ref import controls_client as cc

    original = cc.parse_controls

    def parse(rows):  # type: ignore[no-untyped-def]
        c = original(rows)
        return _replace(
            c, allowed_operations=frozenset(a.replace("_", "-") for a in c.allowed_operations)
        )

    cc.parse_controls = parse


@variant("C3", ci=True)
def _approved_retry_skips_takeover() -> None:
    """C3: a retry carrying an approval_id skips the takeover ("an operator approved it")."""

    def change(c, req):  # type: ignore[no-untyped-def]
        body = req.get("body")
        if c.source == "table" and isinstance(body, dict) and body.get("approval_id"):
            return _replace(c, operator_takeover=False)
        return c

    _controls_seen(change)


@variant("C3")
def _takeover_names_uppercased() -> None:
    """C3: the allow-list is read upper-cased and compared with lower-case names: nothing is
    allowed during a takeover."""
    from omnihub_ref import controls_client as cc

    original = cc.parse_controls

    def parse(rows):  # type: ignore[no-untyped-def]
        c = original(rows)
        return _replace(c, allowed_operations=frozenset(a.upper() for a in c.allowed_operations))

    cc.parse_controls = parse


# --- C4 -----------------------------------------------------------------------------------------


@variant("C4")
def _safe_mode_refuses_reads() -> None:
    """C4: safe mode refuses read-only functions too."""
    from omnihub_ref import functions as fn

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.status == 200 and op != "execute_trade":
            c = await self.controls.controls()
            if c.safe_mode and c.source == "table":
                return fn.refuse(503, "SAFE_MODE", fn.MSG_SAFE_MODE)
        return answer

    _wrap_judge(after)


@variant("C4", ci=True)
def _replay_skips_safe_mode() -> None:
    """C4: a remembered idempotent answer is replayed before safe mode is looked at."""
    from omnihub_ref import controls_client as cc

    def change(c, req):  # type: ignore[no-untyped-def]
        return _replace(c, safe_mode=False) if req.get("replay") else c

    _controls_seen(change)
    seen = cc.ControlPlane.controls

    async def controls(self, trace_id=""):  # type: ignore[no-untyped-def]
        req = REQUEST.get(None)
        if req is not None and req["op"] == "execute_trade":
            req["replay"] = await _stored_replay(req["fn"], req)
        return await seen(self, trace_id)

    cc.ControlPlane.controls = controls


@variant("C4")
def _safe_mode_large_trades_only() -> None:
    """C4: safe mode stops only trades large enough to need approval."""

    def change(c, req):  # type: ignore[no-untyped-def]
        body = req.get("body")
        amount = body.get("amount_usd") if isinstance(body, dict) else None
        small = isinstance(amount, int | float) and amount < 10_000
        return _replace(c, safe_mode=False) if c.source == "table" and small else c

    _controls_seen(change)


# --- C5 -----------------------------------------------------------------------------------------


def _lagging_controls(only_later_instances: bool) -> None:
    """Controls read through a replica that lags controls_ttl + 200 ms behind the table."""
    import time

    from omnihub_ref import controls_client as cc

    original = cc.ControlPlane._read_controls
    init = cc.ControlPlane.__init__

    def new_init(self, config, *a, **kw):  # type: ignore[no-untyped-def]
        init(self, config, *a, **kw)
        lagging = not only_later_instances or not _first_instance("controls")
        self._lag = (config.controls_ttl_ms + 200) / 1000 if lagging else 0.0
        self._history = []

    async def read(self):  # type: ignore[no-untyped-def]
        got = await original(self)
        if got.source == "failsafe":
            return got  # a failed read fails at once: only the row's changes lag
        now = time.monotonic()
        self._history.append((now, got))
        old = [c for t, c in self._history if t <= now - self._lag]
        self._history = self._history[-200:]
        return old[-1] if old else self._history[0][1]

    cc.ControlPlane.__init__ = new_init
    cc.ControlPlane._read_controls = read


@variant("C5")
def _replica_lag() -> None:
    """C5: controls read from a replica that lags controls_ttl + 200 ms behind the table."""
    _lagging_controls(only_later_instances=False)


@variant("C5", ci=True)
def _ttl_one_instance_only() -> None:
    """C5: the TTL is honoured on the first instance only; the others lag ttl + 200 ms."""
    _lagging_controls(only_later_instances=True)


# --- C6 -----------------------------------------------------------------------------------------


@variant("C6", ci=True)
def _audit_kill_switch_only() -> None:
    """C6: the audit trigger writes a row only when the kill switch itself changes."""
    _audit_sql(
        guard="if new.omnihub_kill_switch is not distinct from old.omnihub_kill_switch "
        "then return null; end if;"
    )


@variant("C6")
def _audit_new_values_only() -> None:
    """C6: audit rows carry the new row only, not the old one."""
    _audit_sql(metadata="jsonb_build_object('new', to_jsonb(new))")


@variant("C6")
def _audit_booleans_only() -> None:
    """C6: a change of allowed_operations alone writes no audit row."""
    _audit_sql(
        guard="if (new.omnihub_kill_switch, new.execution_safe_mode, new.operator_takeover) "
        "is not distinct from (old.omnihub_kill_switch, old.execution_safe_mode, "
        "old.operator_takeover) and new.allowed_operations is distinct from "
        "old.allowed_operations then return null; end if;"
    )


# --- C7 -----------------------------------------------------------------------------------------


@variant("C7", ci=True)
def _broadcast_before_refusing() -> None:
    """C7: a trade is sent to the provider, then the controls refuse it."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        refusals = ("KILL_SWITCH", "OPERATOR_TAKEOVER", "SAFE_MODE")
        if op == "execute_trade" and answer.code in refusals:
            body = await _body(request)
            if isinstance(body, dict) and isinstance(body.get("raw_tx"), str):
                with contextlib.suppress(Exception):
                    await _send_raw(self, body["raw_tx"])
        return answer

    _wrap_judge(after)


@variant("C7")
def _approval_row_before_controls() -> None:
    """C7: a high-value trade's approval row is created before the kill switch refuses it."""
    from omnihub_ref import functions_validate as fv

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        body = await _body(request)
        if op == "execute_trade" and answer.code == "KILL_SWITCH" and isinstance(body, dict):
            try:
                valid = fv.validate_trade(body)
                if valid["amount_usd"] >= 10_000 and valid["approval_id"] is None:
                    await self._request_approval(valid)
            except Exception:
                pass
        return answer

    _wrap_judge(after)


# --- A1 -----------------------------------------------------------------------------------------


@variant("A1", ci=True)
def _approval_threshold_exclusive() -> None:
    """A1: `amount_usd > 10000` instead of `>=`: exactly 10 000 executes without approval."""
    import math

    from omnihub_ref import functions as fn

    fn.APPROVAL_THRESHOLD_USD = math.nextafter(10_000, math.inf)


@variant("A1")
def _approval_threshold_rounded() -> None:
    """A1: the amount is rounded to whole dollars first: 9 999.99 waits for approval."""
    from omnihub_ref import functions as fn

    fn.APPROVAL_THRESHOLD_USD = 9_999.5


@variant("A1")
def _critical_threshold_exclusive() -> None:
    """A1: `> 100000` for critical: exactly 100 000 is only high."""
    import math

    from omnihub_ref import functions as fn

    fn.CRITICAL_THRESHOLD_USD = math.nextafter(100_000, math.inf)


@variant("A1")
def _critical_threshold_rounded() -> None:
    """A1: the risk level is judged on the rounded amount: 99 999.99 is critical."""
    from omnihub_ref import functions as fn

    fn.CRITICAL_THRESHOLD_USD = 99_999.5


# --- A2 -----------------------------------------------------------------------------------------


def _approval_rows(edit: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]) -> None:
    """The approval row as `_approved_trade` sees it, edited against the request's body."""
    from omnihub_ref import functions as fn

    original = fn.Functions._approved_trade

    async def approved(self, body):  # type: ignore[no-untyped-def]
        get = self.controls.get_approval

        async def edited(aid):  # type: ignore[no-untyped-def]
            row = await get(aid)
            return None if row is None else edit(row, body)

        self.controls.get_approval = edited
        try:
            return await original(self, body)
        finally:
            self.controls.get_approval = get

    fn.Functions._approved_trade = approved


@variant("A2", ci=True)
def _approval_amount_not_compared() -> None:
    """A2: a retry is compared on user and transaction, not on amount."""
    _approval_rows(lambda row, body: {**row, "amount_usd": body["amount_usd"]})


@variant("A2")
def _approval_user_not_compared() -> None:
    """A2: a retry is compared on amount and transaction, not on user."""
    _approval_rows(lambda row, body: {**row, "user_id": body["user_id"]})


@variant("A2")
def _pending_retry_sends() -> None:
    """A2: a retry while pending pre-broadcasts the transaction, then answers 202."""
    from omnihub_ref import functions as fn

    original = fn.Functions._approved_trade

    async def approved(self, body):  # type: ignore[no-untyped-def]
        answer = await original(self, body)
        if answer.code == "APPROVAL_PENDING":
            with contextlib.suppress(Exception):
                await _send_raw(self, body["raw_tx"])
        return answer

    fn.Functions._approved_trade = approved


# --- A3 -----------------------------------------------------------------------------------------


@variant("A3", ci=True)
def _approved_executes_every_retry() -> None:
    """A3: an approved trade is sent again on every retry (its first answer is not kept)."""
    from omnihub_ref import functions as fn

    _approval_rows(
        lambda row, body: {k: v for k, v in row.items() if k not in ("executed_at", "result")}
    )
    original = fn.Functions._approved_trade

    async def approved(self, body):  # type: ignore[no-untyped-def]
        store = self.backends.store
        claim = store.claim

        async def fresh(key, fp, wait_s):  # type: ignore[no-untyped-def]
            if key.startswith("approval:"):
                await store.release(key, fp)
                from omnihub_ref.idempotency import Claim

                return Claim("owner")
            return await claim(key, fp, wait_s)

        store.claim = fresh
        try:
            return await original(self, body)
        finally:
            store.claim = claim

    fn.Functions._approved_trade = approved


@variant("A3")
def _rejected_reads_pending() -> None:
    """A3: a rejected approval is treated like a pending one (202, not 403)."""
    _approval_rows(
        lambda row, body: {**row, "status": "pending"} if row.get("status") == "rejected" else row
    )


@variant("A3")
def _approved_expires_too() -> None:
    """A3: expires_at is applied to approved requests too: granted in time, refused late."""
    from datetime import UTC, datetime

    from omnihub_ref import functions as fn

    def edit(row, body):  # type: ignore[no-untyped-def]
        ts = fn._parse_ts(row.get("expires_at"))
        late = ts is not None and ts <= datetime.now(UTC)
        return {**row, "status": "expired"} if row.get("status") == "approved" and late else row

    _approval_rows(edit)


# --- A4 -----------------------------------------------------------------------------------------


@variant("A4", ci=True)
def _approval_never_expires() -> None:
    """A4: the functions treat an expired approval as still pending."""
    from omnihub_ref import functions as fn

    fn._parse_ts = lambda value: None
    _approval_rows(
        lambda row, body: {**row, "status": "pending"} if row.get("status") == "expired" else row
    )


@variant("A4")
def _expired_retry_sends() -> None:
    """A4: an expired approval's retry is sent, then answered 410."""
    from omnihub_ref import functions as fn

    original = fn.Functions._approved_trade

    async def approved(self, body):  # type: ignore[no-untyped-def]
        answer = await original(self, body)
        if answer.code == "APPROVAL_EXPIRED":
            with contextlib.suppress(Exception):
                await _send_raw(self, body["raw_tx"])
        return answer

    fn.Functions._approved_trade = approved


@variant("A4")
def _expiry_grace_3s() -> None:
    """A4: approvals expire 3 s after expires_at (a grace period nobody asked for)."""
    from datetime import timedelta

    from omnihub_ref import functions as fn
    from omnihub_ref.stores import postgres_store as ps

    def expire(self, ex):  # type: ignore[no-untyped-def]
        ex(
            "UPDATE approval_queue SET status = 'expired', decided_at = expires_at "
            "WHERE status = 'pending' AND expires_at <= clock_timestamp() - interval '3 seconds'",
            [],
        )

    ps.PostgresStore._expire_approvals = expire
    parse = fn._parse_ts

    def later(value):  # type: ignore[no-untyped-def]
        ts = parse(value)
        return None if ts is None else ts + timedelta(seconds=3)

    fn._parse_ts = later


# --- R1-R7 --------------------------------------------------------------------------------------


@variant("R1", also=("R5",))
def _limit_off_by_one() -> None:
    """R1: `current <= limit`: one request more than the limit is admitted (R5's total over
    instances too)."""
    _lua("  if current < limit then", "  if current <= limit then")
    _lua(
        "if math.floor(previous * weight) + current < limit then",
        "if math.floor(previous * weight) + current <= limit then",
    )


@variant("R1", ci=True)
def _key_checked_before_limit() -> None:
    """R1 (section 4): the key is checked before the limiter, so 401s use up no budget."""
    from omnihub_ref import functions as fn

    original = fn.Functions._judge

    async def judge(self, request, name, op, trace_id):  # type: ignore[no-untyped-def]
        if not self._key_ok(request):
            return fn.refuse(401, "UNAUTHORIZED", "missing or invalid API key")
        return await original(self, request, name, op, trace_id)

    fn.Functions._judge = judge


@variant("R1")
def _bad_bodies_refunded() -> None:
    """R1 (section 4): a request whose body fails validation gives its count back."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        lim = self.backends.limiter
        if answer.status == 400 and hasattr(lim, "_redis"):
            import time

            win = int(time.time() * 1000) // (lim.window_s * 1000)
            key = f"{lim._prefix}rl:{lim.algorithm}:{lim.window_s}:{self.client_of(request)}:{win}"
            await lim._redis.decr(key)
        return answer

    _wrap_judge(after)


@variant("R2", ci=True)
def _double_count_on_later_instances() -> None:
    """R2: instances after the first count each request twice (a retried INCR that had landed)."""
    from omnihub_ref import functions as fn

    original = fn.Functions._judge
    init = fn.Functions.__init__

    def new_init(self, *a, **kw):  # type: ignore[no-untyped-def]
        init(self, *a, **kw)
        self._double = not _first_instance("limiter")

    async def judge(self, request, name, op, trace_id):  # type: ignore[no-untyped-def]
        if self._double:
            with contextlib.suppress(Exception):
                await self.backends.limiter.hit(self.client_of(request))
        return await original(self, request, name, op, trace_id)

    fn.Functions.__init__ = new_init
    fn.Functions._judge = judge


@variant("R3")
def _retry_after_floor() -> None:
    """R3: Retry-After rounds down: a client that waits it is still refused."""
    import math

    from omnihub_ref import limiter

    limiter._retry_after = lambda wait_s, window_s: max(1, min(window_s, math.floor(wait_s)))


@variant("R3", ci=True)
def _retry_after_in_ms() -> None:
    """R3: Retry-After is given in milliseconds."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.code == "RATE_LIMITED":
            answer.headers["Retry-After"] = str(int(answer.headers["Retry-After"]) * 1000)
        return answer

    _wrap_judge(after)


@variant("R3")
def _no_retry_after() -> None:
    """R3: 429 answers carry no Retry-After."""

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        answer.headers.pop("Retry-After", None)
        return answer

    _wrap_judge(after)


@variant("R4", also=("R1", "R2"), ci=True)
def _clients_by_subnet() -> None:
    """R4: clients are counted per /24 (abuse-style aggregation), so neighbours limit each
    other; the quiet and the burst clients are such neighbours, so R2's and R1's sentences
    break with it."""
    from omnihub_ref import functions as fn

    original = fn.Functions.client_of

    def client_of(self, request):  # type: ignore[no-untyped-def]
        return ".".join(original(self, request).split(".")[:3])

    fn.Functions.client_of = client_of


@variant("R5", also=("R1",), ci=True)
def _limit_per_instance() -> None:
    """R5: instances after the first keep their own counters in Redis (hostname in the
    prefix); a flood spread over instances then averages over the limit, R1's last sentence."""
    from omnihub_ref import functions as fn
    from omnihub_ref.limiter import RedisRateLimiter

    init = fn.Functions.__init__

    def new_init(self, cfg, backends, *a, **kw):  # type: ignore[no-untyped-def]
        init(self, cfg, backends, *a, **kw)
        if backends.redis is not None and not _first_instance("prefix"):
            lim = backends.limiter
            own = RedisRateLimiter(
                backends.redis, lim.limit, lim.window_s, lim.algorithm,
                prefix=f"{cfg.redis_prefix}host2:", timeout_s=lim._timeout,
            )  # fmt: skip
            self.backends = fn.Backends(own, backends.store, backends.redis)

    fn.Functions.__init__ = new_init


@variant("R6", ci=True)
def _health_rate_limited() -> None:
    """R6: the health endpoint goes through the limiter like the functions."""
    from starlette.responses import JSONResponse

    from omnihub_ref import functions as fn

    original = fn.Functions.healthz

    async def healthz(self, request):  # type: ignore[no-untyped-def]
        decision = await self.backends.limiter.hit(self.client_of(request))
        if not decision.allowed:
            return JSONResponse(
                {"error": "rate limit exceeded", "code": "RATE_LIMITED"},
                status_code=429,
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        return await original(self, request)

    fn.Functions.healthz = healthz
    # the route holds the bound method of each instance, made after this patch


@variant("R7", ci=True)
def _limiter_fails_open() -> None:
    """R7: with Redis unreachable, the limiter lets everything through (trades are sent)."""
    from omnihub_ref import limiter

    original = limiter.RedisRateLimiter.hit

    async def hit(self, client):  # type: ignore[no-untyped-def]
        try:
            return await original(self, client)
        except limiter.LimiterUnavailable:
            return limiter.Decision(True, 0, 0)

    limiter.RedisRateLimiter.hit = hit


@variant("R7")
def _reads_refused_without_redis() -> None:
    """R7: reads check Redis first and answer 503 when it is down (the profile says serve)."""
    import asyncio

    from omnihub_ref import functions as fn

    original = fn.Functions._judge

    async def judge(self, request, name, op, trace_id):  # type: ignore[no-untyped-def]
        if op in ("omnilink_agent", "wallet_balance") and self.backends.redis is not None:
            try:
                async with asyncio.timeout(self.cfg.rpc_timeout_s / 2):
                    await self.backends.redis.ping()
            except Exception:
                return fn.refuse(503, "RATE_LIMIT_UNAVAILABLE", "rate limiter unavailable")
        return await original(self, request, name, op, trace_id)

    fn.Functions._judge = judge


@variant("R7")
def _slow_to_refuse_without_redis() -> None:
    """R7: with Redis unreachable, trades are refused only after rpc_timeout + 0.7 s of retries."""
    import asyncio

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.code == "RATE_LIMIT_UNAVAILABLE":
            await asyncio.sleep(self.cfg.rpc_timeout_s + 0.7)
        return answer

    _wrap_judge(after)


# --- I1, I2 -------------------------------------------------------------------------------------


@variant("I1", ci=True)
def _errors_remembered() -> None:
    """I1: every answer is remembered under its key, RPC_UNAVAILABLE included."""
    from omnihub_ref import idempotency

    idempotency.REMEMBERED_STATUSES = frozenset({200, 202, 503})


@variant("I1", also=("I2",))
def _check_then_act_claim() -> None:
    """I1: a key is claimed by GET then SET, not atomically: concurrent copies both send (I2's
    check that a mismatch sent nothing counts the same transaction's sends, so it fails too)."""
    import asyncio
    import json

    from omnihub_ref import idempotency

    original = idempotency.RedisIdempotencyStore.claim

    async def claim(self, key, fp, wait_s):  # type: ignore[no-untyped-def]
        raw = await self._call(self._redis.get(self._key(key)))
        if raw is None:
            await asyncio.sleep(0.02)  # the round trip between the two calls
            row = json.dumps({"fp": fp, "state": "pending"})
            await self._call(self._redis.set(self._key(key), row, px=self._pending_ms))
            return idempotency.Claim("owner")
        return await original(self, key, fp, wait_s)

    idempotency.RedisIdempotencyStore.claim = claim


@variant("I1")
def _keys_per_instance() -> None:
    """I1: instances after the first keep idempotency keys under their own prefix."""
    from omnihub_ref import functions as fn
    from omnihub_ref.idempotency import RedisIdempotencyStore

    init = fn.Functions.__init__

    def new_init(self, cfg, backends, *a, **kw):  # type: ignore[no-untyped-def]
        init(self, cfg, backends, *a, **kw)
        if backends.redis is not None and not _first_instance("idem"):
            store = RedisIdempotencyStore(
                backends.redis, prefix=f"{cfg.redis_prefix}host2:", ttl_s=cfg.idempotency_ttl_s
            )
            self.backends = fn.Backends(backends.limiter, store, backends.redis)

    fn.Functions.__init__ = new_init


@variant("I2", ci=True)
def _approval_id_not_fingerprinted() -> None:
    """I2: the body's fingerprint leaves approval_id out: adding one replays the old answer."""
    from omnihub_ref import functions as fn

    original = fn.fingerprint

    def fingerprint(raw):  # type: ignore[no-untyped-def]
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if k != "approval_id"}
        return original(raw)

    fn.fingerprint = fingerprint


@variant("I2")
def _mismatch_executes() -> None:
    """I2: a different body under a used key is executed as a new request (no 422)."""
    from omnihub_ref import idempotency

    original = idempotency.RedisIdempotencyStore.claim

    async def claim(self, key, fp, wait_s):  # type: ignore[no-untyped-def]
        got = await original(self, key, fp, wait_s)
        return idempotency.Claim("owner") if got.outcome == "mismatch" else got

    idempotency.RedisIdempotencyStore.claim = claim


# --- P1-P3 --------------------------------------------------------------------------------------


@variant("P1", also=("P4",), ci=True)
def _fallback_for_reads_only() -> None:
    """P1: the fallback is used for reads only; a trade fails when the primary is down (or
    failing: P4 serves it "by the fallback as in P1")."""
    from omnihub_ref import rpc_client as rc

    async def wrap(original, self, method, params):  # type: ignore[no-untyped-def]
        if method != "eth_sendRawTransaction":
            return await original(self, method, params)
        res = await original(_pools(self, "primary", "primary"), method, params)
        return rc.RpcResult(res.result, "primary")

    _rpc_wrap(wrap)


@variant("P1")
def _rpc_timeout_just_over() -> None:
    """P1: the primary is given rpc_timeout + 0.7 s before the fallback is tried."""
    from omnihub_ref import rpc_client as rc

    original = rc.RpcClient.__init__

    def init(self, primary_url, fallback_url, timeout_s, *a, **kw):  # type: ignore[no-untyped-def]
        original(self, primary_url, fallback_url, timeout_s + 0.7, *a, **kw)

    rc.RpcClient.__init__ = init


@variant("P1", also=("P4",))
def _provider_header_always_primary() -> None:
    """P1: X-RPC-Provider says primary whichever provider answered (P4's fallback too)."""
    from omnihub_ref import rpc_client as rc

    async def wrap(original, self, method, params):  # type: ignore[no-untyped-def]
        res = await original(self, method, params)
        return rc.RpcResult(res.result, "primary")

    _rpc_wrap(wrap)


@variant("P2", also=("I1", "P4"), ci=True)
def _made_up_success() -> None:
    """P2: with both providers down, a trade answers 200 with a made-up tx_hash, X-RPC-Provider
    primary (a lying target); the made-up 200 is remembered, so the key's one broadcast never
    happens (I1), and P4's both-failing phase gets it too."""
    import secrets

    from omnihub_ref import rpc_client as rc

    async def wrap(original, self, method, params):  # type: ignore[no-untyped-def]
        try:
            return await original(self, method, params)
        except rc.RpcUnavailable:
            if method != "eth_sendRawTransaction":
                raise
            return rc.RpcResult("0x" + secrets.token_hex(32), "primary")

    _rpc_wrap(wrap)


def _unreachable(exc: Exception) -> bool:
    """Whether an RpcUnavailable came of providers that could not be reached (P2), not of
    answers that failed (P4: an HTTP status, a JSON-RPC error, a backoff pause)."""
    return not any(word in str(exc) for word in ("HTTP ", "JSON-RPC", "pause"))


@variant("P2")
def _stale_reads_when_down() -> None:
    """P2: with both providers unreachable, reads answer 200 from the last good result (a
    stale-if-error cache for reads; trades are refused)."""
    from omnihub_ref import rpc_client as rc

    last: dict[str, Any] = {}

    async def wrap(original, self, method, params):  # type: ignore[no-untyped-def]
        try:
            res = await original(self, method, params)
        except rc.RpcUnavailable as exc:
            if method in last and method != "eth_sendRawTransaction" and _unreachable(exc):
                return last[method]
            raise
        last[method] = res
        return res

    _rpc_wrap(wrap)


@variant("P2")
def _slow_to_give_up() -> None:
    """P2: with both unreachable, the 503 comes after 2 x rpc_timeout + 0.7 s of reconnects."""
    import asyncio

    from omnihub_ref import rpc_client as rc

    async def wrap(original, self, method, params):  # type: ignore[no-untyped-def]
        try:
            return await original(self, method, params)
        except rc.RpcUnavailable as exc:
            if _unreachable(exc):
                await asyncio.sleep(2 * self._timeout + 0.7)
            raise

    _rpc_wrap(wrap)


def _primary_kept_out(seconds: float) -> None:
    """After the fallback served, the primary is not tried again for `seconds`."""
    import time

    async def wrap(original, self, method, params):  # type: ignore[no-untyped-def]
        if time.monotonic() < getattr(self, "_open_until", 0.0):
            return await _from_fallback(original, self, method, params)
        res = await original(self, method, params)
        if res.provider == "fallback":
            self._open_until = time.monotonic() + seconds
        return res

    _rpc_wrap(wrap)


@variant("P3", ci=True)
def _breaker_cooldown_3s() -> None:
    """P3: a circuit breaker keeps the primary out for 3 s after a failure (profile says 0)."""
    _primary_kept_out(3.0)


@variant("P3")
def _breaker_cooldown_1s() -> None:
    """P3: a breaker cool-down of 1 s where the profile declares none."""
    _primary_kept_out(1.0)


# --- P4 -----------------------------------------------------------------------------------------


@variant("P4", ci=True)
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


@variant("P4")
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


@variant("P4")
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
                return await _from_fallback(original, self, method, params)
        raise AssertionError("unreachable")

    rc.RpcClient.call = call


@variant("P4")
def _reads_from_cache_on_error() -> None:
    """P4: a read the primary answers with a failure is served from the last good result,
    labelled fallback, while the fallback is never asked."""
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
            return await _from_fallback(original, self, method, params)
        except (rc.TransportError, TimeoutError, ValueError):
            return await _from_fallback(original, self, method, params)
        cache[key] = result
        return rc.RpcResult(result, "primary")

    rc.RpcClient.call = call


# --- not defects: how a target can escape the harness ------------------------------------------

BYPASSES: dict[str, Callable[[], None]] = {}


def _bypass_primary_proxy() -> None:
    """The functions reach the primary provider directly, not through its fault proxy (its
    address read from the profile the stack writes, once it is up)."""
    import yaml

    from omnihub_ref import rpc_client as rc

    profile = os.environ["OMNIDRILL_FAULT_PROFILE"]

    async def wrap(original, self, method, params):  # type: ignore[no-untyped-def]
        if not getattr(self, "_direct", False):
            with open(profile, encoding="utf-8") as f:
                direct = yaml.safe_load(f)["rpc_direct"]["primary"]
            self._http["primary"] = rc.HttpPool(direct)
            self._direct = True
        return await original(self, method, params)

    _rpc_wrap(wrap)


BYPASSES["bypass_primary_proxy"] = _bypass_primary_proxy


# --- a correct target that differs from the reference stack wherever the contract allows -------

# What its profile declares (merged over the profile the stack writes).
ELSEWHERE_PROFILE: dict[str, Any] = {
    "expect": {
        "kill_switch_status": 500,  # the design's sample edge function: 500 for refusals
        "operator_takeover_status": 500,
        "safe_mode_status": 500,
        "approval_expired_status": 403,
        "idempotency_mismatch_status": 409,
        "redis_outage_reads": "refuse",
    },
    "limits": {"rpc_recovery_s": 1.5},
}
_ELSEWHERE_STATUS = {
    "KILL_SWITCH": 500,
    "OPERATOR_TAKEOVER": 500,
    "SAFE_MODE": 500,
    "APPROVAL_EXPIRED": 403,
    "IDEMPOTENCY_MISMATCH": 409,
}


def _written_elsewhere() -> None:
    """Correct, and different: its own validation and key codes and messages, refusal
    statuses as its profile declares, trace_id in every body, extra headers and fields, 403
    for an anon write on the control tables, reads refused while Redis is down (declared),
    a 1 s circuit breaker on the primary (declared rpc_recovery_s 1.5). Run with
    --rate-algorithm sliding_window."""
    import asyncio

    from omnihub_ref import control_api as ca
    from omnihub_ref import functions as fn

    async def after(self, request, op, answer):  # type: ignore[no-untyped-def]
        if answer.status == 400:
            body = await _body(request)
            code = "INVALID_JSON" if body is None else "VALIDATION_ERROR"
            answer.body = {"error": "the request did not validate", "code": code,
                           "details": answer.body.get("error")}  # fmt: skip
        elif answer.status == 401:
            answer.body = {"error": "unauthorised", "code": "INVALID_API_KEY"}
        answer.status = _ELSEWHERE_STATUS.get(answer.code, answer.status)
        answer.headers["X-Request-Id"] = os.urandom(8).hex()
        answer.headers["X-Powered-By"] = "omnihub-elsewhere"
        answer.body.setdefault("trace_id", None)  # filled with X-Trace-ID by the stack
        return answer

    _wrap_judge(after)
    function = fn.Functions.function

    async def respond(self, request):  # type: ignore[no-untyped-def]
        import json

        resp = await function(self, request)
        data = json.loads(resp.body)
        if isinstance(data, dict) and data.get("trace_id", "") is None:
            data["trace_id"] = resp.headers["x-trace-id"]
            headers = {k: v for k, v in resp.headers.items() if k != "content-length"}
            from starlette.responses import JSONResponse

            return JSONResponse(data, status_code=resp.status_code, headers=headers)
        return resp

    fn.Functions.function = respond
    original_judge = fn.Functions._judge

    async def judge(self, request, name, op, trace_id):  # type: ignore[no-untyped-def]
        if op in ("omnilink_agent", "wallet_balance") and self.backends.redis is not None:
            try:
                async with asyncio.timeout(self.cfg.rpc_timeout_s / 2):
                    await self.backends.redis.ping()
            except Exception:
                return fn.refuse(503, "RATE_LIMIT_UNAVAILABLE", "store unavailable, try later")
        return await original_judge(self, request, name, op, trace_id)

    fn.Functions._judge = judge
    original_handle = ca.ControlApi.handle

    async def handle(self, request):  # type: ignore[no-untyped-def]
        resp = await original_handle(self, request)
        if resp.status_code == 401 and request.method != "GET":
            resp.status_code = 403  # PostgREST's answer to a role without the grant
        return resp

    ca.ControlApi.handle = handle
    _primary_kept_out(1.0)


CORRECT: dict[str, Callable[[], None]] = {"written_elsewhere": _written_elsewhere}


def apply(name: str) -> None:
    if name in BYPASSES:
        BYPASSES[name]()
    elif name in CORRECT:
        CORRECT[name]()
    else:
        CATALOGUE[name].patch()
