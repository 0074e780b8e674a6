"""Throughput and latency of `wallet-balance` on the reference stack, beside bare Starlette.

Run by hand (not a test):  .venv/bin/python benchmarks/target_bench.py [--seconds 10]

Every server process (a bare Starlette endpoint; or every part of the stack, one process each)
is pinned to CPU 0, the load generator (a small keep-alive HTTP/1.1 client on raw asyncio
streams, lighter than httpx) to CPU 1. Measured in one run: the bare endpoint; the stack with
one functions instance, then two (the load spread over both); for each, requests per second,
p50 and p99, and the CPU time each process spent per request (psutil), which says what one
instance costs whatever else shares its core. Then the fault proxy's added latency, now that
it runs in a process of its own: one JSON-RPC call at a time to the mock provider, direct and
through the proxy's rpc_primary path. The rate limit is raised out of the way; everything
else (controls cache, fault-proxy hops, Redis, telemetry lines, RPC) is what a load test meets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psutil

SERVER_CPU = {0}
LOAD_CPU = {1}
BODY = json.dumps({"address": "0x" + "ab" * 20}).encode()
others: dict[int, int] = {}  # non-200 statuses of the current measurement


def serve_bare(port: int) -> None:
    """The comparison point: one Starlette POST endpoint that parses and answers JSON."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def balance(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"address": body["address"], "balance_wei": "0", "provider": "none"})

    app = Starlette(routes=[Route("/functions/v1/wallet-balance", balance, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _one_connection(
    host: str, port: int, headers: bytes, stop_at: float, record_from: float, lat: list[float]
) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection(host, port)
    ok = bad = 0
    request = (
        b"POST /functions/v1/wallet-balance HTTP/1.1\r\nHost: bench\r\n"
        + headers
        + b"Content-Type: application/json\r\nContent-Length: "
        + str(len(BODY)).encode()
        + b"\r\n\r\n"
        + BODY
    )
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            t1 = time.perf_counter()
            if t0 >= record_from:
                lat.append(t1 - t0)
                if status == 200:
                    ok += 1
                else:
                    bad += 1
                    others[status] = others.get(status, 0) + 1
    finally:
        writer.close()
    return ok, bad


async def _load(
    urls: list[str], key: str | None, seconds: float, warmup: float, conns: int
) -> dict:
    lat: list[float] = []
    others.clear()
    start = time.perf_counter()
    record_from, stop_at = start + warmup, start + warmup + seconds
    tasks = []
    for i in range(conns):
        parts = urlsplit(urls[i % len(urls)])
        headers = f"X-Forwarded-For: 198.18.{i // 250}.{i % 250 + 1}\r\n".encode()
        if key:
            headers += f"apikey: {key}\r\nAuthorization: Bearer {key}\r\n".encode()
        tasks.append(
            _one_connection(
                parts.hostname or "127.0.0.1", parts.port or 80, headers, stop_at, record_from, lat
            )
        )
    results = await asyncio.gather(*tasks)
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) >= 100 else [float("nan")] * 99
    return {
        "requests": ok + bad,
        "non_200": bad,
        "statuses": dict(others),
        "rps": round((ok + bad) / seconds, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


def _pinned(cpus: set[int]) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def bare_server() -> Iterator[tuple[str, list[psutil.Process]]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _pinned(SERVER_CPU)  # the child inherits the affinity
    proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port)])
    _pinned(LOAD_CPU)
    try:
        from omnidrill.netutil import wait_for_port

        wait_for_port("127.0.0.1", port, timeout=20)
        yield f"http://127.0.0.1:{port}", [psutil.Process(proc.pid)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def stack(args: list[str], tmp: Path) -> Iterator[tuple[dict, dict[str, psutil.Process]]]:
    """The stack, every part pinned to the server CPU; (profile, part name -> process)."""
    from omnidrill.launch import launch_stack

    _pinned(SERVER_CPU)
    try:
        ctx = launch_stack(
            ["--base-port", "0", "--rate-limit", "1000000000", "--rate-window-s", "60", *args],
            tmp,
        )
        profile_path, profile = ctx.__enter__()
    finally:
        _pinned(LOAD_CPU)
    try:
        supervisor = next(
            p
            for p in psutil.process_iter(["cmdline"])
            if str(profile_path) in " ".join(p.info["cmdline"] or [])
        )
        parts = {c.environ().get("OMNIHUB_PART", c.name()): c for c in supervisor.children()}
        yield profile, parts
    finally:
        ctx.__exit__(None, None, None)


def _cpu(procs: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}


def _proxy_latency(profile: dict, calls: int) -> dict:
    """Median and p99 of one JSON-RPC call at a time, direct and through rpc_primary."""
    import httpx

    listen = next(p["listen"] for p in profile["faults"]["proxies"] if p["name"] == "rpc_primary")
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    out = {}
    with httpx.Client() as client:
        for label, url in (
            ("direct", profile["rpc_direct"]["primary"]),
            ("proxy", f"http://{listen}"),
        ):
            lat = []
            for i in range(calls + 50):
                t0 = time.perf_counter()
                client.post(url, json=body)
                if i >= 50:
                    lat.append(time.perf_counter() - t0)
            q = statistics.quantiles(lat, n=100)
            out[label] = (q[49] * 1000, q[98] * 1000)
    return {
        "direct_p50_ms": round(out["direct"][0], 3),
        "proxy_p50_ms": round(out["proxy"][0], 3),
        "added_p50_ms": round(out["proxy"][0] - out["direct"][0], 3),
        "added_p99_ms": round(out["proxy"][1] - out["direct"][1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--proxy-calls", type=int, default=2000)
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    def measure(urls: list[str], key: str | None, procs: dict[str, psutil.Process]) -> dict:
        before = _cpu(procs)
        out = asyncio.run(_load(urls, key, args.seconds, args.warmup, args.connections))
        after = _cpu(procs)
        # CPU per request over warm-up and measurement alike (requests in the warm-up are not
        # counted, so this over-states it by warmup/seconds at most)
        served = max(1, out["requests"] * (args.seconds + args.warmup) / args.seconds)
        out["cpu_ms"] = {n: round((after[n] - before[n]) / served * 1000, 3) for n in procs}
        return out

    results: dict[str, dict] = {}
    proxy: dict = {}
    with tempfile.TemporaryDirectory(prefix="omnidrill-bench-") as tmp:
        with bare_server() as (url, procs):
            results["bare Starlette endpoint"] = measure([url], None, {"server": procs[0]})
        for n in (1, 2):
            with stack(["--instances", str(n)], Path(tmp) / f"i{n}") as (profile, parts):
                key = profile["keys"]["anon"]["value"]
                results[f"wallet-balance, {n} instance(s)"] = measure(
                    profile["instances"], key, parts
                )
                if n == 1:
                    proxy = _proxy_latency(profile, args.proxy_calls)

    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; servers on CPU 0, load on CPU 1, "
        f"{args.connections} connections, {args.seconds:.0f} s after {args.warmup:.0f} s warm-up"
    )
    print(f"{'target':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}  CPU ms/request")
    for name, r in results.items():
        cpu = ", ".join(f"{k} {v}" for k, v in sorted(r["cpu_ms"].items(), key=lambda i: -i[1]))
        print(f"{name:32} {r['rps']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['non_200']:>8}  {cpu}")
    bare = results["bare Starlette endpoint"]["cpu_ms"]["server"]
    for n in (1, 2):
        r = results[f"wallet-balance, {n} instance(s)"]
        per = [v for k, v in r["cpu_ms"].items() if k.startswith("functions-")]
        own = sum(per) / len(per) * n  # CPU of one instance per request it serves
        print(
            f"{n} instance(s): per instance {r['rps'] / n:.0f} req/s on a shared core; one "
            f"instance's own CPU per request {own:.3f} ms = {1000 / own:.0f} req/s per core, "
            f"{bare / own:.2f} x bare Starlette ({1000 / bare:.0f} req/s per core)"
        )
    print(
        f"fault proxy, one call at a time ({args.proxy_calls}): direct p50 "
        f"{proxy['direct_p50_ms']} ms, through the proxy {proxy['proxy_p50_ms']} ms; added p50 "
        f"{proxy['added_p50_ms']} ms, p99 {proxy['added_p99_ms']} ms"
    )


if __name__ == "__main__":
    main()
