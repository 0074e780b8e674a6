"""One registry of secret values, and scrubbing of every text that leaves the process."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

REDACTED = "***"

_lock = threading.Lock()
_secrets: set[str] = set()

# Connection strings and DSNs carry credentials even when nobody registered them.
_PATTERNS = [
    re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I),
    re.compile(r"(?i)(?P<key>\b(?:password|passwd|pwd)=)(?P<pw>[^\s&;]+)"),
    re.compile(r"(?i)(?P<key>\bbearer\s+)(?P<pw>[A-Za-z0-9._\-~+/=]{8,})"),
]

# Too short to scrub safely: replacing "a" everywhere would destroy the text.
_MIN_SECRET_LEN = 4


def register(*values: str | None) -> None:
    """Remember values that must never appear in any output."""
    with _lock:
        for v in values:
            if v and len(v) >= _MIN_SECRET_LEN:
                _secrets.add(v)


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def forget_all() -> None:
    """Drop every registered secret (tests only)."""
    with _lock:
        _secrets.clear()


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """Replace every registered secret and every credential-looking fragment."""
    if not text:
        return text
    values = sorted(
        registered() | {e for e in extra if e and len(e) >= _MIN_SECRET_LEN}, key=len, reverse=True
    )
    for v in values:
        if v in text:
            text = text.replace(v, REDACTED)
    text = _PATTERNS[0].sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _PATTERNS[1].sub(lambda m: f"{m['key']}{REDACTED}", text)
    text = _PATTERNS[2].sub(lambda m: f"{m['key']}{REDACTED}", text)
    return text


def scrub_obj(obj: Any) -> Any:
    """Scrub every string inside a JSON-like structure (dict keys included)."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {scrub_obj(k): scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_obj(v) for v in obj]
    return obj
