"""The run journal (`journal.json`): one JSON document per run, rewritten as the run goes.

Format: docs/journal.md (JOURNAL_VERSION). Every write is scrubbed of secrets and atomic
(temporary file, then rename), so a killed run leaves the last complete state.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import threading
import time
from pathlib import Path
from typing import Any

from omnidrill import __version__, secrets
from omnidrill.chaos.traffic import Traffic

JOURNAL_VERSION = "1.1"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class Journal:
    """The journal of one run; thread-safe; `flush()` after each event worth keeping."""

    def __init__(self, path: Path, *, run_id: str, target: dict[str, Any], argv: list[str]):
        self.path = path
        self.traffic = Traffic()
        self._lock = threading.Lock()
        self._last_flush = 0.0
        now = time.time()
        self.doc: dict[str, Any] = {
            "version": JOURNAL_VERSION,
            "kind": "omnidrill-run",
            "run_id": run_id,
            "omnidrill_version": __version__,
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "argv": argv,
            "target": target,
            "started_at": iso(now),
            "started_ts": now,
            "ended_at": None,
            "status": "running",
            "exit_code": None,
            "options": {},
            "drills": [],
            "scenarios": [],
            "events": [],
            "pending_undos": [],
            "traffic": [],
        }
        self.flush(force=True)

    def event(self, kind: str, message: str, drill: str = "", **data: Any) -> None:
        now = time.time()
        with self._lock:
            self.doc["events"].append(
                {
                    "t": round(now, 3),
                    "at": iso(now),
                    "kind": kind,
                    "drill": drill,
                    "message": message,
                    **data,
                }
            )
        self.flush(force=True)

    def set_pending(self, pending: list[dict[str, Any]]) -> None:
        with self._lock:
            self.doc["pending_undos"] = pending
        self.flush(force=True)

    def flush(self, force: bool = False) -> None:
        """Write the document; unforced writes happen at most once a second."""
        now = time.time()
        if not force and now - self._last_flush < 1.0:
            return
        with self._lock:
            self._last_flush = now
            self.doc["traffic"] = self.traffic.export()
            text = json.dumps(secrets.scrub_obj(self.doc), indent=1, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path)

    def finish(self, status: str, exit_code: int) -> None:
        now = time.time()
        with self._lock:
            self.doc["status"] = status
            self.doc["exit_code"] = exit_code
            self.doc["ended_at"] = iso(now)
            self.doc["duration_s"] = round(now - self.doc["started_ts"], 3)
        self.flush(force=True)
