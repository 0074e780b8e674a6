"""`omnidrill recover`: undo what a dead run left, from the ledger and from marks on the target.

Every undo is a compare-and-set (chaos/undo.py): what someone else changed since is left
alone and reported as a conflict (exit 4); what another machine already undid is marked done.
`reconcile` does the looking without writing, so that `run` refuses only when something is
left to do, and says what.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from omnidrill import secrets
from omnidrill.chaos.controlstore import CONTROLS
from omnidrill.chaos.ledger import Ledger
from omnidrill.chaos.marks import TOXIC_PREFIX, Mark, parse_mark
from omnidrill.chaos.undo import Conflict, UndoResult, World, apply_undo, assess
from omnidrill.errors import ExitCode, RunRefused


@dataclass
class Recovery:
    did: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # undone elsewhere: marked done
    conflicts: list[str] = field(default_factory=list)  # left as someone else set it
    failed: list[str] = field(default_factory=list)
    not_cleaned: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return int(ExitCode.ROLLBACK_FAILED if self.failed or self.conflicts else ExitCode.OK)

    def add(self, where: str, result: UndoResult) -> None:
        text = f"{where}: {result.text()}"
        {"done": self.did, "already": self.already}.get(result.status, self.conflicts).append(text)
        self.not_cleaned += [x for x in result.not_cleaned if x not in self.not_cleaned]


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


def recover(
    world: World,
    ledger: Ledger,
    target: str,
    proxy_names: list[str],
    upstreams: dict[str, str] | None = None,
) -> Recovery:
    """Run every pending undo in reverse, then undo what the marks on the target still show."""
    rec = Recovery()
    mark = parse_mark(world.controls().get("reason"))
    if mark is not None and _alive_here(mark.host, mark.pid):
        raise RunRefused(
            f"target {target!r} is held by {mark.holder()}, which is still running here: "
            f"use `omnidrill halt --target {target}` to make it roll back"
        )
    for undo in reversed(ledger.pending()):
        try:
            result = apply_undo(world, undo, stale=True)
        except Exception as exc:
            rec.failed.append(secrets.scrub(f"{undo.describe()}: {type(exc).__name__}: {exc}"))
            continue
        ledger.done(undo, f"recover: {result.status}: {result.text()}")
        rec.add(f"ledger, run {undo.run}, {undo.label}", result)
    # The marks: what a run on a machine whose ledger is gone still left on the target.
    mark = parse_mark(world.controls().get("reason"))
    if mark is not None:
        try:
            rec.add(f"target mark of {mark.holder()}", _from_mark(world, mark))
        except Exception as exc:
            rec.failed.append(secrets.scrub(f"restore controls from the mark: {exc}"))
    if world.faults is not None:
        _proxies_from_mark(world, rec, mark, proxy_names, upstreams or {})
    if not rec.failed:
        ledger.compact()
    return rec


def _from_mark(world: World, mark: Mark) -> UndoResult:
    """The controls back to the mark's `prev`, only where the run was the last to write them."""
    row = world.controls()
    author = str(row.get("updated_by") or "")
    prev = mark.prev
    differ = {k: row.get(k) for k, v in prev.items() if k != "reason" and row.get(k) != v}
    if differ and not author.startswith(f"omnidrill {mark.run} "):
        # Someone else wrote the row since the run (or changed it without saying who): their
        # values stay; only the run's own mark (its lock) is taken away.
        conflicts = [
            Conflict("emergency_controls", k, f"(run {mark.run}'s value: not in its mark)", v)
            for k, v in differ.items()
        ]
        for c in conflicts:
            c.updated_by = row.get("updated_by")
        released = world.store.patch_row_if(
            CONTROLS, world.row_id, {"reason": row.get("reason")}, {"reason": prev.get("reason")}
        )
        note = "lock released, controls left as found" if released else "left as found"
        return UndoResult("conflict", note, conflicts)
    values = {k: v for k, v in prev.items() if row.get(k) != v}
    guard = {k: row.get(k) for k in [*values, "updated_by", "reason"] if k in row}
    if world.store.patch_row_if(CONTROLS, world.row_id, guard, values) is None:
        return UndoResult(
            "conflict",
            "the controls row changed while it was being restored; left as found",
            [Conflict("emergency_controls", "*", prev, "changing", row.get("updated_by"))],
        )
    return UndoResult("done", f"controls restored to {prev}")


def _proxies_from_mark(
    world: World,
    rec: Recovery,
    mark: Mark | None,
    proxy_names: list[str],
    upstreams: dict[str, str],
) -> None:
    faults = world.faults
    shown = faults.proxies()
    for name in proxy_names:
        proxy = shown.get(name)
        if proxy is None:
            continue
        want = mark.proxies.get(name, True) if mark is not None else None
        if want and not proxy.get("enabled"):
            declared = upstreams.get(name)
            if declared and proxy.get("upstream") != declared:
                c = Conflict(f"proxy {name}", "upstream", declared, proxy.get("upstream"))
                rec.add(f"proxy {name}", UndoResult("conflict", "left disabled", [c]))
            else:
                try:
                    faults.set_enabled(name, True)
                    rec.did.append(f"proxy {name} enabled (as before run {mark.run})")  # type: ignore[union-attr]
                except Exception as exc:
                    rec.failed.append(secrets.scrub(f"proxy {name}: {exc}"))
        for tox in faults.toxics(name):
            tname = str(tox.get("name", ""))
            if tname.startswith(TOXIC_PREFIX):  # a run's own toxics, by name only
                try:
                    faults.remove_toxic(name, tname, missing_ok=True)
                    rec.did.append(f"toxic {tname} removed from {name}")
                except Exception as exc:
                    rec.failed.append(secrets.scrub(f"toxic {tname} on {name}: {exc}"))


def reconcile(world: World, ledger: Ledger, target: str) -> list[str]:
    """Before a run: mark done what was undone elsewhere (returned, to be said); refuse when
    something is left, sending users to `recover` only for what it will safely do."""
    settled: list[str] = []
    todo: list[str] = []
    conflicts: list[str] = []
    for undo in ledger.pending():
        try:
            result = assess(world, undo, stale=True)
        except Exception as exc:
            todo.append(f"run {undo.run}: {undo.label} (cannot check it now: {exc})")
            continue
        if result.status == "already":
            ledger.done(undo, f"reconciled before a run: {result.note}")
            settled.append(f"run {undo.run}: {undo.label}: {result.note}")
        elif result.status == "conflict":
            conflicts.append(f"run {undo.run}: {undo.label}: {result.text()}")
        else:
            todo.append(f"run {undo.run}: {undo.label} ({result.note})")
    ledger.compact()
    if not todo and not conflicts:
        return settled
    parts = []
    if todo:
        parts.append(
            f"unfinished undos for target {target!r} in {ledger.path} (a run here did not "
            "finish):\n" + "\n".join(f"  - {t}" for t in todo) + "\n"
            f"`omnidrill recover --target {target}` undoes them, each only where the target "
            "still holds what that run left."
        )
    if conflicts:
        parts.append(
            f"undos of an unfinished run that meet someone else's change on {target!r}:\n"
            + "\n".join(f"  - {c}" for c in conflicts)
            + "\nomnidrill will not overwrite them: check them by hand; `omnidrill recover "
            f"--target {target}` then clears them from {ledger.path} and changes none of them."
        )
    raise RunRefused(secrets.scrub("\n".join(parts)))
