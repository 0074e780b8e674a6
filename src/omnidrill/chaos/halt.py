"""`omnidrill halt`: ask a running drill, on this machine or another, to roll back and stop.

The request is written into the mark on the target (and a file here); the running drill
watches both every 0.2 s, and its steps wake at once, so it rolls back within a second. The
same watch is the guardrail that cannot be switched off: someone else changing what the drill
holds on the controls row stops it the same way.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from omnidrill.chaos.controlstore import CONTROLS
from omnidrill.chaos.lock import halt_file, held_by
from omnidrill.chaos.undo import World

POLL_S = 0.2


def request_halt(world: World, target: str) -> str:
    """Mark the target's running drill as halted; return what was found."""
    who = f"{os.environ.get('USER', 'someone')}@{socket.gethostname()}"
    path = halt_file(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{who} {time.time()}\n", encoding="utf-8")
    mark = held_by(world)
    if mark is None:
        path.unlink(missing_ok=True)
        return f"no drill holds target {target!r}; nothing to halt"
    world.store.patch_row(CONTROLS, world.row_id, {"reason": replace(mark, halt=who).text()})
    return f"halt requested for {mark.holder()}"


class HaltWatcher:
    """A thread that sets `event` when a halt for this run appears, or `takeover` says why the
    drill must stop (someone else changed what it holds); `by` then names which."""

    def __init__(
        self,
        world: World,
        target: str,
        run_id: str,
        event: threading.Event,
        takeover: Callable[[], str | None] | None = None,
    ) -> None:
        self.world = world
        self.target = target
        self.run_id = run_id
        self.event = event
        self.takeover = takeover
        self.reason = ""
        self.by = "halt"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="halt-watcher", daemon=True)

    def start(self) -> HaltWatcher:
        halt_file(self.target).unlink(missing_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        halt_file(self.target).unlink(missing_ok=True)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            path = halt_file(self.target)
            if path.exists():
                self.reason = f"halt requested by {path.read_text(encoding='utf-8').split()[0]}"
                self.event.set()
                return
            try:
                mark = held_by(self.world)
            except Exception:
                continue
            if mark is not None and mark.run == self.run_id and mark.halt:
                self.reason = f"halt requested by {mark.halt}"
                self.event.set()
                return
            try:
                why = self.takeover() if self.takeover is not None else None
            except Exception:
                continue  # an unreadable row is the steps' problem, not a takeover
            if why:
                self.reason, self.by = why, "takeover"
                self.event.set()
                return
