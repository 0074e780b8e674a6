"""Real load runs: Locust in child processes against real HTTP servers, judged by the harness.

Timing: the runs are a few seconds long; nothing here asserts a speed, only counts, the
judgement of thresholds set far from the measured values, and exactness against the raw record.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnidrill.load.models import LoadScenario
from omnidrill.load.runner import BackgroundLoad, exit_code, judge_thresholds, run_scenario
from omnidrill.load.stats import LoadStats

from .helpers import fake_profile

pytestmark = pytest.mark.serial


def scenario(**over: Any) -> LoadScenario:
    base: dict[str, Any] = {
        "type": "load",
        "name": "t",
        "users": 6,
        "spawn_rate": 6,
        "duration": "5s",
        "clients": 40,
        "pacing": {"per_user_rps": 8},
        "tasks": [
            {"function": "wallet-balance", "weight": 3, "body": {"address": "${address}"}},
            {"function": "omnilink-agent", "body": {"user_id": "${user_id}", "intent": "quote"}},
            {"function": "healthz"},
        ],
    }
    return LoadScenario.model_validate(base | over)


def raw_rows(out_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for f in sorted(out_dir.glob("load-raw-*.csv")):
        with f.open() as fh:
            for start, fn, status, ms, phase in csv.reader(fh):
                rows.append(
                    {
                        "start": float(start),
                        "fn": fn,
                        "status": int(status),
                        "ms": ms,
                        "phase": phase,
                    }
                )
    return rows


def nearest_rank_us(ms_values: list[str], pct: float) -> int:
    # The raw record holds the latency as Locust measured it (float ms, repr); kept to the µs.
    us = sorted(int(float(v) * 1000) for v in ms_values)
    return us[max(1, math.ceil(pct / 100 * len(us))) - 1]


@pytest.fixture(scope="module")
def reference_run(reference_stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One run against the reference stack, thresholds that hold and thresholds that fail."""
    sc = scenario(
        thresholds={
            "all": ["p95 < 2s", "error_rate < 1%", "rps > 10", "requests > 50"],
            "wallet-balance": ["p99 < 3s", "p50 < 1us"],
            "healthz": ["rps > 100000"],
        }
    )
    out = tmp_path_factory.mktemp("ref-run")
    return run_scenario(sc, reference_stack, out_dir=out, raw=True), out


def test_thresholds_that_hold_and_fail_against_the_reference_stack(reference_run: Any) -> None:
    result, out = reference_run
    assert result.inconclusive is None, result.inconclusive
    by_expr = {(t.scope, t.threshold.expr): t for t in result.thresholds}
    for held in [("all", "p95 < 2s"), ("all", "error_rate < 1%"), ("all", "rps > 10")]:
        assert by_expr[held].passed, by_expr[held].describe()
    p50 = by_expr[("wallet-balance", "p50 < 1us")]
    assert not p50.passed and p50.miss == pytest.approx(p50.measured - 0.001)
    assert "[wallet-balance] p50 < 1us: FAILED" in p50.describe() and " over" in p50.describe()
    rps = by_expr[("healthz", "rps > 100000")]
    assert not rps.passed and "under" in rps.describe()
    assert exit_code(result) == 1
    assert sorted(result.failed) == sorted([p50.describe(), rps.describe()])
    saved = json.loads((out / "scenario-t.json").read_text())
    assert saved["outcome"] == "failed" and len(saved["failed"]) == 2
    # The same exact stats judged against the thresholds that held alone: exit 0.
    holding = scenario(thresholds={"all": ["p95 < 2s", "error_rate < 1%", "rps > 10"]})
    result.thresholds = judge_thresholds(holding, result.stats)
    assert result.passed and exit_code(result) == 0
    # Every function answered, all from the reference stack: no key leaked into the output.
    fns = result.stats.total().functions
    assert set(fns) == {"wallet-balance", "omnilink-agent", "healthz"}
    assert all(a.statuses == Counter({200: a.requests}) for a in fns.values()), fns


def test_percentiles_equal_those_of_the_raw_record(reference_run: Any) -> None:
    result, out = reference_run
    stats: LoadStats = result.stats
    rows = raw_rows(out)
    assert len(rows) == stats.total().all.requests > 50
    doc = stats.to_json()
    for fn in ["all", "wallet-balance", "healthz"]:
        mine = [r["ms"] for r in rows if fn in ("all", r["fn"])]
        agg = stats.total().scope(fn)
        for pct in (50, 90, 95, 99, 99.9, 100):
            assert agg.percentile_ms(pct) == nearest_rank_us(mine, pct) / 1000, (fn, pct)
    # Per second too, as the journal holds them.
    for row in doc["seconds"]:
        mine = [r["ms"] for r in rows if int(r["start"]) == row["t"] and r["phase"] == row["phase"]]
        assert row["requests"] == len(mine)
        assert row["latency_ms"]["p95"] == nearest_rank_us(mine, 95) / 1000
        assert row["latency_ms"]["max"] == nearest_rank_us(mine, 100) / 1000


def test_master_and_two_workers_add_up(fake_pair: list[int], tmp_path: Path) -> None:
    sc = scenario(users=6, duration="4s", thresholds={"all": ["error_rate < 1%"]})
    seen_url = f"http://127.0.0.1:{fake_pair[0]}/__clients"
    httpx.delete(seen_url)
    result = run_scenario(sc, fake_profile(fake_pair), workers=2, out_dir=tmp_path, raw=True)
    seen = httpx.get(seen_url).json()
    assert result.inconclusive is None, result.inconclusive
    assert result.passed, result.failed
    total = result.stats.total().all.requests
    rows = raw_rows(tmp_path)
    ends = [json.loads(x) for x in (tmp_path / "load-stats.jsonl").read_text().splitlines()]
    ends = [e for e in ends if e["type"] == "worker_end"]
    assert len(ends) == 2 and all(e["requests"] > 0 for e in ends)
    assert total == len(rows) == sum(e["requests"] for e in ends) > 0
    assert sorted(result.stats.by_source) == sorted(e["worker"] for e in ends)
    # Six users take turns over the pool of 40 identities from the test range, each user over
    # its own share (so the two workers' users never share one): more identities than users.
    assert 6 < len(seen) <= 40 and all(ip.startswith("198.1") for ip in seen), seen
    # A request still in flight when the run stops reached the target but has no stats row:
    # at most one per user.
    unrecorded = sum(seen.values()) - (result.stats.total().all.requests - healthz(result))
    assert 0 <= unrecorded <= 6, unrecorded


def healthz(result: Any) -> int:
    return result.stats.total().scope("healthz").requests


def _wait_phase(load: BackgroundLoad, name: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name in [n for n, _ in load.stats().phases]:
            return
        time.sleep(0.05)
    raise AssertionError(f"phase {name} never started")


def test_background_load_splits_stats_at_phases(fake_pair: list[int], tmp_path: Path) -> None:
    sc = scenario(
        users=4,
        duration="10m",
        pacing={"per_user_rps": 10},
        tasks=[
            {"function": "wallet-balance", "body": {"address": "${address}"}},
        ],
    )
    fault_url = f"http://127.0.0.1:{fake_pair[0]}/__fault"
    load = BackgroundLoad(sc, fake_profile(fake_pair), out_dir=tmp_path, max_duration_s=120)
    with load:
        time.sleep(1.5)
        load.phase("fault")
        _wait_phase(load, "fault")  # the load side switched: only now break the target
        httpx.post(fault_url, json={"on": True})
        time.sleep(1.5)
        httpx.post(fault_url, json={"on": False})  # mend first, then call it recovery
        load.phase("recovery")
        _wait_phase(load, "recovery")
        time.sleep(1.5)
    result = load.result
    assert result is not None and result.inconclusive is None
    st = result.stats
    base, fault, rec = (st.phase(n).all for n in ("baseline", "fault", "recovery"))
    assert base.requests > 10 and fault.requests > 10 and rec.requests > 10
    assert base.failures == 0 and rec.failures == 0
    assert fault.statuses[503] > 0 and fault.codes["RPC_UNAVAILABLE"] == fault.statuses[503]
    assert base.requests + fault.requests + rec.requests == st.total().all.requests
    doc = result.to_json()["stats"]
    assert [p["name"] for p in doc["phases"]] == ["baseline", "fault", "recovery"]
    assert doc["by_phase"]["fault"]["statuses"]["503"] == fault.statuses[503]
    assert doc["by_phase"]["fault"]["error_rate"] > 0 == doc["by_phase"]["baseline"]["error_rate"]


def test_the_load_stops_when_its_harness_goes_away(fake_pair: list[int], tmp_path: Path) -> None:
    from omnidrill.load.plan import as_target, build_plan
    from omnidrill.load.process import LoadProcess

    plan, _ = build_plan(scenario(duration="10m"), as_target(fake_profile(fake_pair)))
    proc = LoadProcess(plan, tmp_path).start()
    proc.wait_started()
    time.sleep(1.0)
    assert proc.controller.stdin is not None
    proc.controller.stdin.close()  # what a killed harness leaves: end of input
    stats = proc.wait(timeout=30)
    assert proc.exit_codes() == [0] and not stats.errors
    assert stats.ended_at is not None and stats.total().all.requests > 0


def test_arrival_rate_paces_the_total(fake_pair: list[int], tmp_path: Path) -> None:
    # 40 requests/s over 4 users for 4 s: 160 expected. Generous bounds: a busy machine may
    # send fewer, pacing must never let it send much more.
    sc = scenario(users=4, spawn_rate=4, duration="4s", pacing={"arrival_rate": 40})
    result = run_scenario(sc, fake_profile(fake_pair), out_dir=tmp_path)
    n = result.stats.total().all.requests
    assert 80 <= n <= 200, n
