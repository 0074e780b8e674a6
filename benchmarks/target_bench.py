"""Throughput and latency of `wallet-balance` on one core, beside a bare Starlette endpoint.

Run by hand (not a test):  .venv/bin/python benchmarks/target_bench.py [--seconds 10]

Each server runs in a child process pinned to CPU 0; the load generator (a small keep-alive
HTTP/1.1 client on raw asyncio streams, lighter than httpx) runs pinned to CPU 1. Three
targets are measured in the same run: a bare Starlette endpoint, the reference stack with
the embedded backends (SQLite, in-memory limiter), and with Postgres + Redis. The rate limit
is raised out of the way; everything else (controls cache, fault-proxy hops, telemetry
lines, RPC to the mock provider) is what a load test meets.
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
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

SERVER_CPU = {0}
LOAD_CPU = {1}
BODY = json.dumps({"address": "0x" + "ab" * 20}).encode()


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
    finally:
        writer.close()
    return ok, bad


async def _load(url: str, key: str | None, seconds: float, warmup: float, conns: int) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lat: list[float] = []
    start = time.perf_counter()
    record_from, stop_at = start + warmup, start + warmup + seconds
    tasks = []
    for i in range(conns):
        headers = f"X-Forwarded-For: 198.18.{i // 250}.{i % 250 + 1}\r\n".encode()
        if key:
            headers += f"apikey: {key}\r\nAuthorization: Bearer {key}\r\n".encode()
        tasks.append(_one_connection(host, port, headers, stop_at, record_from, lat))
    results = await asyncio.gather(*tasks)
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) >= 100 else [float("nan")] * 99
    return {
        "requests": ok + bad,
        "non_200": bad,
        "rps": round((ok + bad) / seconds, 1),
        "p50_ms": round(q[49] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


def _pinned(cpus: set[int]) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _pinned(SERVER_CPU)  # the child inherits the affinity
    proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port)])
    _pinned(LOAD_CPU)
    try:
        from omnidrill.netutil import wait_for_port

        wait_for_port("127.0.0.1", port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def stack(args: list[str], tmp: Path) -> Iterator[tuple[str, str]]:
    from omnidrill.launch import launch_stack

    _pinned(SERVER_CPU)
    try:
        ctx = launch_stack(
            ["--base-port", "0", "--rate-limit", "1000000000", "--rate-window-s", "60", *args],
            tmp,
        )
        _, profile = ctx.__enter__()
    finally:
        _pinned(LOAD_CPU)
    try:
        yield profile["base_url"], profile["keys"]["anon"]["value"]
    finally:
        ctx.__exit__(None, None, None)


@contextlib.contextmanager
def bench_database(admin_dsn: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"omnidrill_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_dsn.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _clear_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    def measure(url: str, key: str | None) -> dict:
        return asyncio.run(_load(url, key, args.seconds, args.warmup, args.connections))

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="omnidrill-bench-") as tmp:
        with bare_server() as url:
            results["bare Starlette endpoint"] = measure(url, None)
        with stack([], Path(tmp) / "embedded") as (url, key):
            results["wallet-balance, embedded (SQLite, memory)"] = measure(url, key)
        prefix = f"bench{os.getpid()}:"
        try:
            with (
                bench_database(args.postgres) as dsn,
                stack(
                    ["--postgres", dsn, "--redis", args.redis, "--redis-prefix", prefix],
                    Path(tmp) / "pgredis",
                ) as (url, key),
            ):
                results["wallet-balance, Postgres + Redis"] = measure(url, key)
        except Exception as exc:
            results["wallet-balance, Postgres + Redis"] = {"skipped": f"{type(exc).__name__}"}
        finally:
            with contextlib.suppress(Exception):
                _clear_redis(args.redis, prefix)

    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; server on CPU 0, load on CPU 1, "
        f"{args.connections} connections, {args.seconds:.0f} s after {args.warmup:.0f} s warm-up"
    )
    print(f"{'target':45} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8}")
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:45} skipped: {r['skipped']}")
            continue
        print(f"{name:45} {r['rps']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['non_200']:>8}")


if __name__ == "__main__":
    main()
