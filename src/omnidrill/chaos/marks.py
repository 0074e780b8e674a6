"""Marks a running drill leaves on the target itself, so any machine can see and undo it.

While a drill runs, the controls' `reason` holds `omnidrill-lock {json}`: who holds the
target, and the values to restore (the controls row and the proxies' states before the
drill). Toxic names carry the run id. `omnidrill recover` needs nothing else.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

MARK_PREFIX = "omnidrill-lock "
TOXIC_PREFIX = "omnidrill-"
RESTORABLE = (
    "omnihub_kill_switch",
    "execution_safe_mode",
    "operator_takeover",
    "allowed_operations",
    "updated_by",
    "reason",
)


@dataclass
class Mark:
    """The lock and the remote undo record of one run."""

    run: str
    drill: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    since: float = field(default_factory=time.time)
    prev: dict[str, Any] = field(default_factory=dict)  # controls columns before the drill
    proxies: dict[str, bool] = field(default_factory=dict)  # proxy -> enabled before
    halt: str | None = None  # set by `omnidrill halt`: who asked

    def text(self) -> str:
        return MARK_PREFIX + json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    def holder(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return (
            f"run {self.run} ({self.drill!r}) on host {self.host}, pid {self.pid}, since {started}"
        )


def parse_mark(reason: object) -> Mark | None:
    """The mark in a `reason` value, or None when there is none (or it is unreadable)."""
    if not isinstance(reason, str) or not reason.startswith(MARK_PREFIX):
        return None
    try:
        data = json.loads(reason[len(MARK_PREFIX) :])
        return Mark(
            run=str(data["run"]),
            drill=str(data.get("drill", "")),
            host=str(data.get("host", "?")),
            pid=int(data.get("pid", 0)),
            since=float(data.get("since", 0)),
            prev=dict(data.get("prev") or {}),
            proxies={str(k): bool(v) for k, v in (data.get("proxies") or {}).items()},
            halt=data.get("halt"),
        )
    except (ValueError, KeyError, TypeError):
        return None


def toxic_name(run_id: str, label: str) -> str:
    return f"{TOXIC_PREFIX}{run_id}-{label}"


def snapshot(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in RESTORABLE if k in row}
