"""Threshold expressions: what parses, what is refused and why, and how a miss is reported."""

from __future__ import annotations

import pytest

from omnidrill.load.thresholds import ThresholdError, ThresholdResult, parse_threshold


@pytest.mark.parametrize(
    ("expr", "metric", "op", "limit"),
    [
        ("p95 < 300ms", "p95", "<", 300.0),
        ("p(99.9)<=1.5s", "p99.9", "<=", 1500.0),
        ("p50 < 250", "p50", "<", 250.0),
        ("med < 800us", "med", "<", 0.8),
        ("avg < 20ms", "avg", "<", 20.0),
        ("max <= 2s", "max", "<=", 2000.0),
        ("error_rate < 1%", "error_rate", "<", 0.01),
        ("error_rate <= 0.05", "error_rate", "<=", 0.05),
        ("rps > 50", "rps", ">", 50.0),
        ("requests >= 100", "requests", ">=", 100.0),
    ],
)
def test_parses(expr: str, metric: str, op: str, limit: float) -> None:
    t = parse_threshold(expr)
    assert (t.metric, t.op) == (metric, op)
    assert t.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("p95 300ms", "malformed"),
        ("p95 = 300ms", "malformed"),
        ("latency < 3ms", "unknown metric 'latency'"),
        ("p101 < 3ms", "percentile"),
        ("p95 < 3 parsecs", "unit 'parsecs'"),
        ("p95 < 3h", "unit 'h'"),
        ("error_rate < 5", "write '5%'"),
        ("rps > 5ms", "unit 'ms'"),
        ("", "malformed"),
    ],
)
def test_refuses_with_what_was_expected(expr: str, words: str) -> None:
    with pytest.raises(ThresholdError) as exc:
        parse_threshold(expr)
    assert words in str(exc.value)


def test_a_miss_says_which_and_by_how_much() -> None:
    t = parse_threshold("p95 < 300ms")
    miss = ThresholdResult("wallet-balance", t, 412.5, passed=t.holds(412.5))
    assert not miss.passed
    assert miss.miss == pytest.approx(112.5)
    text = miss.describe()
    assert "[wallet-balance] p95 < 300ms: FAILED" in text
    assert "412.500 ms" in text and "112.500 ms over" in text and "37.5% of the limit" in text
    rps = parse_threshold("rps > 50")
    under = ThresholdResult("all", rps, 40.0, passed=rps.holds(40.0))
    assert "10.00/s under" in under.describe()
    ok = ThresholdResult("all", t, 299.999, passed=t.holds(299.999))
    assert ok.passed and ok.miss == 0.0 and ": ok" in ok.describe()


def test_boundaries_are_strict_or_not_as_written() -> None:
    assert not parse_threshold("p95 < 300ms").holds(300.0)
    assert parse_threshold("p95 <= 300ms").holds(300.0)
    assert parse_threshold("error_rate < 1%").holds(0.00999)
    assert not parse_threshold("error_rate < 1%").holds(0.01)
