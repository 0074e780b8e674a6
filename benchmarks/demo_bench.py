"""Wall time of `omnidrill demo` (target: under 150 s) and of rendering its reports again.

Run by hand (not a test):  .venv/bin/python benchmarks/demo_bench.py [--runs 2]

Each run copies chaos/ and scenarios/ into a fresh temporary folder and runs `omnidrill demo`
there as a child process, as a newcomer would from a clone (the virtualenv already set up;
`make demo` on a fresh clone adds the time of creating it). Then the run's journal is rendered
again (report.html, junit.xml, summary.md) to time the renderers on a full run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 150.0


def one_demo(work: Path) -> tuple[int, float, Path | None]:
    for folder in ("chaos", "scenarios"):
        shutil.copytree(ROOT / folder, work / folder)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "demo"],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    took = time.monotonic() - started
    latest = work / "reports" / "latest"
    return done.returncode, took, latest.resolve() if latest.exists() else None


def render_again(run_dir: Path, out: Path, repeat: int = 3) -> float:
    from omnidrill.report import write_reports

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        write_reports(run_dir / "journal.json", out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs")
    walls = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="omnidrill-demo-bench-") as tmp:
            code, took, run_dir = one_demo(Path(tmp))
            walls.append(took)
            line = f"demo run {i + 1}: exit {code}, {took:.1f} s (target < {TARGET_S:.0f} s)"
            if run_dir is not None:
                journal_kb = (run_dir / "journal.json").stat().st_size / 1024
                render = render_again(run_dir, Path(tmp) / "again")
                line += (
                    f"; reports rendered again in {render:.2f} s from a {journal_kb:.0f} kB journal"
                )
            print(line, flush=True)
    print(
        f"median {statistics.median(walls):.1f} s, max {max(walls):.1f} s over {len(walls)} run(s)"
    )


if __name__ == "__main__":
    main()
