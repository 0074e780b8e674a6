"""Speed of the monitors-as-code pieces, measured by hand (not a test).

Run:  .venv/bin/python benchmarks/observe_bench.py

1. compiling every shipped monitor, SLO and dashboard (both environments);
2. `omnidrill monitors test` on the shipped tests (the evaluator);
3. the evaluator on a day of one-minute data: 20 groups, a ratio query, evaluated every minute;
4. plan and apply of 300 monitors against the local fake Datadog API (real HTTP, real SDK).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def timed(label: str, fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:<62} {best * 1000:9.1f} ms (best of {repeat})")
    return best


def main() -> None:
    from omnidrill.observe.compile import compile_dashboards, compile_monitors
    from omnidrill.observe.evaluate import MonitorModel, Series
    from omnidrill.observe.models import MonitorSpec
    from omnidrill.observe.monitor_tests import run_tests

    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    timed(
        "compile shipped monitors+SLOs+dashboards, 2 environments",
        lambda: [
            (compile_monitors(ROOT, e), compile_dashboards(ROOT, e))
            for e in ("staging", "production")
        ],
    )
    timed("run the shipped monitor tests (staging)", lambda: run_tests(ROOT, "staging"))

    day = 24 * 60
    series = []
    for g in range(20):
        series.append(Series("req", {"fn": f"f{g}", "status": "ok"}, [100.0] * day, 60))
        series.append(
            Series(
                "req", {"fn": f"f{g}", "status": "error"}, [float(i % 7) for i in range(day)], 60
            )
        )
    spec = MonitorSpec(
        id="m",
        name="m",
        type="query alert",
        query="sum(last_5m):sum:req{status:error} by {fn}.as_count() / "
        "sum:req{*} by {fn}.as_count() > 0.05",
    )
    model = MonitorModel(spec, {})
    timed(
        "evaluator: 1 day x 1-min, 20 groups, every minute (28,800 evals)",
        lambda: model.run(series, [day * 60], 60),
        repeat=1,
    )

    from observe.fake_datadog import FakeDatadog
    from omnidrill.observe import sync
    from omnidrill.observe.compile import Compiled, Desired, monitor_body
    from omnidrill.observe.ddclient import DatadogSettings, api_client

    fake = FakeDatadog().start()
    try:
        settings = DatadogSettings(fake.api_key, fake.app_key, fake.url, backoff_s=0.01)
        compiled = Compiled(env="bench", variables={})
        for i in range(300):
            s = MonitorSpec(
                id=f"m{i}",
                name=f"m{i}",
                type="query alert",
                query=f"avg(last_5m):avg:x{{n:{i}}} > 1",
            )
            compiled.monitors.append(
                Desired("monitor", s.id, monitor_body(s, "bench"), Path("x"), None, s)
            )

        def apply_all() -> None:
            live, changes = sync.plan_env(settings, compiled, {"monitor"})
            with api_client(settings) as client:
                sync.apply(settings, client, compiled, live, changes)

        timed("apply 300 new monitors (fake API on 127.0.0.1)", apply_all, repeat=1)
        timed("plan 300 unchanged monitors", lambda: sync.plan_env(settings, compiled, {"monitor"}))
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
