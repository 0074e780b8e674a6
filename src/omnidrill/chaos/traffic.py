"""Per-second buckets of every request a run sends (probes, actions, background load)."""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Bucket:
    count: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of values, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Traffic:
    """Thread-safe recorder; buckets keyed by (whole second, source, drill)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[int, str, str], _Bucket] = defaultdict(_Bucket)
        self._summaries: list[dict[str, Any]] = []  # buckets computed elsewhere (background)

    def record(
        self,
        *,
        ts: float,
        source: str,
        drill: str,
        status: int | None,
        code: str | None,
        latency_s: float,
    ) -> None:
        key = (int(ts), source, drill)
        with self._lock:
            b = self._buckets[key]
            b.count += 1
            b.by_status[str(status) if status is not None else "error"] += 1
            if code:
                b.by_code[code] += 1
            b.latencies_ms.append(round(latency_s * 1000, 2))

    def add_summary(self, bucket: dict[str, Any]) -> None:
        """A per-second bucket computed elsewhere (the background load's exact stats)."""
        with self._lock:
            self._summaries.append(bucket)

    def export(self) -> list[dict[str, Any]]:
        with self._lock:
            items = sorted(self._buckets.items())
            out = []
            for (t, source, drill), b in items:
                lat = b.latencies_ms
                out.append(
                    {
                        "t": t,
                        "source": source,
                        "drill": drill,
                        "count": b.count,
                        "by_status": dict(b.by_status),
                        "by_code": dict(b.by_code),
                        "latency_ms": {
                            "p50": percentile(lat, 50),
                            "p95": percentile(lat, 95),
                            "p99": percentile(lat, 99),
                            "max": max(lat) if lat else None,
                        },
                    }
                )
            out += self._summaries
            return sorted(out, key=lambda b: (b["t"], b["source"]))
