"""How fast omnidrill's load runner is: requests per second against a bare Starlette endpoint,
beside plain `locust` with an equivalent hand-written locustfile, and beside `wrk` (the ceiling).

    .venv/bin/python benchmarks/load_bench.py [--seconds 20] [--users 32] [--rounds 3]
                                              [--gen-core 0] [--target-core 1]

The target (uvicorn + Starlette, one process) is pinned to one core and every load generator to
another (taskset / sched_setaffinity), one generator at a time, each for the same duration and
user count, with no pacing (every user sends as soon as it has its answer), in `--rounds`
interleaved rounds (the median is reported, so a neighbour's burst of work skews one round, not
the figure). For omnidrill and locust it also reports the generator's CPU time per request.
Target: omnidrill sustains at least 90 % of plain locust's rate. `wrk` is a Debian package
(`apt-get install wrk`); without it that row says so. A benchmark, not a test: run it by hand
on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from omnidrill.load.models import LoadScenario
from omnidrill.load.runner import run_scenario
from omnidrill.netutil import free_port, wait_for_port

PATH = "/functions/v1/healthz"

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/functions/v1/healthz", healthz)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
    """
)

# What omnidrill's runner does for a `function: healthz` task, written as users write it.
LOCUSTFILE = textwrap.dedent(
    """
    import itertools
    from locust import FastHttpUser, constant, task

    _n = itertools.count()

    class Bench(FastHttpUser):
        wait_time = constant(0)
        max_retries = 0

        def on_start(self):
            n = next(_n)
            self.headers = {"X-Forwarded-For": f"198.18.{n // 256 % 256}.{n % 256}"}

        @task
        def healthz(self):
            self.client.request("GET", "/functions/v1/healthz", name="healthz",
                                headers=self.headers)
    """
)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_omnidrill(base: str, users: int, seconds: float, out: Path) -> tuple[float, float]:
    sc = LoadScenario.model_validate(
        {
            "type": "load",
            "name": "bench",
            "users": users,
            "spawn_rate": users,
            "duration": seconds,
            "clients": users,
            "tasks": [{"function": "healthz"}],
        }
    )
    profile = {
        "name": "bench",
        "base_url": base,
        "keys": {"anon": {"value": "bench-anon"}, "service_role": {"value": "bench-service"}},
        "clients": {"forwarded_for": True},
        "controls": {"kind": "postgrest", "url": f"{base}/rest/v1"},
    }
    cpu0 = children_cpu()
    result = run_scenario(sc, profile, out_dir=out)
    cpu = children_cpu() - cpu0
    st = result.stats
    assert st is not None and st.duration_s
    total = st.total().all
    if total.failures:
        print(f"  (omnidrill: {total.failures} failed requests)")
    return total.requests / st.duration_s, cpu / max(total.requests, 1) * 1e6


def run_locust(base: str, users: int, seconds: float, out: Path) -> tuple[float, float]:
    locustfile = out / "bench_locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = out / "locust"
    cmd = [str(Path(sys.executable).with_name("locust")), "-f", str(locustfile), "--headless"]
    cmd += ["-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s", "--host", base]
    cmd += ["--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
    cpu0 = children_cpu()
    subprocess.run(cmd, check=False, capture_output=True, timeout=seconds + 120)
    cpu = children_cpu() - cpu0
    with open(f"{prefix}_stats.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    count = int(row["Request Count"])
    return float(row["Requests/s"]), cpu / max(count, 1) * 1e6


def run_wrk(base: str, users: int, seconds: float) -> float | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    cmd = [wrk, "-t1", f"-c{users}", f"-d{int(seconds)}s", base + PATH]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    return float(m.group(1)) if m else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gen-core", type=int, default=0)
    ap.add_argument("--target-core", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin the target to its core")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        ["taskset", "-c", str(args.target_core), sys.executable, "-c", SERVER, str(port)]
    )
    # This process and every generator it starts run on the generator's core only.
    os.sched_setaffinity(0, {args.gen_core})
    try:
        wait_for_port("127.0.0.1", port)
        httpx.get(base + PATH).raise_for_status()
        runs: dict[str, list[tuple[float | None, float | None]]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            print(f"warming up, then {args.rounds} rounds of {args.seconds:g} s per generator ...")
            run_omnidrill(base, args.users, 3, t / "warm")
            for i in range(args.rounds):
                # Alternate who goes first, so a drift of the machine favours neither.
                if i % 2:
                    lo = run_locust(base, args.users, args.seconds, t)
                    o = run_omnidrill(base, args.users, args.seconds, t / f"o{i}")
                else:
                    o = run_omnidrill(base, args.users, args.seconds, t / f"o{i}")
                    lo = run_locust(base, args.users, args.seconds, t)
                w = (run_wrk(base, args.users, args.seconds), None)
                for name, r in (
                    ("omnidrill runner", o),
                    ("plain locust", lo),
                    ("wrk (ceiling)", w),
                ):
                    runs.setdefault(name, []).append(r)
                print(
                    f"  round {i + 1}: omnidrill {o[0]:.0f}, locust {lo[0]:.0f}, wrk {w[0]} req/s"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)
    cpu = platform.processor() or platform.machine()
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}; target on core {args.target_core}, "
        f"generators on core {args.gen_core}; {args.users} users, no pacing, {args.seconds:g} s"
    )
    print(f"{'generator':<18} {'req/s (median)':>15} {'rounds':>24} {'CPU us/request':>15}")
    medians: dict[str, float | None] = {}
    for name, results in runs.items():
        rates = [r for r, _ in results if r is not None]
        cpus = [c for _, c in results if c is not None]
        med = statistics.median(rates) if rates else None
        medians[name] = med
        shown = f"{med:15.0f}" if med is not None else "   missing: apt-get install wrk"
        each = ", ".join(f"{r:.0f}" for r in rates)
        cpu_us = f"{statistics.median(cpus):15.0f}" if cpus else ""
        print(f"{name:<18} {shown} {each:>24} {cpu_us}")
    omni, loc = medians.get("omnidrill runner"), medians.get("plain locust")
    if omni and loc:
        verdict = "meets" if omni >= 0.9 * loc else "MISSES"
        print(f"omnidrill / locust = {omni / loc:.1%} ({verdict} the 90 % target)")


if __name__ == "__main__":
    main()
