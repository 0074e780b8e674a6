"""An undo's conflict: a field it would have put back, left alone because someone else changed
it. Kept apart (no I/O) so that reports can word what the journal holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Conflict:
    """A field an undo would have put back, left alone because someone else changed it."""

    where: str  # "emergency_controls", "proxy rpc_primary", "toxic NAME on PROXY", ...
    field: str
    set: Any  # what the drill left there
    found: Any  # what is there now
    updated_by: Any = None
    reason: Any = None

    def text(self) -> str:
        return conflict_text(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def conflict_text(c: dict[str, Any]) -> str:
    """A conflict (as the journal keeps it) as one sentence: field, value set, found, who."""
    who = ", ".join(f"{k} {c[k]!r}" for k in ("updated_by", "reason") if c.get(k))
    return (
        f"{c.get('where')}.{c.get('field')}: the drill left {c.get('set')!r}, "
        f"found {c.get('found')!r}" + (f" ({who})" if who else "")
    )
