"""Exact percentiles and the incremental reading of the record stream."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

from omnidrill.load.stats import StatsReader, percentile_us


def nearest_rank(values: list[int], pct: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def test_percentile_is_nearest_rank_to_the_microsecond() -> None:
    rng = random.Random(7)
    values = [rng.randint(100, 400_000) for _ in range(5001)]
    hist = Counter(values)
    for pct in (1, 50, 90, 95, 99, 99.9, 100):
        assert percentile_us(hist, pct) == nearest_rank(values, pct)
    assert percentile_us(Counter(), 95) is None
    # Locust would bucket 147 ms to 150 ms; we keep 147.001 ms.
    assert percentile_us(Counter({147_001: 1}), 95) == 147_001


def _sample(sec: int, phase: str, fn: str, status: int, lat: dict[int, int], fail: int = 0) -> str:
    n = sum(lat.values())
    rec = {"type": "sample", "sec": sec, "phase": phase, "fn": fn, "status": status, "code": ""}
    rec |= {"n": n, "fail": fail, "lat_us": {str(k): v for k, v in lat.items()}, "src": "w1"}
    return json.dumps(rec) + "\n"


def test_reader_merges_deltas_and_waits_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    start = json.dumps({"type": "start", "at": 100.0, "phase": "baseline"}) + "\n"
    a = _sample(100, "baseline", "f", 200, {1000: 2, 3000: 1})
    b = _sample(100, "baseline", "f", 200, {2000: 1})  # same key again: a later delta
    c = _sample(101, "fault", "f", 503, {5000: 4}, fail=4)
    phase = json.dumps({"type": "phase", "name": "fault", "at": 100.5}) + "\n"
    end = json.dumps({"type": "end", "at": 102.0}) + "\n"
    reader = StatsReader(path)
    path.write_text(start + a + b[:10])
    st = reader.poll()
    assert st.total().all.requests == 3  # the half-written line waits
    with path.open("a") as fh:
        fh.write(b[10:] + phase + c + end)
    st = reader.poll()
    total = st.total().all
    assert (total.requests, total.failures) == (8, 4)
    base = st.phase("baseline").all
    assert base.requests == 4 and base.percentile_ms(50) == 1.0 and base.percentile_ms(75) == 2.0
    assert st.phase("fault").all.statuses == Counter({503: 4})
    doc = st.to_json()
    assert doc["format"] == "omnidrill.load.stats/1"
    assert [p["name"] for p in doc["phases"]] == ["baseline", "fault"]
    assert doc["by_phase"]["baseline"]["duration_s"] == 0.5
    assert doc["by_phase"]["fault"]["rps"] == 4 / 1.5
    assert [(r["t"], r["phase"], r["requests"]) for r in doc["seconds"]] == [
        (100, "baseline", 4),
        (101, "fault", 4),
    ]
    # Thresholds judged on a phase, as a drill's load check does.
    assert st.judge("rps > 2.6", phase="fault").passed
    assert not st.judge("rps > 2.7", phase="fault").passed
    from omnidrill.load.thresholds import parse_threshold

    bad = parse_threshold("error_rate < 1%").evaluate(st.phase("fault"))
    assert not bad.passed and bad.measured == 1.0
    assert parse_threshold("p50 <= 1ms").evaluate(st.phase("baseline"), scope="f").passed
    assert not st.judge("requests > 0", phase="nope").passed


def test_old_seconds_are_summarised_but_totals_stay_exact() -> None:
    from omnidrill.load.stats import LoadStats

    rng = random.Random(3)
    st = LoadStats(started_at=1000.0, ended_at=1300.0, phases=[("main", 1000.0)])
    every: list[int] = []
    per_sec: dict[int, list[int]] = {}
    for sec in range(1000, 1300):
        lat = [rng.randint(500, 90_000) for _ in range(20)]
        every += lat
        per_sec[sec] = lat
        st.add_sample(sec, "main", "f", 200, "", len(lat), 0, dict(Counter(lat)))
    assert len(st.seconds) <= LoadStats.COMPACT_AFTER_S + 1 and len(st.compacted) > 150
    st.add_sample(1000, "main", "f", 503, "RPC_UNAVAILABLE", 1, 1, {7: 1})  # a late answer
    total = st.total().all
    assert total.requests == 6001 and total.failures == 1
    for pct in (50, 99, 99.9):
        assert percentile_us(total.lat_us, pct) == nearest_rank([*every, 7], pct)
    rows = {r["t"]: r for r in st.to_json()["seconds"]}
    assert len(rows) == 300
    assert rows[1000]["requests"] == 21 and rows[1000]["late_requests"] == 1
    assert rows[1001]["latency_ms"]["p95"] == nearest_rank(per_sec[1001], 95) / 1000
    assert rows[1299]["latency_ms"]["p95"] == nearest_rank(per_sec[1299], 95) / 1000
