"""One drill at a time per target: a lock on the target (the controls' reason) and on this disk."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import IO

from omnidrill.chaos.controlstore import CONTROLS
from omnidrill.chaos.ledger import state_dir
from omnidrill.chaos.marks import Mark, parse_mark
from omnidrill.chaos.undo import World
from omnidrill.errors import RunRefused


class LocalLock:
    """An flock per target, so two runs on this machine never race for the remote lock."""

    def __init__(self, target: str) -> None:
        self.path = state_dir() / "locks" / f"{target}.lock"
        self._f: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            who = _holder(f.read())
            f.close()
            target = self.path.stem
            raise RunRefused(
                f"target {target!r} is held by another run on this machine: {who}. If that run "
                f"is still going, wait or `omnidrill halt --target {target}`."
            ) from None
        f.seek(0)
        f.truncate()
        since = time.time()
        f.write(
            json.dumps({"pid": os.getpid(), "since": since, "argv": " ".join(sys.argv[1:])[:200]})
            + "\n"
        )
        f.flush()
        self._f = f

    def release(self) -> None:
        if self._f is not None:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()
            self._f = None


def _holder(text: str) -> str:
    """Who the lock file names: pid, since when, what it runs."""
    try:
        data = json.loads(text)
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(data["since"])))
        return f"pid {data['pid']}, since {since} (omnidrill {data.get('argv', '')})"
    except (ValueError, KeyError, TypeError):
        return text.strip() or "another omnidrill process"


def held_by(world: World) -> Mark | None:
    """The mark of the run that holds the target, if any."""
    return parse_mark(world.controls().get("reason"))


def refuse_if_held(world: World, target: str) -> None:
    mark = held_by(world)
    if mark is not None:
        raise RunRefused(
            f"target {target!r} is held by {mark.holder()}. If that run is still going, wait or "
            f"`omnidrill halt --target {target}`; if it died, `omnidrill recover --target "
            f"{target}` restores what it changed."
        )


def take(world: World, mark: Mark) -> None:
    """Write the mark, then read it back: another machine may have written in between."""
    world.store.patch_row(CONTROLS, world.row_id, {"reason": mark.text()})
    now = held_by(world)
    if now is None or now.run != mark.run:
        who = now.holder() if now else "nobody (the mark did not stick)"
        raise RunRefused(f"could not take the lock on the target: it is held by {who}")


def halt_file(target: str) -> Path:
    return state_dir() / "halt" / f"{target}"
