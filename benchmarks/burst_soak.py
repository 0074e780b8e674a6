"""The full standard suite, three times back to back, while bursts hit the same stack.

Run by hand (not a test; about 3 x 35 s):
    .venv/bin/python benchmarks/burst_soak.py [--rounds 3] [--burst 60] [--every 3] [--external]

Starts the reference stack as `omnidrill up --fast --instances 2` (with --external, on the
machine's own PostgreSQL and Redis instead of the embedded ones), runs every drill of chaos/
through `omnidrill run`'s code path, `--rounds` times, while a thread fires `--burst`
simultaneous requests over both instances every `--every` seconds from client identities of
its own (tests/chaos/burst.py: the three functions, and pairs of identical trades under one
Idempotency-Key sent to both instances at once). Drills flip controls and cut paths meanwhile,
so burst answers include the refusals those faults call for; what must never appear is a
failed drill, a 429 (every burst identity stays far under its limit: R4), a 500, a transport
error or a pair of identical trades answered differently (I1). Exit 0 when none did.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from chaos.burst import BurstResult, burst  # noqa: E402
from chaos.drillkit import CHAOS, run_drills, start_stack  # noqa: E402


def _bursts(profile: dict, size: int, every: float, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        out.append(burst(profile, size=size))
        stop.wait(every)


def _problems(results: list[BurstResult]) -> list[str]:
    found = []
    for i, r in enumerate(results):
        statuses = r.statuses()
        if statuses.get(429) or statuses.get(500):
            found.append(f"burst {i}: {statuses.get(429, 0)} x 429, {statuses.get(500, 0)} x 500")
        if r.transport_errors or r.pair_mismatches:
            found.append(f"burst {i}: {r.transport_errors[:3]} {r.pair_mismatches[:3]}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=60)
    parser.add_argument("--every", type=float, default=3.0)
    parser.add_argument("--external", action="store_true", help="the machine's Postgres + Redis")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    drills = sorted(p.stem for p in CHAOS.glob("*.yaml"))
    stack_args = ["--instances", "2"]
    if args.external:
        stack_args += ["--postgres", args.postgres, "--redis", args.redis]
        stack_args += ["--redis-prefix", f"soak{os.getpid()}:"]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="omnidrill-soak-") as tmp:
        os.environ["OMNIDRILL_STATE_DIR"] = str(Path(tmp) / "state")
        with start_stack(Path(tmp) / "stack", *stack_args) as stack:
            for n in range(1, args.rounds + 1):
                results: list[BurstResult] = []
                stop = threading.Event()
                thread = threading.Thread(
                    target=_bursts, args=(stack.profile, args.burst, args.every, stop, results)
                )
                started = time.monotonic()
                thread.start()
                try:
                    run = run_drills(stack, *drills, report=Path(tmp) / f"round{n}")
                finally:
                    stop.set()
                    thread.join(120)
                verdicts = Counter(run.drill(d)["verdict"] for d in drills)
                failed = [d for d in drills if run.drill(d)["verdict"] != "passed"]
                answers: Counter[int] = Counter()
                for r in results:
                    answers.update(r.statuses())
                problems = _problems(results)
                failures += len(failed) + len(problems)
                print(
                    f"round {n}: exit {run.code} in {time.monotonic() - started:.0f} s; drills "
                    f"{dict(verdicts)}; {len(results)} bursts of {args.burst} "
                    f"({sum(answers.values())} answers: {dict(sorted(answers.items()))})",
                    flush=True,
                )
                for d in failed:
                    print(f"  failed {d}: {run.evidence_text(d)[:600]}")
                for p in problems:
                    print(f"  {p}")
    backends = "machine's Postgres + Redis" if args.external else "embedded backends"
    print(
        f"{'PASS' if failures == 0 else 'FAIL'}: {args.rounds} rounds on the {backends}, "
        f"{failures} failure(s)"
    )
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
