"""Series as a target really sends them (points at their own timestamps), for the evaluator.

`monitors test` feeds the evaluator series on a regular grid; an intake receives points when
the target flushes them. `TimedSeries` answers the evaluator's two questions (the points in a
window, the last point before a time) by binary search, and `SeriesBook` collects an intake's
rows into one series per metric and tag set.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from omnidrill.observe.evaluate import Series


class TimedSeries(Series):
    """One metric and tag set; points kept sorted by time (several may share a second)."""

    def __init__(self, metric: str, tags: dict[str, str], kind: str = "") -> None:
        super().__init__(metric=metric, tags=tags, values=[], interval=1)
        self.kind = kind
        self.times: list[float] = []
        self.samples: list[float] = []

    def add(self, ts: float, value: float) -> None:
        if not self.times or ts >= self.times[-1]:
            self.times.append(ts)
            self.samples.append(value)
        else:  # late points are rare: keep the order
            i = bisect.bisect_right(self.times, ts)
            self.times.insert(i, ts)
            self.samples.insert(i, value)

    def _span(self, start_excl: float, end_incl: float) -> tuple[int, int]:
        return bisect.bisect_right(self.times, start_excl), bisect.bisect_right(
            self.times, end_incl
        )

    def points(self, start_excl: float, end_incl: float) -> list[tuple[int, float]]:
        i, j = self._span(start_excl, end_incl)
        return list(zip(self.times[i:j], self.samples[i:j], strict=True))  # type: ignore[arg-type]

    def values_between(self, start_excl: float, end_incl: float) -> list[float]:
        i, j = self._span(start_excl, end_incl)
        return self.samples[i:j]

    def last_point_at_or_before(self, t: float) -> int | None:
        j = bisect.bisect_right(self.times, t)
        return int(self.times[j - 1]) if j else None

    def forget_before(self, t: float) -> None:
        i = bisect.bisect_left(self.times, t)
        if i:
            del self.times[:i]
            del self.samples[:i]

    def tags_text(self) -> list[str]:
        return [f"{k}:{v}" if v else k for k, v in self.tags.items()]

    def __len__(self) -> int:
        return len(self.times)


def tag_dict(tags: Iterable[str]) -> dict[str, str]:
    """`["k:v", "bare"]` -> `{"k": "v", "bare": ""}` (the first value of a repeated key)."""
    out: dict[str, str] = {}
    for t in tags:
        k, _, v = t.partition(":")
        out.setdefault(k, v)
    return out


@dataclass
class SeriesBook:
    """Every series seen so far, by metric and tag set."""

    by_key: dict[tuple[str, tuple[str, ...]], TimedSeries] = field(default_factory=dict)

    def add(
        self,
        metric: str,
        kind: str,
        tags: Iterable[str],
        ts: float,
        value: float | tuple[float, ...],
    ) -> None:
        key = (metric, tuple(sorted(tags)))
        s = self.by_key.get(key)
        if s is None:
            s = self.by_key[key] = TimedSeries(metric, tag_dict(key[1]), kind)
        if isinstance(value, tuple):  # a distribution: every sample is a point of its own
            for v in value:
                s.add(ts, v)
        else:
            s.add(ts, value)

    def series(self) -> list[Series]:
        return list(self.by_key.values())

    def of_metric(self, metric: str) -> list[TimedSeries]:
        return [s for (m, _), s in self.by_key.items() if m == metric]

    def forget_before(self, t: float) -> None:
        for s in self.by_key.values():
            s.forget_before(t)
