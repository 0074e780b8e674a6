"""Active source: the same load to both sides at once, through the Locust load runner.

Every simulated user sends each request of its task mix to the baseline and to the canary in
turn (a random order per pair, the same client identity, fresh generated values), so both
sides see the same clients, the same mix and the same moment of the machine's load. Every
request is then a sample: its latency (answers whose status the task expects) and whether it
failed (a status the task does not expect, or no answer). Requests that started in the
warm-up are left out on both sides.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from omnidrill.canary.judge import MetricData
from omnidrill.canary.models import CanaryScenario
from omnidrill.canary.sides import SideTarget
from omnidrill.canary.stats import Sample
from omnidrill.errors import Inconclusive
from omnidrill.load.models import LoadScenario
from omnidrill.load.plan import Target, as_target, build_plan
from omnidrill.load.process import LoadProcess
from omnidrill.load.stats import LoadStats

SIDES = ("baseline", "canary")


def suffix(side: str) -> str:
    """How a side's requests are labelled in the load's stats: `wallet-balance@canary`."""
    return f"@{side}"


@dataclass
class Measured:
    """What the active load measured: every request per task and side."""

    # (task label, side) -> latency in ms -> count, for answers the task expects
    latencies: dict[tuple[str, str], Counter[float]] = field(default_factory=dict)
    # (task label, side) -> [good, failed]
    outcomes: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    warmup_dropped: int = 0
    stats: LoadStats | None = None
    started_at: float | None = None
    ended_at: float | None = None

    def add(self, label: str, side: str, latency_ms: float, failed: bool) -> None:
        key = (label, side)
        counts = self.outcomes.setdefault(key, [0, 0])
        counts[1 if failed else 0] += 1
        if not failed:
            self.latencies.setdefault(key, Counter())[round(latency_ms, 3)] += 1

    def metric_data(self, scenario: CanaryScenario) -> dict[str, MetricData]:
        """Per metric, the samples of both sides (all tasks pooled for `function: all`)."""
        assert scenario.load is not None
        labels = [t.label for t in scenario.load.tasks]
        out: dict[str, MetricData] = {}
        for m in scenario.metrics:
            chosen = labels if m.function == "all" else [m.function]
            samples = []
            for side in SIDES:
                if m.measure == "error_rate":
                    good = sum(self.outcomes.get((lb, side), [0, 0])[0] for lb in chosen)
                    bad = sum(self.outcomes.get((lb, side), [0, 0])[1] for lb in chosen)
                    samples.append(Sample.from_counts({0.0: good, 1.0: bad}))
                else:
                    merged: Counter[float] = Counter()
                    for lb in chosen:
                        merged.update(self.latencies.get((lb, side), Counter()))
                    samples.append(Sample.from_counts(merged))
            out[m.label] = MetricData(samples[0], samples[1])
        return out

    def per_side(self) -> dict[str, dict[str, int]]:
        """Requests and failures per side, for the report."""
        out = {s: {"requests": 0, "failures": 0} for s in SIDES}
        for (_, side), (good, bad) in self.outcomes.items():
            out[side]["requests"] += good + bad
            out[side]["failures"] += bad
        return out


def _side_arm(side: SideTarget) -> dict[str, Any]:
    target = as_target(side.profile)
    return {
        "name": side.name,
        "suffix": suffix(side.name),
        "instances": side.instances,
        "keys": {"anon": target.anon_key, "service_role": target.service_role_key},
        "headers": {**target.headers, **target.bypass_headers},
    }


def canary_plan(
    scenario: CanaryScenario, baseline: SideTarget, canary: SideTarget
) -> tuple[dict[str, Any], list[str]]:
    """The load plan of a canary: the load runner's, with the two sides as its arms."""
    assert scenario.load is not None
    load = LoadScenario.model_validate(
        {"type": "load", "name": scenario.name, **scenario.load.model_dump()}
    )
    # client identities, pacing and tasks as for any load; the baseline's profile says
    # whether X-Forwarded-For is trusted
    plan, warnings = build_plan(load, as_target(baseline.profile))
    plan["arms"] = [_side_arm(baseline), _side_arm(canary)]
    plan["instances"] = [baseline.instances[0]]
    plan["headers"] = {}
    plan["keys"] = {}
    return plan, warnings


def probe_side(side: SideTarget, target: Target, timeout: float = 5.0) -> None:
    """Every instance of the side answers health, or there is nothing to compare."""
    for url in side.instances:
        try:
            with httpx.Client(timeout=timeout, verify=target.verify_tls) as client:
                client.get(f"{url}/functions/v1/healthz", headers=target.headers)
        except httpx.HTTPError as exc:
            raise Inconclusive(f"the {side.name} does not answer at {url}: {exc}") from None


def run_active(
    scenario: CanaryScenario, baseline: SideTarget, canary: SideTarget, out_dir: Path
) -> tuple[Measured, list[str]]:
    """Send the load to both sides and return every request they answered."""
    assert scenario.load is not None
    for side in (baseline, canary):
        probe_side(side, as_target(side.profile))
    plan, warnings = canary_plan(scenario, baseline, canary)
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = LoadProcess(plan, out_dir, raw=True)
    proc.start()
    try:
        proc.wait_started(timeout=60)
        budget = scenario.load.duration + scenario.load.users / plan["spawn_rate"] + 90
        stats = proc.wait(timeout=budget)
    except BaseException:
        proc.kill()
        raise
    problems = list(stats.errors)
    bad_exit = [c for c in proc.exit_codes() if c not in (0, None)]
    if bad_exit and not problems:
        problems.append(f"the load process exited with {bad_exit}: {proc.log_tail()}")
    if problems:
        raise Inconclusive("the canary's load did not run: " + "; ".join(problems))
    expect = {t["label"]: frozenset(t["expect"]) for t in plan["tasks"]}
    measured = read_raw(sorted(out_dir.glob("load-raw-*.csv")), expect, stats, scenario.warmup)
    return measured, warnings


@dataclass(frozen=True)
class RawRequest:
    """One request of the load's raw file, attributed to its task and side."""

    label: str
    side: str
    started: float
    latency_ms: float
    failed: bool


def iter_raw(files: list[Path], expect: dict[str, frozenset[int]]) -> Iterator[RawRequest]:
    """The canary's requests in the raw CSV (start, label@side, status, latency ms, phase)."""
    sides = {suffix(s): s for s in SIDES}
    for path in files:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split(",")
                if len(parts) < 5:
                    continue  # a line cut short by a killed process
                label, at, side_suffix = ",".join(parts[1:-3]).rpartition("@")
                side = sides.get("@" + side_suffix)
                if not at or side is None or label not in expect:
                    continue
                status = int(parts[-3])
                failed = status == 0 or status not in expect[label]
                yield RawRequest(label, side, float(parts[0]), float(parts[-2]), failed)


def read_raw(
    files: list[Path], expect: dict[str, frozenset[int]], stats: LoadStats, warmup_s: float
) -> Measured:
    """Every request per task and side; those that started within the warm-up after the load
    began are dropped."""
    m = Measured(stats=stats, started_at=stats.started_at, ended_at=stats.ended_at)
    start = stats.started_at if stats.started_at is not None else time.time()
    cutoff = start + warmup_s
    for r in iter_raw(files, expect):
        if r.started < cutoff:
            m.warmup_dropped += 1
        else:
            m.add(r.label, r.side, r.latency_ms, r.failed)
    return m
