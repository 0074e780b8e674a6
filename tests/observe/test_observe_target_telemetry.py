"""The shipped monitors watch what the reference target really emits (CONTRACT section 7):
one functions instance over real HTTP, its telemetry lines matched against every query term."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest

from omnidrill.observe.compile import compile_monitors
from omnidrill.observe.evaluate import Series, parse_metric_query

from .conftest import ROOT

ANON = "anon-observe-telemetry-key"
SERVICE = "service-observe-telemetry-key"
ROW = {
    "id": "00000000-0000-0000-0000-000000000001",
    "omnihub_kill_switch": False,
    "execution_safe_mode": False,
    "operator_takeover": False,
    "allowed_operations": [],
}
HEADERS = {"apikey": ANON, "Authorization": f"Bearer {ANON}"}


async def _drive(log: io.StringIO, redis_url: str, redis_prefix: str) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from omnihub_ref.config import FunctionsConfig
    from omnihub_ref.functions import Functions, build_backends
    from omnihub_ref.rpc_mock import create_rpc_app
    from omnihub_ref.serving import serve_app
    from omnihub_ref.telemetry import Telemetry

    answer: dict[str, tuple[int, object]] = {"now": (200, [ROW])}

    async def controls(request: Request) -> Response:
        status, body = answer["now"]
        return JSONResponse(body, status_code=status)

    control = await serve_app(Starlette(routes=[Route("/rest/v1/{t}", controls)]))
    primary = await serve_app(create_rpc_app("primary"))
    fallback = await serve_app(create_rpc_app("fallback"))
    cfg = FunctionsConfig(
        rpc_primary_url=primary.url,
        rpc_fallback_url=fallback.url,
        control_api_url=f"{control.url}/rest/v1",
        anon_key=ANON,
        service_role_key=SERVICE,
        controls_ttl_ms=0,
        controls_timeout_ms=500,
        rpc_timeout_ms=800,
        rate_limit=1000,
        rate_window_s=60,
        redis_url=redis_url,
        redis_prefix=f"{redis_prefix}observe:",
    )
    backends = build_backends(cfg)
    fn = Functions(cfg, backends, Telemetry(log))
    srv = await serve_app(fn.app)
    body = {"address": "0x" + "cd" * 20}
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            url = f"{srv.url}/functions/v1/wallet-balance"
            assert (await c.post(url, json=body, headers=HEADERS)).status_code == 200
            answer["now"] = (200, [{**ROW, "omnihub_kill_switch": True}])  # kill-switch drill
            assert (await c.post(url, json=body, headers=HEADERS)).status_code == 503
            answer["now"] = (500, {"message": "down"})  # controls outage
            assert (await c.post(url, json=body, headers=HEADERS)).status_code == 503
    finally:
        await srv.stop()
        await fn.aclose()
        await backends.aclose()
        for s in (control, primary, fallback):
            await s.stop()


@pytest.fixture(scope="module")
def emitted(redis_url: str, redis_prefix: str) -> list[Series]:
    """Every (metric, tags) the instance reported, with the base tag its Datadog sink adds."""
    log = io.StringIO()
    asyncio.run(_drive(log, redis_url, redis_prefix))
    out = []
    for line in log.getvalue().splitlines():
        rec = json.loads(line)
        name = rec.get("count") or rec.get("gauge") or rec.get("distribution")
        if not name:
            continue
        tags = dict(t.split(":", 1) for t in rec["tags"])
        out.append(Series(name, {**tags, "service": "omnihub-local"}, [rec["value"]], 60))
    return out


WATCHED = [
    "agent-error-rate",
    "agent-latency-p95",
    "kill-switch-on",
    "safe-mode-on",
    "operator-takeover-on",
    "controls-failsafe",
]


@pytest.mark.parametrize("monitor", WATCHED)
def test_every_query_term_matches_what_the_target_emits(monitor: str, emitted) -> None:
    spec = compile_monitors(ROOT, "local").monitor_specs()[monitor]
    for term in parse_metric_query(spec.query).terms():
        hits = [s for s in emitted if term.matches(s)]
        assert hits, f"{monitor}: nothing the target emits matches {term}"
        for s in hits:
            assert all(k in s.tags for k in term.by), (monitor, term.by, s.tags)


def test_slo_queries_match_what_the_target_emits(emitted) -> None:
    for slo in compile_monitors(ROOT, "local").slo_specs().values():
        if slo.type == "metric":
            queries = [f"sum(last_5m):{slo.numerator} > 0", f"sum(last_5m):{slo.denominator} > 0"]
        else:
            assert slo.time_slice is not None
            queries = [f"percentile(last_5m):{slo.time_slice.query} > 0"]
        for q in queries:
            for term in parse_metric_query(q).terms():
                assert any(term.matches(s) for s in emitted), f"{slo.id}: {q}"
