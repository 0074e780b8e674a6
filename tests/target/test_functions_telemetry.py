"""One functions instance in this process, over real HTTP on 127.0.0.1: what it reports
(CONTRACT section 7: JSON lines, Datadog wire format, Sentry events) and how it reads
control rows of the wrong shape (C1: not exactly one row, upper-case columns)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import subprocess
import sys
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omnihub_ref.config import FunctionsConfig
from omnihub_ref.functions import Functions, build_backends
from omnihub_ref.rpc_mock import create_rpc_app
from omnihub_ref.serving import serve_app
from omnihub_ref.telemetry import DatadogSink, Telemetry

ANON = "anon-telemetry-test-key"
SERVICE = "service-telemetry-test-key"
GOOD_ROW = {
    "id": "00000000-0000-0000-0000-000000000001",
    "omnihub_kill_switch": False,
    "execution_safe_mode": False,
    "operator_takeover": False,
    "allowed_operations": [],
}


class FakeControlPlane:
    """A control API whose emergency_controls answer the test chooses."""

    def __init__(self) -> None:
        self.answer: tuple[int, Any] = (200, [GOOD_ROW])
        self.app = Starlette(
            routes=[Route("/rest/v1/{table}", self.handle, methods=["GET", "POST", "PATCH"])]
        )

    async def handle(self, request: Request) -> Response:
        assert request.headers["apikey"] == SERVICE
        status, body = self.answer
        if isinstance(body, bytes):
            return Response(body, status_code=status)
        return JSONResponse(body, status_code=status)


REDIS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _redis(redis_url: str, redis_prefix: str) -> None:
    """The instances of this module keep their limiter and idempotency keys in the test Redis."""
    REDIS.update(url=redis_url, prefix=f"{redis_prefix}telemetry:")


async def _with_instance(
    test: Callable[[str, FakeControlPlane, io.StringIO], Awaitable[None]],
    telemetry_kw: dict[str, Any] | None = None,
) -> io.StringIO:
    control = FakeControlPlane()
    servers = [await serve_app(control.app), await serve_app(create_rpc_app("primary"))]
    fallback = await serve_app(create_rpc_app("fallback"))
    servers.append(fallback)
    cfg = FunctionsConfig(
        rpc_primary_url=servers[1].url,
        rpc_fallback_url=fallback.url,
        control_api_url=f"{servers[0].url}/rest/v1",
        anon_key=ANON,
        service_role_key=SERVICE,
        controls_ttl_ms=0,
        controls_timeout_ms=500,
        rpc_timeout_ms=800,
        rate_limit=1000,
        rate_window_s=60,
        redis_url=REDIS["url"],
        redis_prefix=REDIS["prefix"],
    )
    log = io.StringIO()
    tm = Telemetry(log, **(telemetry_kw or {}))
    backends = build_backends(cfg)
    fn = Functions(cfg, backends, tm)
    srv = await serve_app(fn.app)
    try:
        await test(srv.url, control, log)
    finally:
        await srv.stop()
        await fn.aclose()
        await backends.aclose()
        for s in servers:
            await s.stop()
    return log


HEADERS = {"apikey": ANON, "Authorization": f"Bearer {ANON}"}
BALANCE = {"address": "0x" + "cd" * 20}


async def _balance(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(f"{url}/functions/v1/wallet-balance", json=BALANCE, headers=HEADERS)


BAD_SHAPES = {
    "no row": (200, []),
    "two rows": (200, [GOOD_ROW, {**GOOD_ROW, "id": "x"}]),
    "upper-case columns": (200, [{k.upper(): v for k, v in GOOD_ROW.items()}]),
    "string boolean": (200, [{**GOOD_ROW, "omnihub_kill_switch": "false"}]),
    "not JSON": (200, b"<html>"),
    "an object, not rows": (200, GOOD_ROW),
    "HTTP 500": (500, {"message": "boom"}),
    "HTTP 401": (401, {"message": "no"}),
}


@pytest.mark.parametrize("shape", list(BAD_SHAPES))
def test_c1_controls_of_the_wrong_shape_fail_closed(shape: str) -> None:
    async def test(url: str, control: FakeControlPlane, log: io.StringIO) -> None:
        assert (await _balance(url)).status_code == 200
        control.answer = BAD_SHAPES[shape]
        r = await _balance(url)
        assert r.status_code == 503 and r.json()["code"] == "KILL_SWITCH"
        control.answer = (200, [{**GOOD_ROW, "allowed_operations": None}])
        assert (await _balance(url)).status_code == 200

    log = asyncio.run(_with_instance(test))
    lines = [json.loads(x) for x in log.getvalue().splitlines()]
    gauges = [x for x in lines if x.get("gauge") == "omnihub.emergency.kill_switch"]
    assert [g["tags"] for g in gauges] == [
        ["source:table"],
        ["source:failsafe"],
        ["source:table"],
        ["source:failsafe"],  # the fail-safe is over: its series ends at 0
    ]
    assert [g["value"] for g in gauges] == [0, 1, 0, 0]
    unreadable = [x for x in lines if x.get("code") == "CONTROLS_UNREADABLE"]
    assert len(unreadable) == 1 and unreadable[0]["trace_id"]


def test_metrics_are_json_lines_with_the_contract_tags() -> None:
    async def test(url: str, control: FakeControlPlane, log: io.StringIO) -> None:
        assert (await _balance(url)).status_code == 200
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{url}/functions/v1/wallet-balance", json={}, headers=HEADERS)
            assert r.status_code == 400

    log = asyncio.run(_with_instance(test))
    lines = [json.loads(x) for x in log.getvalue().splitlines()]
    counts = [x for x in lines if x.get("count") == "omnihub.agent.requests"]
    assert {tuple(c["tags"]) for c in counts} == {
        ("code:OK", "function:wallet_balance", "status:success"),
        # a bad body is the client's error, not the target's: availability counts 5xx
        ("code:BAD_REQUEST", "function:wallet_balance", "status:success"),
    }
    dists = [x for x in lines if x.get("distribution") == "omnihub.agent.duration"]
    assert len(dists) == 2 and all(d["value"] > 0 for d in dists)
    rpc = [x for x in lines if x.get("count") == "omnihub.rpc.requests"]
    assert rpc[0]["tags"] == ["outcome:ok", "provider:primary"]
    assert ANON not in log.getvalue() and SERVICE not in log.getvalue()


SENTRY_CHILD = """
import json, sys
import sentry_sdk
from sentry_sdk.transport import Transport
from omnidrill import secrets
from omnihub_ref.telemetry import Telemetry, init_sentry

events = []

class Capture(Transport):
    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.headers.get("type") == "event":
                events.append(item.payload.json)

secret = sys.argv[1]
secrets.register(secret)
init_sentry("http://public@127.0.0.1:9/1", transport=Capture())
tm = Telemetry(open("/dev/null", "w"), sentry=True)
tm.error(f"control API said {secret}", "trace-one", "KILL_SWITCH")
try:
    api_key = secret
    raise RuntimeError(f"upstream refused key {api_key}")
except RuntimeError as exc:
    tm.error("internal error", "trace-two", "INTERNAL_ERROR", exc)
sentry_sdk.flush(timeout=5)
print(json.dumps(events))
"""


def test_sentry_events_carry_the_trace_id_and_no_secret() -> None:
    # sentry-sdk imports gevent.monkey when present; keep it out of the pytest process.
    out = subprocess.run(
        [sys.executable, "-c", SENTRY_CHILD, SERVICE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    events = json.loads(out.stdout.strip().splitlines()[-1])
    assert {e["tags"]["trace_id"] for e in events} == {"trace-one", "trace-two"}
    assert {e["tags"]["code"] for e in events} == {"KILL_SWITCH", "INTERNAL_ERROR"}
    assert SERVICE not in json.dumps(events)
    assert "***" in json.dumps(events)


@pytest.mark.parametrize("configured_by", ["arguments", "environment"])
def test_datadog_sink_speaks_the_intake_wire_format(
    configured_by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    async def intake(request: Request) -> Response:
        raw = await request.body()
        encoding = request.headers.get("content-encoding", "")
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        received.append((request.url.path, json.loads(raw), dict(request.headers)))
        return JSONResponse({"errors": []}, status_code=202)

    app = Starlette(
        routes=[
            Route("/api/v2/series", intake, methods=["POST"]),
            Route("/api/v1/distribution_points", intake, methods=["POST"]),
        ]
    )

    async def run() -> None:
        srv = await serve_app(app)
        if configured_by == "arguments":
            sink = DatadogSink(api_key="dd-test-api-key-123", host=srv.url, interval_s=3600)
        else:  # DD_SITE may be a URL, as for every Datadog user of omnidrill
            monkeypatch.setenv("DD_API_KEY", "dd-test-api-key-123")
            monkeypatch.setenv("DD_SITE", srv.url)
            sink = DatadogSink(interval_s=3600)
        try:
            tm = Telemetry(io.StringIO(), datadog=sink)
            tm.count("omnihub.agent.requests", tags=["function:wallet_balance"])
            tm.count("omnihub.agent.requests", tags=["function:wallet_balance"])
            tm.gauge("omnihub.emergency.kill_switch", 1, ["source:failsafe"])
            tm.distribution("omnihub.agent.duration", 12.5, ["function:wallet_balance"])
            await asyncio.to_thread(sink.flush)
        finally:
            sink._stop.set()
            await srv.stop()
        assert not sink.errors, sink.errors

    asyncio.run(run())
    # the gauge's change may have been sent at once, before the explicit flush
    posts = [(body, headers) for path, body, headers in received if path == "/api/v2/series"]
    assert all(h["dd-api-key"] == "dd-test-api-key-123" for _, h in posts)
    series = [s for body, _ in posts for s in body["series"]]
    metrics = {(s["metric"], s.get("type")): s for s in series}
    count = metrics[("omnihub.agent.requests", 1)]
    assert (
        sum(s["points"][0]["value"] for s in series if s["metric"] == "omnihub.agent.requests")
        == 2.0
    )
    assert "function:wallet_balance" in count["tags"]
    assert metrics[("omnihub.emergency.kill_switch", 3)]["points"][0]["value"] == 1.0
    dist = next(body for path, body, _ in received if path == "/api/v1/distribution_points")
    point = dist["series"][0]["points"][0]
    assert dist["series"][0]["metric"] == "omnihub.agent.duration" and point[1] == [12.5]
