"""A small OmniHub-shaped Starlette target for the load tests, with correct and faulty limiters.

Run as a child process: `python tests/load/fake_target.py --ports 8001,8002 --limiter fixed`.
Not the shipped reference target: it only answers the functions' surface, fast, and lets a test
pick a rate limiter, including broken ones that the rate-limit check must catch:

- `fixed`, `sliding`: correct fixed-window and sliding-window (Upstash-style) limiters;
- `off_by_one`: lets limit + 1 requests through per window;
- `per_instance`: each port counts on its own (the limit is not global);
- `global`: one bucket for all clients;
- `no_retry_after`: correct counting, but 429s carry no Retry-After;
- `health_limited`: also limits the health endpoint;
- `none`: no limit at all.

`POST /__fault {"on": true}` makes every function answer 503 until turned off;
`GET /__clients` counts function requests per client identity (`DELETE` clears it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ANON = "test-anon-key"
FAULT = {"on": False}  # POST /__fault {"on": true}: every function answers 503 (shared by ports)
SEEN: dict[str, int] = {}  # requests per client identity, GET/DELETE /__clients


class Limiter:
    """Counts only admitted requests (429s do not count), windows aligned to the epoch."""

    def __init__(self, kind: str, limit: int, window: int) -> None:
        self.kind, self.limit, self.window = kind, limit, window
        self.counts: dict[tuple[str, int], int] = {}

    def hit(self, client: str) -> tuple[bool, int | None]:
        """(admitted, Retry-After seconds or None)."""
        if self.kind == "none":
            return True, None
        if self.kind == "global":
            client = "*"
        now = time.time()
        w = int(now // self.window)
        limit = self.limit + 1 if self.kind == "off_by_one" else self.limit
        cur = self.counts.get((client, w), 0)
        if self.kind == "sliding":
            prev = self.counts.get((client, w - 1), 0)
            elapsed = now - w * self.window
            weight = 1 - elapsed / self.window
            if math.floor(prev * weight) + cur < limit:
                self.counts[(client, w)] = cur + 1
                return True, None
            room = limit - cur
            wait = self.window - elapsed
            if room > 0 and prev > 0:
                wait = min(max((1 - room / prev) * self.window - elapsed, 0) + 0.001, wait)
            return False, max(1, min(self.window, math.ceil(wait)))
        if cur < limit:
            self.counts[(client, w)] = cur + 1
            return True, None
        wait = (w + 1) * self.window - now
        return False, max(1, min(self.window, math.ceil(wait)))


def client_of(request: Request) -> str:
    xff = request.headers.get("x-forwarded-for")
    if xff:
        return xff.split(",")[0].strip()
    return request.client.host if request.client else "?"


def make_app(limiter: Limiter, delay_s: float, health_limited: bool, no_retry_after: bool):
    async def limited(request: Request) -> Response | None:
        ok, retry = limiter.hit(client_of(request))
        if ok:
            return None
        headers = {} if no_retry_after or retry is None else {"Retry-After": str(retry)}
        body = {"error": "rate limit exceeded", "code": "RATE_LIMITED"}
        return JSONResponse(body, status_code=429, headers=headers)

    async def healthz(request: Request) -> Response:
        if health_limited and (refused := await limited(request)):
            return refused
        return JSONResponse({"status": "ok"})

    async def function(request: Request) -> Response:
        SEEN[client_of(request)] = SEEN.get(client_of(request), 0) + 1
        if refused := await limited(request):
            return refused
        key = request.headers.get("apikey")
        if key != ANON or request.headers.get("authorization") != f"Bearer {ANON}":
            return JSONResponse({"error": "unauthorized", "code": "UNAUTHORIZED"}, status_code=401)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": "bad json", "code": "BAD_REQUEST"}, status_code=400)
        if delay_s:
            await asyncio.sleep(delay_s)
        if FAULT["on"]:
            return JSONResponse({"error": "down", "code": "RPC_UNAVAILABLE"}, status_code=503)
        name = request.path_params["name"]
        if name == "wallet-balance":
            addr = body.get("address", "")
            if not (isinstance(addr, str) and addr.startswith("0x") and len(addr) == 42):
                return JSONResponse(
                    {"error": "bad address", "code": "BAD_REQUEST"}, status_code=400
                )
            return JSONResponse({"address": addr, "balance_wei": "0", "provider": "primary"})
        if name == "fail":
            return JSONResponse({"error": "down", "code": "RPC_UNAVAILABLE"}, status_code=503)
        return JSONResponse({"ok": True, "provider": "primary"})

    async def clients(request: Request) -> Response:
        if request.method == "DELETE":
            SEEN.clear()
        return JSONResponse(SEEN)

    async def fault(request: Request) -> Response:
        FAULT["on"] = bool((await request.json()).get("on"))
        return JSONResponse(FAULT)

    return Starlette(
        routes=[
            Route("/__fault", fault, methods=["POST"]),
            Route("/__clients", clients, methods=["GET", "DELETE"]),
            Route("/functions/v1/healthz", healthz),
            Route("/functions/v1/{name}", function, methods=["POST"]),
        ]
    )


async def serve(ports: list[int], args: argparse.Namespace) -> None:
    kind = args.limiter
    counting = {"no_retry_after": "fixed", "health_limited": "fixed", "per_instance": "fixed"}
    shared = Limiter(counting.get(kind, kind), args.limit, args.window)
    servers = []
    for port in ports:
        limiter = Limiter("fixed", args.limit, args.window) if kind == "per_instance" else shared
        app = make_app(
            limiter, args.delay_ms / 1000, kind == "health_limited", kind == "no_retry_after"
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        servers.append(uvicorn.Server(config))
    await asyncio.gather(*(s.serve() for s in servers))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", required=True, help="comma-separated; one instance per port")
    ap.add_argument("--limiter", default="none")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    asyncio.run(serve([int(p) for p in args.ports.split(",")], args))


if __name__ == "__main__":
    main()
