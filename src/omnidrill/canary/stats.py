"""The canary's statistics: samples kept as value counts, nearest-rank percentiles, and the
Mann-Whitney U test (Wilcoxon rank-sum) with midranks for ties, as Kayenta's judge uses.

A sample is a histogram: every distinct value and how often it was seen. Latencies measured to
the microsecond repeat a lot, so a run of a hundred thousand requests stays a few thousand
entries, and the rank sums below walk distinct values, never every pair.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Direction = Literal["increase", "decrease", "either"]


@dataclass(frozen=True)
class Sample:
    """Distinct values, ascending, and how often each was seen."""

    values: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()

    @classmethod
    def of(cls, values: Iterable[float]) -> Sample:
        return cls.from_counts(Counter(float(v) for v in values))

    @classmethod
    def from_counts(cls, counts: Mapping[float, int]) -> Sample:
        items = sorted((float(v), int(c)) for v, c in counts.items() if c > 0)
        return cls(tuple(v for v, _ in items), tuple(c for _, c in items))

    @property
    def n(self) -> int:
        return sum(self.counts)

    def percentile(self, pct: float) -> float | None:
        """Nearest rank: the smallest value with at least pct % of the sample at or below it
        (the load runner's definition, so a canary's p95 reads like a threshold's)."""
        n = self.n
        if n == 0:
            return None
        rank = max(1, math.ceil(pct / 100.0 * n - 1e-9))
        seen = 0
        for v, c in zip(self.values, self.counts, strict=True):
            seen += c
            if seen >= rank:
                return v
        return self.values[-1]

    def mean(self) -> float | None:
        n = self.n
        if n == 0:
            return None
        return sum(v * c for v, c in zip(self.values, self.counts, strict=True)) / n

    def scaled(self, factor: float) -> Sample:
        """Every value times factor (what a uniformly slower version would have measured)."""
        return Sample(tuple(v * factor for v in self.values), self.counts)

    def expanded(self) -> list[float]:
        """Every observation (for plots and tests; a sample of millions should not do this)."""
        return [v for v, c in zip(self.values, self.counts, strict=True) for _ in range(c)]


@dataclass(frozen=True)
class MannWhitney:
    """The U test of canary against baseline.

    `u` counts the (baseline, canary) pairs where the canary's value is larger, ties as one
    half; `a = u / (n_baseline * n_canary)` is its effect size, the probability that a
    random canary value exceeds a random baseline value (0.5: no difference; Vargha and
    Delaney's A). p-values come from the normal approximation with the tie correction of the
    variance and a continuity correction, one-sided in each direction.
    """

    u: float
    n_baseline: int
    n_canary: int
    z: float
    p_greater: float  # evidence that the canary is stochastically larger
    p_less: float  # ... smaller

    @property
    def a(self) -> float:
        pairs = self.n_baseline * self.n_canary
        return self.u / pairs if pairs else 0.5

    def p(self, worse: Direction) -> float:
        """The p-value of the canary being worse in the given direction."""
        if worse == "increase":
            return self.p_greater
        if worse == "decrease":
            return self.p_less
        return min(1.0, 2.0 * min(self.p_greater, self.p_less))


def _upper_tail(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney(baseline: Sample, canary: Sample) -> MannWhitney:
    """Mann-Whitney U of canary against baseline; both samples need at least one value."""
    n1, n2 = baseline.n, canary.n
    if n1 == 0 or n2 == 0:
        raise ValueError("the U test needs values on both sides")
    merged: dict[float, list[int]] = {}
    for v, c in zip(baseline.values, baseline.counts, strict=True):
        merged.setdefault(v, [0, 0])[0] += c
    for v, c in zip(canary.values, canary.counts, strict=True):
        merged.setdefault(v, [0, 0])[1] += c
    below = 0  # values ranked before the current tie group
    rank_sum = 0.0  # of the canary, with midranks
    tie_term = 0.0  # sum over tie groups of t^3 - t
    for v in sorted(merged):
        b, c = merged[v]
        t = b + c
        midrank = below + (t + 1) / 2.0
        rank_sum += c * midrank
        tie_term += t**3 - t
        below += t
    u = rank_sum - n2 * (n2 + 1) / 2.0
    n = n1 + n2
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:  # every value the same: no evidence either way
        return MannWhitney(u, n1, n2, 0.0, 1.0, 1.0)
    sd = math.sqrt(var)
    z = (u - mean) / sd
    p_greater = min(1.0, _upper_tail((u - mean - 0.5) / sd))
    p_less = min(1.0, _upper_tail(-(u - mean + 0.5) / sd))
    return MannWhitney(u, n1, n2, z, p_greater, p_less)
