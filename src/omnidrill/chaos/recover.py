"""`omnidrill recover`: undo what a dead run left, from the ledger and from marks on the target."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from omnidrill import secrets
from omnidrill.chaos.controlstore import CONTROLS
from omnidrill.chaos.ledger import Ledger
from omnidrill.chaos.marks import TOXIC_PREFIX, parse_mark
from omnidrill.chaos.undo import World, apply_undo
from omnidrill.errors import ExitCode, RunRefused


@dataclass
class Recovery:
    did: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return int(ExitCode.ROLLBACK_FAILED if self.failed else ExitCode.OK)


def _alive_here(host: str, pid: int) -> bool:
    if host != socket.gethostname() or pid <= 0 or pid == os.getpid():
        return False  # elsewhere (cannot tell), or this very process, whose run has returned
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(world: World, ledger: Ledger, target: str, proxy_names: list[str]) -> Recovery:
    """Run every pending undo in reverse, then undo what the marks on the target still show."""
    rec = Recovery()
    row = world.controls()
    mark = parse_mark(row.get("reason"))
    if mark is not None and _alive_here(mark.host, mark.pid):
        raise RunRefused(
            f"target {target!r} is held by {mark.holder()}, which is still running here: "
            f"use `omnidrill halt --target {target}` to make it roll back"
        )
    for undo in reversed(ledger.pending()):
        try:
            note = apply_undo(world, undo.kind, undo.params)
            ledger.done(undo, f"recover: {note}")
            rec.did.append(f"ledger, run {undo.run}: {note}")
        except Exception as exc:
            rec.failed.append(secrets.scrub(f"{undo.describe()}: {type(exc).__name__}: {exc}"))
    # The marks: what a run on a machine whose ledger is gone still left on the target.
    row = world.controls()
    mark = parse_mark(row.get("reason"))
    if mark is not None:
        try:
            world.store.patch_row(CONTROLS, world.row_id, dict(mark.prev))
            rec.did.append(f"target mark of {mark.holder()}: controls restored to {mark.prev}")
        except Exception as exc:
            rec.failed.append(secrets.scrub(f"restore controls from the mark: {exc}"))
    if world.faults is not None:
        shown = world.faults.proxies()
        for name in proxy_names:
            proxy = shown.get(name)
            if proxy is None:
                continue
            want = mark.proxies.get(name, True) if mark is not None else None
            if want is not None and bool(proxy.get("enabled")) != want:
                try:
                    world.faults.set_enabled(name, want)
                    rec.did.append(f"proxy {name} enabled={want} (as before run {mark.run})")
                except Exception as exc:
                    rec.failed.append(secrets.scrub(f"proxy {name}: {exc}"))
            for tox in world.faults.toxics(name):
                tname = str(tox.get("name", ""))
                if tname.startswith(TOXIC_PREFIX):
                    try:
                        world.faults.remove_toxic(name, tname, missing_ok=True)
                        rec.did.append(f"toxic {tname} removed from {name}")
                    except Exception as exc:
                        rec.failed.append(secrets.scrub(f"toxic {tname} on {name}: {exc}"))
    if not rec.failed:
        ledger.compact()
    return rec
