"""The U test against brute force: U by counting pairs, p-values by enumerating permutations."""

from __future__ import annotations

import itertools
import random

import pytest

from omnidrill.canary.stats import Sample, mann_whitney


def pairs_u(baseline: list[float], canary: list[float]) -> float:
    return sum(1.0 if c > b else 0.5 if c == b else 0.0 for b in baseline for c in canary)


def exact_p_greater(baseline: list[float], canary: list[float]) -> float:
    """P(U >= observed) over every split of the pooled values (the permutation distribution)."""
    pooled = baseline + canary
    observed = pairs_u(baseline, canary)
    n2 = len(canary)
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), n2):
        chosen = set(idx)
        c = [pooled[i] for i in idx]
        b = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        hits += pairs_u(b, c) >= observed - 1e-9
    return hits / total


def test_u_counts_pairs_with_ties_as_halves() -> None:
    rng = random.Random(7)
    for _ in range(20):
        b = [rng.choice(range(8)) for _ in range(rng.randint(1, 30))]
        c = [rng.choice(range(8)) for _ in range(rng.randint(1, 30))]
        mw = mann_whitney(Sample.of(b), Sample.of(c))
        assert mw.u == pytest.approx(pairs_u(b, c))
        assert mw.a == pytest.approx(pairs_u(b, c) / (len(b) * len(c)))


@pytest.mark.parametrize(
    ("baseline", "canary"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], [4.5, 6.5, 8.5, 9.5, 10, 11, 12, 13, 14]),  # no ties
        ([1, 1, 2, 2, 3, 3, 4, 4, 5], [2, 3, 3, 4, 4, 5, 5, 6, 6]),  # many ties
        ([3, 1, 4, 1, 5, 9, 2, 6, 5], [3, 5, 8, 9, 7, 9, 3, 2, 3]),  # little difference
    ],
)
def test_normal_approximation_is_close_to_the_exact_permutation_p(
    baseline: list[float], canary: list[float]
) -> None:
    mw = mann_whitney(Sample.of(baseline), Sample.of(canary))
    exact = exact_p_greater([float(x) for x in baseline], [float(x) for x in canary])
    assert mw.p_greater == pytest.approx(exact, abs=0.02)
    # the other tail, by symmetry: swap the sides
    exact_less = exact_p_greater([float(x) for x in canary], [float(x) for x in baseline])
    assert mw.p_less == pytest.approx(exact_less, abs=0.02)
    assert mw.p("either") == pytest.approx(min(1.0, 2 * min(mw.p_greater, mw.p_less)))


def test_identical_values_give_no_evidence() -> None:
    mw = mann_whitney(Sample.of([5.0] * 40), Sample.of([5.0] * 30))
    assert (mw.p_greater, mw.p_less, mw.a) == (1.0, 1.0, 0.5)


def test_a_shift_is_found_and_its_direction_told() -> None:
    rng = random.Random(3)
    base = [rng.lognormvariate(0, 0.4) for _ in range(400)]
    slower = [rng.lognormvariate(0, 0.4) * 1.15 for _ in range(400)]
    mw = mann_whitney(Sample.of(base), Sample.of(slower))
    assert mw.p("increase") < 1e-4 and mw.p("decrease") > 0.99 and mw.a > 0.55


def test_nearest_rank_percentiles_of_a_sample() -> None:
    s = Sample.of(range(1, 101))
    assert (s.percentile(50), s.percentile(95), s.percentile(99.9)) == (50, 95, 100)
    assert Sample.of([]).percentile(95) is None
    assert Sample.from_counts({2.0: 3, 1.0: 1}).expanded() == [1.0, 2.0, 2.0, 2.0]
    assert s.scaled(2).percentile(95) == 190 and s.mean() == pytest.approx(50.5)


def test_the_test_refuses_an_empty_side() -> None:
    with pytest.raises(ValueError, match="both sides"):
        mann_whitney(Sample.of([]), Sample.of([1.0]))
