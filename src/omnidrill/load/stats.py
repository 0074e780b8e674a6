"""Exact load statistics from the Locust child's record stream, and the journal's JSON of them.

The journal embeds `LoadStats.to_json()`, format `omnidrill.load.stats/1`:

```
{
  "format": "omnidrill.load.stats/1",
  "latency_resolution_us": 1,            # latencies are kept to the microsecond
  "percentiles": "nearest-rank",         # pN = smallest latency with at least N% of requests <= it
  "started_at": 1764100000.12,           # epoch seconds: load started, load stopped
  "ended_at": 1764100020.15,
  "phases": [{"name": "main", "at": 1764100000.12}, ...],  # boundaries the load process saw
  "seconds": [                           # one row per second of request start and phase
    {"t": 1764100001, "phase": "main", "requests": 40, "failures": 0,
     "latency_ms": {"p50": 2.1, "p95": 4.0, "p99": 7.2, "max": 9.9},
     "functions": {"wallet-balance": {"requests": 40, "failures": 0,
                   "statuses": {"200": 40}, "codes": {},
                   "latency_ms": {"p50": ..., "p95": ..., "p99": ..., "max": ...}}}}
  ],                                     # (a row may also carry "late_requests", see LoadStats)
  "total": SUMMARY,
  "by_phase": {"main": SUMMARY, ...}
}
SUMMARY = {"requests", "failures", "error_rate", "rps", "duration_s",
           "latency_ms": {"min", "avg", "p50", "p90", "p95", "p99", "p99.9", "max"},
           "statuses": {"200": n, ...}, "codes": {"RATE_LIMITED": n, ...},   # status 0 = no answer
           "functions": {name: SUMMARY without "functions"}}
```
A request belongs to the second and the phase in which it started. Failures are requests whose
status the task did not expect, or that got no answer.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "omnidrill.load.stats/1"
SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
SECOND_PERCENTILES = (50.0, 95.0, 99.0)


def percentile_us(hist: Counter[int], pct: float) -> int | None:
    """Nearest-rank percentile of a histogram of whole microseconds."""
    n = sum(hist.values())
    if n == 0:
        return None
    rank = max(1, math.ceil(pct / 100.0 * n - 1e-9))
    seen = 0
    for us in sorted(hist):
        seen += hist[us]
        if seen >= rank:
            return us
    return max(hist)


@dataclass
class Agg:
    """Counts and an exact latency histogram for some slice of the requests."""

    requests: int = 0
    failures: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    lat_us: Counter[int] = field(default_factory=Counter)

    def add(self, status: int, code: str, n: int, fail: int, lat: dict[int, int]) -> None:
        self.requests += n
        self.failures += fail
        self.statuses[status] += n
        if code:
            self.codes[code] += n
        self.lat_us.update(lat)

    def merge(self, other: Agg) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.statuses.update(other.statuses)
        self.codes.update(other.codes)
        self.lat_us.update(other.lat_us)

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    def percentile_ms(self, pct: float) -> float | None:
        us = percentile_us(self.lat_us, pct)
        return None if us is None else us / 1000.0

    def latency_ms(self, which: str) -> float | None:
        if not self.lat_us:
            return None
        if which == "min":
            return min(self.lat_us) / 1000.0
        if which == "max":
            return max(self.lat_us) / 1000.0
        if which == "avg":
            total = sum(us * c for us, c in self.lat_us.items())
            return total / sum(self.lat_us.values()) / 1000.0
        raise ValueError(which)

    def latency_json(self, pcts: Iterable[float], extra: Iterable[str] = ("max",)) -> dict:
        out: dict[str, float | None] = {f"p{p:g}": self.percentile_ms(p) for p in pcts}
        for k in extra:
            out[k] = self.latency_ms(k)
        return out


@dataclass
class Slice:
    """An Agg in total and per function."""

    all: Agg = field(default_factory=Agg)
    functions: dict[str, Agg] = field(default_factory=dict)
    duration_s: float | None = None  # set on a run's or a phase's slice, for rps

    def add(self, fn: str, status: int, code: str, n: int, fail: int, lat: dict[int, int]) -> None:
        self.all.add(status, code, n, fail, lat)
        self.functions.setdefault(fn, Agg()).add(status, code, n, fail, lat)

    def merge(self, other: Slice) -> None:
        self.all.merge(other.all)
        for fn, agg in other.functions.items():
            self.functions.setdefault(fn, Agg()).merge(agg)

    def scope(self, name: str) -> Agg:
        return self.all if name == "all" else self.functions.get(name, Agg())


def _summary(agg: Agg, duration_s: float | None) -> dict[str, Any]:
    return {
        "requests": agg.requests,
        "failures": agg.failures,
        "error_rate": agg.error_rate,
        "rps": agg.requests / duration_s if duration_s else None,
        "duration_s": duration_s,
        "latency_ms": agg.latency_json(SUMMARY_PERCENTILES, ("min", "avg", "max")),
        "statuses": {str(k): v for k, v in sorted(agg.statuses.items())},
        "codes": dict(sorted(agg.codes.items())),
    }


def _slice_json(s: Slice, duration_s: float | None) -> dict[str, Any]:
    out = _summary(s.all, duration_s)
    out["functions"] = {fn: _summary(a, duration_s) for fn, a in sorted(s.functions.items())}
    return out


def _second_row(t: int, ph: str, s: Slice) -> dict[str, Any]:
    return {
        "t": t,
        "phase": ph,
        "requests": s.all.requests,
        "failures": s.all.failures,
        "latency_ms": s.all.latency_json(SECOND_PERCENTILES),
        "functions": {
            fn: {
                "requests": a.requests,
                "failures": a.failures,
                "statuses": {str(k): v for k, v in sorted(a.statuses.items())},
                "codes": dict(sorted(a.codes.items())),
                "latency_ms": a.latency_json(SECOND_PERCENTILES),
            }
            for fn, a in sorted(s.functions.items())
        },
    }


@dataclass
class LoadStats:
    """Everything one load run measured, exact.

    Run and phase totals keep every latency to the microsecond. A second's row keeps its exact
    histogram until the stream is COMPACT_AFTER_S past it, then only its summary (so a long,
    fast run does not hold millions of histogram entries); a request of that second reported
    later still counts everywhere, and in its row under `late_requests` (outside the row's
    percentiles).
    """

    COMPACT_AFTER_S = 120

    started_at: float | None = None
    ended_at: float | None = None
    phases: list[tuple[str, float]] = field(default_factory=list)
    seconds: dict[tuple[int, str], Slice] = field(default_factory=dict)
    compacted: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    phase_totals: dict[str, Slice] = field(default_factory=dict)
    newest_sec: int = 0
    errors: list[str] = field(default_factory=list)
    missing_workers: list[str] = field(default_factory=list)
    by_source: Counter[str] = field(default_factory=Counter)

    def add_sample(
        self, sec: int, phase: str, fn: str, status: int, code: str, n: int, fail: int, lat: dict
    ) -> None:
        key = (sec, phase)
        row = self.compacted.get(key)
        if row is None:
            self.seconds.setdefault(key, Slice()).add(fn, status, code, n, fail, lat)
        else:
            row["requests"] += n
            row["failures"] += fail
            row["late_requests"] = row.get("late_requests", 0) + n
        self.phase_totals.setdefault(phase, Slice()).add(fn, status, code, n, fail, lat)
        if sec > self.newest_sec:
            self.newest_sec = sec
            cutoff = sec - self.COMPACT_AFTER_S
            for old in [k for k in self.seconds if k[0] < cutoff]:
                self.compacted[old] = _second_row(*old, self.seconds.pop(old))

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(self.ended_at - self.started_at, 1e-9)

    def total(self) -> Slice:
        """The whole run (its duration set, for rps)."""
        out = Slice(duration_s=self.duration_s)
        for s in self.phase_totals.values():
            out.merge(s)
        return out

    def phase(self, name: str) -> Slice:
        """The requests started while phase `name` was current (its duration set, for rps)."""
        out = Slice(duration_s=self.phase_duration_s(name))
        if name in self.phase_totals:
            out.merge(self.phase_totals[name])
        return out

    def judge(self, expr: str, *, phase: str | None = None, scope: str = "all") -> Any:
        """One threshold (`p95 < 300ms`) over the run or a phase: a ThresholdResult."""
        from omnidrill.load.thresholds import parse_threshold

        data = self.phase(phase) if phase else self.total()
        return parse_threshold(expr).evaluate(data, scope=scope)

    def phase_duration_s(self, name: str) -> float | None:
        """Sum of the spans the phase was current (a phase may come back)."""
        if self.started_at is None or self.ended_at is None:
            return None
        marks = self.phases or [("main", self.started_at)]
        total = 0.0
        for i, (ph, at) in enumerate(marks):
            end = marks[i + 1][1] if i + 1 < len(marks) else self.ended_at
            if ph == name:
                total += max(end - at, 0.0)
        return total or None

    def phase_names(self) -> list[str]:
        names = [n for n, _ in self.phases]
        names += sorted(set(self.phase_totals) - set(names))
        return list(dict.fromkeys(names))

    def second_rows(self) -> list[dict[str, Any]]:
        rows = dict(self.compacted)
        rows.update({k: _second_row(*k, s) for k, s in self.seconds.items()})
        return [rows[k] for k in sorted(rows)]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "latency_resolution_us": 1,
            "percentiles": "nearest-rank",
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "phases": [{"name": n, "at": at} for n, at in self.phases],
            "seconds": self.second_rows(),
            "total": _slice_json(self.total(), self.duration_s),
            "by_phase": {
                n: _slice_json(self.phase(n), self.phase_duration_s(n)) for n in self.phase_names()
            },
            "errors": self.errors,
            "missing_workers": self.missing_workers,
        }


class StatsReader:
    """Reads the record stream incrementally (a background run is read while it runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.stats = LoadStats()
        self._partial = b""

    def poll(self) -> LoadStats:
        if not self.path.exists():
            return self.stats
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        for line in lines:
            if line.strip():
                self._apply(json.loads(line))
        return self.stats

    def _apply(self, rec: dict[str, Any]) -> None:
        st = self.stats
        kind = rec.get("type")
        if kind == "sample":
            lat = {int(k): int(v) for k, v in rec["lat_us"].items()}
            st.add_sample(
                int(rec["sec"]),
                str(rec["phase"]),
                str(rec["fn"]),
                int(rec["status"]),
                rec.get("code") or "",
                int(rec["n"]),
                int(rec["fail"]),
                lat,
            )
            st.by_source[str(rec.get("src", ""))] += int(rec["n"])
        elif kind == "start":
            st.started_at = float(rec["at"])
            st.phases.append((str(rec.get("phase") or "main"), float(rec["at"])))
        elif kind == "phase":
            st.phases.append((str(rec["name"]), float(rec["at"])))
        elif kind == "end":
            st.ended_at = float(rec["at"])
            st.missing_workers = list(rec.get("missing_workers") or [])
        elif kind == "error":
            st.errors.append(str(rec.get("message")))
