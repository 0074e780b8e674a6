"""Fresh values for request bodies and headers: `${raw_tx}`, `${address}`, `${uuid}`, ...

A string in a task's body or headers may hold `${name}` placeholders; each request gets new
values. Jinja2 (`{{ }}`) runs once when the file loads; `${ }` runs per request.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Callable
from typing import Any

_counter = itertools.count(1)


def _raw_tx() -> str:
    # Test providers accept any hex as a signed transaction (CONTRACT 6); 110 bytes is a
    # typical signed transfer's size.
    return "0x" + os.urandom(110).hex()


GENERATORS: dict[str, Callable[[dict[str, str]], str]] = {
    "raw_tx": lambda ctx: _raw_tx(),
    "address": lambda ctx: "0x" + os.urandom(20).hex(),
    "uuid": lambda ctx: str(uuid.uuid4()),
    "seq": lambda ctx: str(next(_counter)),
    "user_id": lambda ctx: ctx.get("user_id", "load-user"),
    "client_ip": lambda ctx: ctx.get("client_ip", ""),
}
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def placeholders_in(value: Any) -> set[str]:
    """Every `${name}` used anywhere inside a JSON-like value."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(m.strip() for m in PLACEHOLDER.findall(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            found |= placeholders_in(k) | placeholders_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= placeholders_in(v)
    return found


def unknown_placeholders(value: Any) -> list[str]:
    return sorted(n for n in placeholders_in(value) if n not in GENERATORS)


def has_placeholders(value: Any) -> bool:
    return bool(placeholders_in(value))


def fill(value: Any, ctx: dict[str, str]) -> Any:
    """A copy of value with every `${name}` replaced by a fresh generated value."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        return PLACEHOLDER.sub(lambda m: GENERATORS[m.group(1).strip()](ctx), value)
    if isinstance(value, dict):
        return {fill(k, ctx): fill(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ctx) for v in value]
    return value
