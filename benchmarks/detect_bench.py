"""Detection's costs: evaluating the monitors, the intake's intake, the target's telemetry.

Run by hand (not a test):  .venv/bin/python benchmarks/detect_bench.py [--only evaluate|intake|p50]

- evaluate: every shipped monitor of an environment evaluated once (what a drill does every
  200 ms) over the series of a 60-second drill as the reference stack sends them at full load
  (two instances, a flush a second, 300 latency samples per function per second). Target: under
  50 ms, so that polling costs a drill nothing.
- intake: points per second the intake accepts from concurrent senders posting gzip bodies of
  the v2 series API (100 series a body), distribution points (1000 samples a body) and
  DogStatsD datagrams, each sender a process of its own.
- p50: `wallet-balance` on the reference stack (server on CPU 0, load on CPU 1, as
  target_bench.py) with its telemetry sent to an intake (the Datadog API client, flushing every
  second, and sentry-sdk) and without: the added cost to the function's p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("omnilink_agent", "wallet_balance", "execute_trade")


def drill_series(book, start: float, seconds: int = 60, samples: int = 300) -> int:
    """Fill `book` as two reference instances would over `seconds`; returns the points."""
    import random

    rng = random.Random(7)
    n = 0
    for s in range(seconds):
        ts = float(int(start) + s)
        fault = 20 <= s < 30  # ten seconds of kill switch in the middle
        for host in ("functions-0", "functions-1"):
            base = ["service:omnihub-local", "env:staging", f"host:{host}"]
            for fn in FUNCTIONS:
                ok, err = (0, 150) if fault else (150, 0)
                for status, code, v in (("success", "OK", ok), ("error", "KILL_SWITCH", err)):
                    if v:
                        tags = [*base, f"function:{fn}", f"status:{status}", f"code:{code}"]
                        book.add("omnihub.agent.requests", "count", tags, ts, float(v))
                        n += 1
                lat = tuple(rng.uniform(5, 60) for _ in range(samples))
                tags = [*base, f"function:{fn}", f"status:{'error' if fault else 'success'}"]
                book.add("omnihub.agent.duration", "distribution", tags, ts, lat)
                n += samples
            for provider, outcome, v in (("primary", "ok", 200), ("fallback", "ok", 0)):
                tags = [*base, f"provider:{provider}", f"outcome:{outcome}"]
                book.add("omnihub.rpc.requests", "count", tags, ts, float(v))
                n += 1
            for control in ("kill_switch", "safe_mode", "operator_takeover"):
                value = 1.0 if fault and control == "kill_switch" else 0.0
                tags = [*base, "source:table"]
                book.add(f"omnihub.emergency.{control}", "gauge", tags, ts, value)
                n += 1
            book.add("omnihub.emergency.kill_switch", "gauge", [*base, "source:failsafe"], ts, 0.0)
            book.add("omnihub.approval_queue.pending", "gauge", [*base, "risk_level:high"], ts, 0.0)
            n += 2
    return n


def bench_evaluate(env: str, rounds: int) -> dict:
    from omnidrill.observe.compile import compile_monitors
    from omnidrill.observe.detection import IntakeStates
    from omnidrill.observe.intake.server import ThreadedIntake

    intake = ThreadedIntake().start()
    try:
        states = IntakeStates(intake.url, compile_monitors(ROOT, env))
        end = time.time()
        points = drill_series(states.book, end - 60)
        states._evaluate(end - rounds * 0.2 - 0.2)  # warm: the first look imports numpy
        times, cpu = [], []
        for i in range(rounds):
            t0, c0 = time.perf_counter(), time.thread_time()
            got = states._evaluate(end - (rounds - i) * 0.2)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
        states.close()
    finally:
        intake.stop()
    return {
        "env": env,
        "monitors": len(states.models),
        "evaluated": len(got),
        "series": len(states.book.by_key),
        "points": points,
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
        # CPU time of the evaluating thread: what the figure is on an idle core
        "cpu_median_ms": round(statistics.median(cpu), 2),
        "cpu_max_ms": round(max(cpu), 2),
    }


def _poster(url: str, kind: str, seconds: float, out: multiprocessing.Queue) -> None:
    import httpx

    now = int(time.time())
    if kind == "v2":
        doc = {
            "series": [
                {
                    "metric": "bench.metric",
                    "type": 1,
                    "points": [{"timestamp": now, "value": 1.0}],
                    "tags": [f"n:{i}", "service:bench"],
                }
                for i in range(100)
            ]
        }
        per, path = 100, "/api/v2/series"
    else:
        doc = {"series": [{"metric": "bench.dist", "points": [[now, [1.5] * 1000]], "tags": []}]}
        per, path = 1000, "/api/v1/distribution_points"
    body = gzip.compress(json.dumps(doc).encode())
    headers = {"DD-API-KEY": "bench", "Content-Encoding": "gzip"}
    sent = 0
    with httpx.Client() as c:
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            if c.post(f"{url}{path}", content=body, headers=headers).status_code == 202:
                sent += per
    out.put(sent)


def _statsd(port: int, seconds: float, out: multiprocessing.Queue) -> None:
    line = b"\n".join(
        b"omnihub.agent.requests:1|c|#function:wallet_balance,status:success" for _ in range(20)
    )
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            s.sendto(line, ("127.0.0.1", port))
            sent += 20
            if sent % 2000 == 0:
                time.sleep(0.001)  # a sender, not a flood of the socket buffer
    out.put(sent)


def bench_intake(seconds: float, senders: int) -> dict:
    from omnidrill.observe.intake.client import IntakeClient
    from omnidrill.observe.intake.server import IntakeServer

    out: dict = {}
    ctx = multiprocessing.get_context("spawn")
    for kind in ("v2", "distribution", "statsd"):
        ready: multiprocessing.Queue = ctx.Queue()
        server = ctx.Process(target=_serve_intake, args=(ready,), daemon=True)
        server.start()
        url, statsd_port = ready.get(timeout=30)
        q: multiprocessing.Queue = ctx.Queue()
        procs = [
            ctx.Process(target=_statsd, args=(statsd_port, seconds, q))
            if kind == "statsd"
            else ctx.Process(target=_poster, args=(url, kind, seconds, q))
            for _ in range(senders)
        ]
        for p in procs:
            p.start()
        sent = sum(q.get(timeout=seconds + 60) for _ in procs)
        for p in procs:
            p.join()
        time.sleep(0.5)
        stats = IntakeClient(url).stats()["counts"]
        kept = sum(v for k, v in stats.items() if k.startswith("points:"))
        samples = kept
        if kind == "distribution":  # a row holds a body's 1000 samples
            samples = kept * 1000
        out[kind] = {
            "sent": sent,
            "accepted": samples,
            "per_s": round(samples / seconds),
        }
        server.terminate()
        server.join()
    del IntakeServer
    return out


def _serve_intake(ready: multiprocessing.Queue) -> None:
    from omnidrill.observe.intake.server import IntakeServer

    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {0})

    async def run() -> None:
        srv = IntakeServer("127.0.0.1", 0)
        await srv.start()
        ready.put((srv.url, srv.statsd_port))
        await asyncio.Event().wait()

    asyncio.run(run())


def bench_p50(seconds: float, warmup: float, connections: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    import target_bench as tb

    from omnidrill.launch import launch_stack
    from omnidrill.observe.intake.server import ThreadedIntake

    results = {}
    intake = ThreadedIntake().start()
    try:
        runs = {
            "without telemetry": (["--no-metrics"], {}),
            "with metrics and errors to the intake": (
                ["--datadog", "--sentry-dsn", intake.dsn()],
                {"DD_API_KEY": "bench", "DD_SITE": intake.url},
            ),
        }
        for name, (extra, env) in runs.items():
            with tempfile.TemporaryDirectory(prefix="omnidrill-detect-bench-") as tmp:
                tb._pinned(tb.SERVER_CPU)
                args = ["--base-port", "0", "--rate-limit", "1000000000", "--rate-window-s", "60"]
                ctx = launch_stack([*args, *extra], Path(tmp), env=env)
                try:
                    _, profile = ctx.__enter__()
                finally:
                    tb._pinned(tb.LOAD_CPU)
                try:
                    url, key = profile["base_url"], profile["keys"]["anon"]["value"]
                    results[name] = asyncio.run(tb._load(url, key, seconds, warmup, connections))
                finally:
                    ctx.__exit__(None, None, None)
        results["points the intake kept"] = intake.store.stats()["points_kept"]
    finally:
        intake.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["evaluate", "intake", "p50"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    if args.only in (None, "evaluate"):
        for env in ("local", "staging"):
            print("evaluate", json.dumps(bench_evaluate(env, args.rounds)))
    if args.only in (None, "intake"):
        print("intake", json.dumps(bench_intake(args.seconds, args.senders)))
    if args.only in (None, "p50"):
        print("p50", json.dumps(bench_p50(args.seconds, 2.0, args.connections)))


if __name__ == "__main__":
    main()
