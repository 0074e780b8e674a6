"""Durations as every YAML kind writes them: `100ms`, `1.5s`, `2m`, `1m30s`, `1h` or seconds."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = ["h", "m", "s", "ms"]
EXPECTED = "expected a duration like '100ms', '2s', '1m30s' or a number of seconds"


def parse_duration(value: object) -> float:
    """Seconds (>= 0) from a number or from parts in the order h, m, s, ms (`1h30m`, `1s500ms`)."""
    if isinstance(value, bool):
        raise ValueError(f"{EXPECTED}, found {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.replace(" ", "")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            units = [u for _, u in parts]
            in_order = units == sorted(units, key=_ORDER.index) and len(set(units)) == len(units)
            if not parts or "".join(n + u for n, u in parts) != text or not in_order:
                raise ValueError(f"{EXPECTED}, found {value!r}")
            seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    else:
        raise ValueError(f"{EXPECTED}, found {value!r}")
    if seconds < 0:
        raise ValueError(f"expected a duration >= 0, found {value!r}")
    return seconds
