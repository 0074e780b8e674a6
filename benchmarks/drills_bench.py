"""Wall time of the whole standard drill suite against `omnidrill up --fast` (target: < 90 s).

Run by hand: `.venv/bin/python benchmarks/drills_bench.py [--instances N]`. Starts the
reference stack (OS-chosen ports, a temporary folder), runs `omnidrill run chaos/` through
the real CLI, and prints the wall time of the run and of each drill. Exit 1 when a drill did
not pass (or was not skipped for a stated reason) or when the target time was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 90.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=2)
    args = ap.parse_args()
    from omnidrill.launch import launch_stack

    with tempfile.TemporaryDirectory(prefix="drills-bench-") as tmp:
        tmp_path = Path(tmp)
        stack_args = ["--fast", "--base-port", "0", "--instances", str(args.instances)]
        t_stack = time.monotonic()
        with launch_stack(stack_args, tmp_path / "stack") as (profile_path, _profile):
            stack_s = time.monotonic() - t_stack
            report = tmp_path / "report"
            env = {**os.environ, "OMNIDRILL_STATE_DIR": str(tmp_path / "state")}
            t0 = time.monotonic()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "omnidrill.cli",
                    "run",
                    str(ROOT / "chaos"),
                    "-t",
                    str(profile_path),
                    "--report-dir",
                    str(report),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.monotonic() - t0
        journal = json.loads((report / "journal.json").read_text())
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"stack start: {stack_s:.1f} s ({args.instances} instance(s), --fast)")
    print(f"{'drill':28} {'verdict':13} {'seconds':>8}")
    bad = []
    for d in journal["drills"]:
        took = (d["ended_ts"] or 0) - d["started_ts"]
        print(f"{Path(d['file']).stem:28} {d['verdict']:13} {took:8.1f}")
        if d["verdict"] not in ("passed", "skipped"):
            bad.append(d["file"])
    print(
        f"whole suite (omnidrill run chaos/, exit {proc.returncode}): {wall:.1f} s wall "
        f"(target < {TARGET_S:.0f} s)"
    )
    if bad:
        print("not passed: " + ", ".join(bad))
        print(proc.stdout[-3000:], proc.stderr[-3000:])
    return 1 if bad or wall >= TARGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
