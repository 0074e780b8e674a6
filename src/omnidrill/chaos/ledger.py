"""The on-disk ledger of undos: registered before each change, marked done after its undo.

One JSON line per event, flushed and fsynced, so a `kill -9` loses nothing that was acted on.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    """Where ledgers, local locks and halt requests live (OMNIDRILL_STATE_DIR or ./.omnidrill)."""
    return Path(os.environ.get("OMNIDRILL_STATE_DIR", ".omnidrill"))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@dataclass
class Undo:
    """One registered undo: what to run to restore what a step changed."""

    run: str
    seq: int
    kind: str
    params: dict[str, Any]
    label: str
    ts: float

    def describe(self) -> str:
        return f"{self.label} [{self.kind} {json.dumps(self.params, sort_keys=True)}]"


class Ledger:
    """The undo ledger of one target."""

    def __init__(self, target: str, root: Path | None = None) -> None:
        self.path = (root or state_dir()) / "ledger" / f"{_safe(target)}.jsonl"
        self._lock = threading.Lock()

    def _append(self, event: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, sort_keys=True) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a crash mid-write: its undo was never acted on
        return out

    def pending(self, run: str | None = None) -> list[Undo]:
        """Undos registered and not done, oldest first."""
        registered: dict[tuple[str, int], Undo] = {}
        for e in self.events():
            key = (e.get("run", ""), int(e.get("seq", -1)))
            if e.get("op") == "undo":
                registered[key] = Undo(
                    run=key[0],
                    seq=key[1],
                    kind=e["kind"],
                    params=e.get("params", {}),
                    label=e.get("label", ""),
                    ts=e.get("ts", 0.0),
                )
            elif e.get("op") == "done":
                registered.pop(key, None)
        items = [u for u in registered.values() if run is None or u.run == run]
        return sorted(items, key=lambda u: (u.ts, u.seq))

    def register(self, run: str, seq: int, kind: str, params: dict[str, Any], label: str) -> Undo:
        undo = Undo(run=run, seq=seq, kind=kind, params=params, label=label, ts=time.time())
        self._append(
            {
                "op": "undo",
                "run": run,
                "seq": seq,
                "kind": kind,
                "params": params,
                "label": label,
                "ts": undo.ts,
            }
        )
        return undo

    def done(self, undo: Undo, note: str) -> None:
        self._append(
            {"op": "done", "run": undo.run, "seq": undo.seq, "note": note, "ts": time.time()}
        )

    def compact(self) -> None:
        """Drop the file when nothing is pending (it only grows otherwise)."""
        with self._lock:
            if self.path.exists() and not self.pending():
                self.path.unlink()
