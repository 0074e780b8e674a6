"""The OmniHub edge functions (CONTRACT sections 1-7) as a Starlette app.

A request is judged in the contract's order: rate limit, key, emergency controls, body,
idempotency replay, approvals, then the operation. Every answer carries X-Trace-ID.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omnidrill.errors import UsageError
from omnihub_ref.config import (
    APPROVAL_THRESHOLD_USD,
    CRITICAL_THRESHOLD_USD,
    FunctionsConfig,
)
from omnihub_ref.controls_client import ControlPlane, ControlPlaneError
from omnihub_ref.degrade import MESSAGE as DEGRADED
from omnihub_ref.degrade import Degrade
from omnihub_ref.functions_validate import (
    BadRequest,
    idempotency_key,
    read_json,
    validate_agent,
    validate_balance,
    validate_trade,
)
from omnihub_ref.idempotency import RedisIdempotencyStore, StoreUnavailable, fingerprint
from omnihub_ref.limiter import LimiterUnavailable, RedisRateLimiter
from omnihub_ref.rpc_client import RpcClient, RpcRejected, RpcUnavailable
from omnihub_ref.telemetry import Telemetry

# Path → operation name (CONTRACT section 1: allowed_operations holds these names).
OPERATIONS = {
    "omnilink-agent": "omnilink_agent",
    "wallet-balance": "wallet_balance",
    "execute-trade": "execute_trade",
}
SIDE_EFFECTS = frozenset({"execute_trade"})
# Failures that go to the error log and Sentry. Refusals (controls, limits, approvals, bad
# input) are the system working; the request metrics count them, Sentry would only drown.
_REPORTED_CODES = frozenset(
    {
        "RPC_UNAVAILABLE",
        "RPC_ERROR",
        "APPROVALS_UNAVAILABLE",
        "RATE_LIMIT_UNAVAILABLE",
        "IDEMPOTENCY_IN_PROGRESS",
    }
)

MSG_KILL_SWITCH = "OMNIHUB_KILL_SWITCH is enabled - all operations are disabled"
MSG_TAKEOVER = "OPERATOR_TAKEOVER is enabled - operation requires manual approval"
MSG_SAFE_MODE = "EXECUTION_SAFE_MODE is enabled - operations with side effects are disabled"


@dataclass
class Answer:
    """A response before it becomes HTTP: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    code: str = "OK"


def refuse(status: int, code: str, message: str, **headers: str) -> Answer:
    return Answer(status, {"error": message, "code": code}, dict(headers), code)


# Connections to Redis an instance keeps, all opened before it says it is ready: a burst
# waits for a free one (within the operation timeout) rather than opening dozens through the
# fault proxy at the same moment, which on a busy machine outlasted the timeout.
REDIS_POOL_SIZE = 16


@dataclass
class Backends:
    """What an instance keeps in Redis: the rate limiter and the idempotency store."""

    limiter: RedisRateLimiter
    store: RedisIdempotencyStore
    redis: aioredis.Redis

    async def warm_up(self) -> None:
        """Open a few connections and load the scripts before the first request needs them."""
        await asyncio.gather(*(self.redis.ping() for _ in range(REDIS_POOL_SIZE)))
        await self.limiter.load_scripts()
        await self.store.load_scripts()

    async def aclose(self) -> None:
        await self.redis.aclose()


def build_backends(cfg: FunctionsConfig) -> Backends:
    """The limiter and the idempotency store in the configured Redis (the limit is global)."""
    if not cfg.redis_url:
        raise UsageError("the functions need REDIS_URL: the rate limit and idempotency live there")
    # A cut or slow Redis path must not hold a request past rpc_timeout (R7): the first Redis
    # operation that times out answers 503 (a read goes on without the limiter), so three
    # quarters of rpc_timeout per operation keeps that bound with room for the rest, and a
    # busy machine is not read as a Redis outage (half of it was, under bursts).
    op_timeout = max(0.1, min(1.5, cfg.rpc_timeout_s * 0.75))
    pool = aioredis.BlockingConnectionPool.from_url(
        cfg.redis_url,
        max_connections=REDIS_POOL_SIZE,
        timeout=op_timeout,
        socket_connect_timeout=op_timeout,
        socket_timeout=op_timeout,
        retry_on_timeout=False,
        # A pooled connection that a cut (now restored) of the redis path broke fails at once;
        # one retry on a fresh connection tells that from Redis being unreachable, which
        # fails the retry too. Without it a restored path answered 503 once per pooled
        # connection, and reads went uncounted (R1).
        retry_on_error=[aioredis.ConnectionError],
        health_check_interval=0,
    )
    client = aioredis.Redis.from_pool(pool)
    return Backends(
        RedisRateLimiter(
            client,
            cfg.rate_limit,
            cfg.rate_window_s,
            cfg.rate_algorithm,
            prefix=cfg.redis_prefix,
            timeout_s=op_timeout,
        ),
        RedisIdempotencyStore(
            client, prefix=cfg.redis_prefix, ttl_s=cfg.idempotency_ttl_s, timeout_s=op_timeout
        ),
        client,
    )


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class Functions:
    """One functions instance; `app` is its ASGI application."""

    def __init__(
        self,
        cfg: FunctionsConfig,
        backends: Backends,
        telemetry: Telemetry,
        controls: ControlPlane | None = None,
        rpc: RpcClient | None = None,
        degrade: Degrade | None = None,
    ) -> None:
        self.cfg = cfg
        self.degrade = degrade  # `omnidrill up --degrade-last-*` only: off by default
        self.backends = backends
        self.tm = telemetry
        self.controls = controls or ControlPlane(cfg, telemetry)
        self.rpc = rpc or RpcClient(
            cfg.rpc_primary_url, cfg.rpc_fallback_url, cfg.rpc_timeout_s, telemetry
        )
        self._keys = [k.encode() for k in (cfg.anon_key, cfg.service_role_key) if k]
        # How long a duplicate waits for the first request's answer (I1).
        self._claim_wait_s = 2 * cfg.rpc_timeout_s + 2 * cfg.controls_timeout_s + 1.0
        self.app = Starlette(
            routes=[
                Route("/functions/v1/healthz", self.healthz, methods=["GET", "HEAD"]),
                Route(
                    "/functions/v1/{name:path}",
                    self.function,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                ),
                Route(
                    "/{path:path}",
                    self.not_found,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                ),
            ],
        )

    async def warm_up(self) -> None:
        """Connect to Redis and read the controls once, so the first burst finds them warm."""
        await self.backends.warm_up()
        await self.controls.controls()  # an unreadable store is fine here: it fails closed

    async def aclose(self) -> None:
        await self.controls.aclose()
        await self.rpc.aclose()

    async def healthz(self, request: Request) -> Response:
        trace_id = uuid.uuid4().hex
        return JSONResponse({"status": "ok"}, headers={"X-Trace-ID": trace_id})

    async def not_found(self, request: Request) -> Response:
        """Outside /functions/v1/: still a JSON error with a trace id, never a bare page."""
        trace_id = uuid.uuid4().hex
        return JSONResponse(
            {
                "error": "not found; functions live under /functions/v1/",
                "code": "NOT_FOUND",
                "trace_id": trace_id,
            },
            status_code=404,
            headers={"X-Trace-ID": trace_id},
        )

    async def function(self, request: Request) -> Response:
        trace_id = uuid.uuid4().hex
        name = request.path_params["name"]
        op = OPERATIONS.get(name, "unknown")
        started = time.perf_counter()
        try:
            if self.degrade is not None and await self.degrade.fails():
                answer = refuse(500, "INTERNAL_ERROR", DEGRADED)
            else:
                answer = await self._judge(request, name, op, trace_id)
        except Exception as exc:  # never crash a worker, never leak a stack trace (S2)
            self.tm.error("internal error", trace_id, "INTERNAL_ERROR", exc, {"function": op})
            answer = refuse(500, "INTERNAL_ERROR", "internal error; see the trace id in the logs")
        elapsed_ms = (time.perf_counter() - started) * 1000
        # 5xx: the request was refused or failed on the target's side; a 4xx is the client's
        outcome = "success" if answer.status < 500 else "error"
        self.tm.count(
            "omnihub.agent.requests",
            tags=[f"function:{op}", f"status:{outcome}", f"code:{answer.code}"],
        )
        self.tm.distribution(
            "omnihub.agent.duration", elapsed_ms, tags=[f"function:{op}", f"status:{outcome}"]
        )
        if answer.code in _REPORTED_CODES:
            self.tm.error(answer.body.get("error", ""), trace_id, answer.code)
        body = dict(answer.body)
        if "error" in body or op == "omnilink_agent":
            body["trace_id"] = trace_id
        headers = {**answer.headers, "X-Trace-ID": trace_id}
        return JSONResponse(body, status_code=answer.status, headers=headers)

    # --- the contract's order ------------------------------------------------------------

    def client_of(self, request: Request) -> str:
        """The rate-limited client: the peer, or the first X-Forwarded-For when trusted (R4)."""
        if self.cfg.trust_forwarded_for:
            fwd = request.headers.get("x-forwarded-for", "")
            first = fwd.split(",")[0].strip()
            if first:
                return first[:64]
        return request.client.host if request.client else "unknown"

    def _key_ok(self, request: Request) -> bool:
        apikey = request.headers.get("apikey", "")
        auth = request.headers.get("authorization", "")
        scheme, _, bearer = auth.partition(" ")
        if scheme.lower() != "bearer" or not apikey or apikey != bearer.strip():
            return False
        given = apikey.encode()
        return any(hmac.compare_digest(given, k) for k in self._keys)

    async def _judge(self, request: Request, name: str, op: str, trace_id: str) -> Answer:
        # 1. rate limit: the edge rule sits in front of everything
        try:
            decision = await self.backends.limiter.hit(self.client_of(request))
        except LimiterUnavailable:
            if op in SIDE_EFFECTS:
                return refuse(
                    503,
                    "RATE_LIMIT_UNAVAILABLE",
                    "rate limiter unavailable - operations with side effects are refused",
                )
        else:
            if not decision.allowed:
                self.tm.count("omnihub.ratelimit.rejected", tags=[f"function:{op}"])
                return refuse(
                    429,
                    "RATE_LIMITED",
                    f"rate limit exceeded: {self.backends.limiter.limit} requests per "
                    f"{self.backends.limiter.window_s} s; retry after {decision.retry_after_s} s",
                    **{"Retry-After": str(decision.retry_after_s)},
                )
        # 2. key
        if not self._key_ok(request):
            return refuse(401, "UNAUTHORIZED", "missing or invalid API key")
        if op == "unknown":
            return refuse(404, "NOT_FOUND", f"no function named {name[:60]!r}")
        if request.method != "POST":
            return refuse(405, "METHOD_NOT_ALLOWED", f"{name} accepts POST only")
        # 3. emergency controls
        controls = await self.controls.controls(trace_id)
        if controls.kill_switch:
            return refuse(503, "KILL_SWITCH", MSG_KILL_SWITCH)
        if controls.operator_takeover and op not in controls.allowed_operations:
            return refuse(403, "OPERATOR_TAKEOVER", MSG_TAKEOVER)
        if controls.safe_mode and op in SIDE_EFFECTS:
            return refuse(503, "SAFE_MODE", MSG_SAFE_MODE)
        # 4. body
        try:
            raw = await read_json(request, self.cfg.max_body_bytes)
            if op == "omnilink_agent":
                return await self._agent(validate_agent(raw), trace_id)
            if op == "wallet_balance":
                return await self._balance(validate_balance(raw))
            body = validate_trade(raw)
            key = idempotency_key(request)
        except BadRequest as exc:
            return refuse(400, "BAD_REQUEST", str(exc))
        # 5-7. idempotency replay, approvals, the operation
        try:
            if key is None:
                return await self._trade(body)
            return await self._idempotent(key, fingerprint(raw), body)
        except StoreUnavailable:
            return refuse(
                503,
                "RATE_LIMIT_UNAVAILABLE",
                "idempotency store unavailable - operations with side effects are refused",
            )

    # --- read-only operations ------------------------------------------------------------

    async def _rpc(self, method: str, params: list[Any]) -> tuple[Any, str] | Answer:
        try:
            res = await self.rpc.call(method, params)
        except RpcUnavailable:
            return refuse(503, "RPC_UNAVAILABLE", "all RPC providers are unavailable")
        except RpcRejected as exc:
            return refuse(
                502,
                "RPC_ERROR",
                f"RPC provider refused the request: {exc}",
                **{"X-RPC-Provider": exc.provider},
            )
        return res.result, res.provider

    async def _agent(self, body: dict[str, Any], trace_id: str) -> Answer:
        got = await self._rpc("eth_blockNumber", [])
        if isinstance(got, Answer):
            return got
        result, provider = got
        try:
            block = int(result, 16)
        except (TypeError, ValueError):
            return refuse(502, "RPC_ERROR", "RPC provider returned a malformed block number")
        return Answer(
            200,
            {
                "trace_id": trace_id,
                "intent": body["intent"],
                "block_number": block,
                "provider": provider,
            },
            {"X-RPC-Provider": provider},
        )

    async def _balance(self, body: dict[str, Any]) -> Answer:
        got = await self._rpc("eth_getBalance", [body["address"], "latest"])
        if isinstance(got, Answer):
            return got
        result, provider = got
        try:
            wei = int(result, 16)
        except (TypeError, ValueError):
            return refuse(502, "RPC_ERROR", "RPC provider returned a malformed balance")
        return Answer(
            200,
            {"address": body["address"], "balance_wei": str(wei), "provider": provider},
            {"X-RPC-Provider": provider},
        )

    # --- execute_trade -------------------------------------------------------------------

    async def _idempotent(self, key: str, fp: str, body: dict[str, Any]) -> Answer:
        store = self.backends.store
        claim = await store.claim(key, fp, self._claim_wait_s)
        if claim.outcome == "mismatch":
            return refuse(
                422,
                "IDEMPOTENCY_MISMATCH",
                "Idempotency-Key was already used with a different request body",
            )
        if claim.outcome == "busy":
            return refuse(
                409, "IDEMPOTENCY_IN_PROGRESS", "a request with this Idempotency-Key is in progress"
            )
        if claim.outcome == "replay":
            return self._replayed(claim.status, claim.body or {})
        try:
            answer = await self._trade(body)
        except BaseException:
            await store.release(key, fp)
            raise
        await store.complete(key, fp, answer.status, answer.body)
        return answer

    @staticmethod
    def _replayed(status: int, body: dict[str, Any]) -> Answer:
        headers = {}
        if isinstance(body.get("provider"), str):
            headers["X-RPC-Provider"] = body["provider"]
        return Answer(status, dict(body), headers)

    async def _trade(self, body: dict[str, Any]) -> Answer:
        if body["approval_id"] is not None:
            return await self._approved_trade(body)
        if body["amount_usd"] >= APPROVAL_THRESHOLD_USD:
            return await self._request_approval(body)
        return await self._send(body)

    async def _send(self, body: dict[str, Any]) -> Answer:
        got = await self._rpc("eth_sendRawTransaction", [body["raw_tx"]])
        if isinstance(got, Answer):
            return got
        tx_hash, provider = got
        if not isinstance(tx_hash, str):
            return refuse(502, "RPC_ERROR", "RPC provider returned a malformed transaction hash")
        return Answer(200, {"tx_hash": tx_hash, "provider": provider}, {"X-RPC-Provider": provider})

    async def _request_approval(self, body: dict[str, Any]) -> Answer:
        amount = body["amount_usd"]
        risk = "critical" if amount >= CRITICAL_THRESHOLD_USD else "high"
        expires = datetime.now(UTC) + timedelta(seconds=self.cfg.approval_ttl_s)
        row = {
            "user_id": body["user_id"],
            "action": "execute_trade",
            "risk_level": risk,
            "status": "pending",
            "amount_usd": amount,
            "expires_at": _iso(expires),
            "request": {
                "user_id": body["user_id"],
                "amount_usd": amount,
                "tx_hash": body["tx_hash"],
            },
        }
        try:
            created = await self.controls.create_approval(row)
        except (ControlPlaneError, TimeoutError, OSError, ValueError) as exc:
            return self._approvals_down(exc)
        except Exception as exc:
            return self._approvals_down(exc)
        return Answer(
            202,
            {
                "approval_id": str(created["id"]),
                "status": "pending",
                "expires_at": str(created.get("expires_at") or _iso(expires)),
            },
            code="APPROVAL_PENDING",
        )

    def _approvals_down(self, exc: BaseException) -> Answer:
        return refuse(
            503,
            "APPROVALS_UNAVAILABLE",
            f"the approval queue cannot be reached ({type(exc).__name__}) - trade not executed",
        )

    async def _approved_trade(self, body: dict[str, Any]) -> Answer:
        aid = body["approval_id"]
        try:
            row = await self.controls.get_approval(aid)
        except Exception as exc:  # unreachable, slow or odd: fail closed
            return self._approvals_down(exc)
        if row is None:
            return refuse(404, "APPROVAL_NOT_FOUND", f"no approval with id {aid}")
        asked = row.get("request") if isinstance(row.get("request"), dict) else {}
        amount = row.get("amount_usd")
        same = (
            row.get("action") == "execute_trade"
            and row.get("user_id") == body["user_id"]
            and asked.get("tx_hash") == body["tx_hash"]
            and isinstance(amount, int | float)
            and not isinstance(amount, bool)
            and float(amount) == float(body["amount_usd"])
        )
        if not same:
            return refuse(
                409,
                "APPROVAL_MISMATCH",
                "this request differs from the one approval "
                f"{aid} was created for (user, amount or transaction)",
            )
        status = row.get("status")
        expires = _parse_ts(row.get("expires_at"))
        if status == "pending" and expires is not None and expires <= datetime.now(UTC):
            status = "expired"  # the store expires lazily; never trust a stale pending
        if status == "pending":
            return Answer(
                202,
                {"approval_id": aid, "status": "pending", "expires_at": row.get("expires_at")},
                code="APPROVAL_PENDING",
            )
        if status == "expired":
            return refuse(410, "APPROVAL_EXPIRED", f"approval {aid} expired without a decision")
        if status == "rejected":
            return refuse(403, "APPROVAL_REJECTED", f"approval {aid} was rejected")
        if status != "approved":
            return refuse(403, "APPROVAL_REJECTED", f"approval {aid} is {str(status)[:20]!r}")
        # Approved: execute exactly once; later retries replay the first answer (A3).
        done = row.get("result")
        if row.get("executed_at") and isinstance(done, dict) and "tx_hash" in done:
            return self._replayed(200, done)
        store = self.backends.store
        key, fp = f"approval:{aid}", body["tx_hash"]
        claim = await store.claim(key, fp, self._claim_wait_s)
        if claim.outcome == "replay":
            return self._replayed(claim.status, claim.body or {})
        if claim.outcome != "owner":
            return refuse(
                409, "IDEMPOTENCY_IN_PROGRESS", f"approval {aid} is being executed right now"
            )
        try:
            answer = await self._send(body)
        except BaseException:
            await store.release(key, fp)
            raise
        await store.complete(key, fp, answer.status, answer.body)
        if answer.status == 200:
            await self._record_execution(aid, answer.body)
        return answer

    async def _record_execution(self, aid: str, result: dict[str, Any]) -> None:
        """Mark the approval executed on its row, for operators; the store already guards."""
        try:
            await self.controls.update_approval(
                aid, {"executed_at": _iso(datetime.now(UTC)), "result": result}
            )
        except Exception as exc:
            self.tm.error(
                f"approval {aid} executed but its row was not updated", "", "APPROVAL_RECORD", exc
            )
