"""One duration grammar for drills and scenarios."""

from __future__ import annotations

import pytest

from omnidrill.spec.units import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("100ms", 0.1),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("1s500ms", 1.5),
        (" 20 s ", 20.0),
        ("0s", 0.0),
        ("7", 7.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "1x", "30s1m", "1m1m", "ms", "", True, None, [1], -1])
def test_bad_durations_say_what_was_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)
