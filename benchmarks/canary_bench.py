"""How many requests the active canary needs to detect a +10 % p95 shift with 95 % power, and how
long that takes on this machine.

Run by hand: `.venv/bin/python benchmarks/canary_bench.py [--duration 180] [--users 16]
[--rate 10] [--trials 200] [--tolerance 5%]`. Starts the reference stack with two identical
instances (`--fast`, OS-chosen ports), sends the shipped canary's task mix to both for
`--duration` seconds through the active source (every user sends each request to both sides in
turn), then resamples what was measured:

- a trial takes n consecutive baseline requests from a random point of the run, and the canary
  requests of the same span (so a trial keeps the machine's moments, as a real run of that
  size would see them);
- "shift": the canary's latencies times 1.10 (a version 10 % slower everywhere: its p95 is
  exactly 10 % higher); "identical": as measured;
- each trial is judged like a canary with one metric, `all p95`, the given tolerance and
  confidence 0.99 (alpha 0.01: one metric);
- power = the share of shifted trials judged worse; false fails = the share of identical
  trials judged worse.

It prints one row per n, the smallest n with power >= 95 % and no more false fails than
alpha allows, and how long a run of that size takes at the throughput this run measured.
Exit 1 when no n reached 95 %.
"""

from __future__ import annotations

import argparse
import bisect
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from omnidrill.canary.active import canary_plan, iter_raw, run_active  # noqa: E402
from omnidrill.canary.judge import MetricData, judge_metric  # noqa: E402
from omnidrill.canary.models import CanaryMetric, CanaryScenario  # noqa: E402
from omnidrill.canary.sides import resolve_sides  # noqa: E402
from omnidrill.canary.stats import Sample  # noqa: E402
from omnidrill.launch import launch_stack  # noqa: E402
from omnidrill.profile import TargetProfile  # noqa: E402

TASKS = [
    {"function": "wallet-balance", "weight": 3, "body": {"address": "${address}"}},
    {"function": "omnilink-agent", "weight": 2, "body": {"user_id": "${user_id}", "intent": "q"}},
    {
        "function": "execute-trade",
        "weight": 1,
        "headers": {"Idempotency-Key": "${uuid}"},
        "body": {"user_id": "${user_id}", "amount_usd": 25, "raw_tx": "${raw_tx}"},
    },
]


def trial(
    base: list[tuple[float, float]],
    base_t: list[float],
    can: list[tuple[float, float]],
    can_t: list[float],
    n: int,
    rng: random.Random,
) -> tuple[list[float], list[float]]:
    """n consecutive baseline requests from a random start, and the canary's of that span."""
    i = rng.randrange(0, len(base) - n + 1)
    t0, t1 = base[i][0], base[i + n - 1][0]
    lo, hi = bisect.bisect_left(can_t, t0), bisect.bisect_right(can_t, t1)
    return [lat for _, lat in base[i : i + n]], [lat for _, lat in can[lo:hi]]


def detect_rate(
    metric: CanaryMetric,
    samples: tuple[list[tuple[float, float]], list[tuple[float, float]]],
    n: int,
    factor: float,
    trials: int,
    seed: int,
) -> float:
    base, can = samples
    base_t, can_t = [t for t, _ in base], [t for t, _ in can]
    rng = random.Random(seed)
    worse = 0
    for _ in range(trials):
        b, c = trial(base, base_t, can, can_t, n, rng)
        data = MetricData(
            Sample.from_counts(Counter(b)),
            Sample.from_counts(Counter(round(x * factor, 3) for x in c)),
        )
        worse += judge_metric(metric, data, alpha=0.01, needed=1).status == "worse"
    return worse / trials


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of load")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--rate", type=float, default=10.0, help="request pairs per user per second")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--tolerance", default="5%")
    ap.add_argument("--sizes", default="250,500,1000,2000,3000,4000,6000,8000,12000,16000")
    args = ap.parse_args()
    scenario = CanaryScenario.model_validate(
        {
            "type": "canary",
            "name": "bench",
            "load": {
                "users": args.users,
                "duration": args.duration,
                "pacing": {"per_user_rps": args.rate},
                "clients": 2000,
                "tasks": TASKS,
            },
            "warmup": "2s",
            "metrics": [{"function": "all", "measure": "p95", "tolerance": args.tolerance}],
        }
    )
    metric = scenario.metrics[0]
    with tempfile.TemporaryDirectory(prefix="canary-bench-") as tmp:
        out = Path(tmp)
        stack_args = ["--fast", "--base-port", "0", "--instances", "2"]
        with launch_stack(stack_args, out / "stack") as (_path, profile_dict):
            profile = TargetProfile.model_validate(profile_dict)
            baseline, canary = resolve_sides(scenario, profile, lambda name: profile)
            t0 = time.monotonic()
            measured, _ = run_active(scenario, baseline, canary, out / "load")
            wall = time.monotonic() - t0
            plan, _ = canary_plan(scenario, baseline, canary)
        expect = {t["label"]: frozenset(t["expect"]) for t in plan["tasks"]}
        start = (measured.started_at or 0) + scenario.warmup
        sides: dict[str, list[tuple[float, float]]] = {"baseline": [], "canary": []}
        failed = 0
        for r in iter_raw(sorted((out / "load").glob("load-raw-*.csv")), expect):
            if r.started < start:
                continue
            if r.failed:
                failed += 1
                continue
            sides[r.side].append((r.started, round(r.latency_ms, 3)))
    for v in sides.values():
        v.sort()
    span = sides["baseline"][-1][0] - sides["baseline"][0][0]
    pairs_per_s = len(sides["baseline"]) / span
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"measured: {len(sides['baseline'])} baseline and {len(sides['canary'])} canary "
        f"requests answered in {span:.0f} s ({pairs_per_s:.0f} per side per second, "
        f"{failed} failed); run wall time {wall:.0f} s"
    )
    b_all = Sample.of(x for _, x in sides["baseline"])
    c_all = Sample.of(x for _, x in sides["canary"])
    print(
        f"p50/p95/p99 ms: baseline {b_all.percentile(50)}/{b_all.percentile(95)}/"
        f"{b_all.percentile(99)}, canary {c_all.percentile(50)}/{c_all.percentile(95)}/"
        f"{c_all.percentile(99)}"
    )
    print(f"judged: all p95, tolerance {args.tolerance}, alpha 0.01; {args.trials} trials per n")
    print(f"{'n per side':>10} {'power (+10 %)':>14} {'false fails (+0 %)':>19} {'run takes':>10}")
    found = None
    for n in (int(x) for x in args.sizes.split(",")):
        if n > len(sides["baseline"]) // 2:
            print(f"{n:>10} (more than half of what was measured: run longer)")
            break
        power = detect_rate(metric, (sides["baseline"], sides["canary"]), n, 1.10, args.trials, n)
        false = detect_rate(metric, (sides["baseline"], sides["canary"]), n, 1.0, args.trials, n)
        takes = n / pairs_per_s
        print(f"{n:>10} {power:>13.1%} {false:>18.1%} {takes:>9.0f}s")
        if found is None and power >= 0.95:
            found = (n, takes, false)
    if found is None:
        print("no size reached 95 % power")
        return 1
    n, takes, false = found
    print(
        f"=> {n} requests per side ({2 * n} in all) detect +10 % p95 with >= 95 % power; "
        f"at {pairs_per_s:.0f} pairs/s that is {takes:.0f} s of load (+ {scenario.warmup:g} s "
        f"warm-up); identical canaries judged worse at that size: {false:.1%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
