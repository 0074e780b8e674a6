"""Undos: how each kind of change is put back, shared by the engine and `omnidrill recover`.

Every undo is a compare-and-set: it puts a value back only while the target still holds what
the drill left there (and the controls row still carries the drill's mark). A change someone
else made since is left alone and reported as a conflict, naming the field, the value the
drill set, the value found and who changed it. Writes are atomic where the store allows (a
PostgREST PATCH filtered on the values just read; `UPDATE ... WHERE` in Postgres).

`assess` only looks; `apply_undo` looks, then writes. With `stale` (a ledger left by a run
that is no longer running), a change whose mark is gone and whose values are no longer the
drill's was undone elsewhere (by `recover` on another machine): nothing is left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omnidrill.chaos.conflicts import Conflict
from omnidrill.chaos.controlstore import APPROVALS, CONTROLS, ControlStore, ControlStoreError
from omnidrill.chaos.ledger import Undo
from omnidrill.chaos.marks import parse_mark

CAS_ATTEMPTS = 3  # a row that changes between each read and write this often is left alone


@dataclass
class World:
    """The target's changeable parts: the control tables and the fault proxy."""

    store: ControlStore
    row_id: str
    faults: Any  # omnidrill.faults.client.FaultClient, or None when the profile has none
    decided: dict[str, str] = field(default_factory=dict)  # approvals this process decided

    def controls(self) -> dict[str, Any]:
        row = self.store.get_row(CONTROLS, self.row_id)
        if row is None:
            raise ControlStoreError(f"the emergency_controls row {self.row_id} does not exist")
        return row


@dataclass
class UndoResult:
    """What an undo did (`done`), found already done (`already`), or left alone (`conflict`).

    `todo` only comes from `assess`: the change is still there and the undo may run.
    """

    status: str
    note: str
    conflicts: list[Conflict] = field(default_factory=list)
    not_cleaned: list[str] = field(default_factory=list)  # what no undo can take back

    def text(self) -> str:
        if not self.conflicts:
            return self.note
        return f"{self.note}: " + "; ".join(c.text() for c in self.conflicts)


Handler = Callable[[World, Undo, bool, bool], UndoResult]


def assess(world: World, undo: Undo, stale: bool = False) -> UndoResult:
    """What the undo would do now (`todo`, `already`, `conflict`), without writing anything."""
    return _handler(undo.kind)(world, undo, stale, False)


def apply_undo(world: World, undo: Undo, stale: bool = False) -> UndoResult:
    """Run one undo as a compare-and-set; raise when the target cannot be read or written."""
    return _handler(undo.kind)(world, undo, stale, True)


def _handler(kind: str) -> Handler:
    handler = HANDLERS.get(kind)
    if handler is None:
        raise ValueError(f"unknown undo kind {kind!r}")
    return handler


def _owned(row: dict[str, Any], run: str) -> bool:
    mark = parse_mark(row.get("reason"))
    return mark is not None and mark.run == run


def _mark_text(run: str) -> str:
    return f"the lock of run {run} (omnidrill-lock ...)"


# --- controls ---------------------------------------------------------------------------------


def _controls_restore(world: World, undo: Undo, stale: bool, write: bool) -> UndoResult:
    values: dict[str, Any] = undo.params["values"]
    expect: dict[str, Any] | None = undo.params.get("expect")
    for _ in range(CAS_ATTEMPTS):
        row = world.controls()
        plan = _controls_plan(row, values, expect, undo.run, stale)
        if plan.status != "todo" or not write:
            return plan.result
        # Compare on everything just read that matters: the fields, the author, the mark.
        guard = {k: row.get(k) for k in [*plan.restore, "updated_by", "reason"] if k in row}
        if world.store.patch_row_if(CONTROLS, world.row_id, guard, plan.restore) is not None:
            shown = {k: v for k, v in plan.restore.items() if k != "updated_by"}
            note = f"controls restored: {shown}"
            if plan.result.conflicts:
                return UndoResult("conflict", note + "; left alone", plan.result.conflicts)
            return UndoResult("done", note)
    row = world.controls()
    return UndoResult(
        "conflict",
        f"the controls row changed under each of {CAS_ATTEMPTS} attempts; nothing restored",
        [_who(Conflict("emergency_controls", "*", values, "changing"), row)],
    )


@dataclass
class _Plan:
    status: str
    result: UndoResult
    restore: dict[str, Any] = field(default_factory=dict)


def _controls_plan(
    row: dict[str, Any],
    values: dict[str, Any],
    expect: dict[str, Any] | None,
    run: str,
    stale: bool,
) -> _Plan:
    """Which fields still hold the drill's values (restore), are back, or are someone else's."""
    back = {f for f, v in values.items() if row.get(f) == v}
    if back == set(values):
        return _Plan("already", UndoResult("already", "controls already hold the values before"))
    owned = _owned(row, run)
    if expect is None:  # an undo registered without expectations: only the mark vouches
        expect = {f: row.get(f) for f in values} if owned else {}
    ours = {f for f in values if f not in back and f in expect and row.get(f) == expect[f]}
    theirs = [f for f in values if f not in back and f not in ours]
    now = {f: row.get(f) for f in values if f not in back}
    if not owned:
        if stale and (not expect or any(row.get(f) != v for f, v in expect.items())):
            note = f"already undone elsewhere: the mark of run {run} is gone, the row now {now}"
            return _Plan("already", UndoResult("already", note))
        conflicts = [_who(Conflict("emergency_controls", "reason", _mark_text(run), None), row)]
        conflicts[0].found = row.get("reason")
        conflicts += [_field_conflict(row, f, expect) for f in theirs]
        note = f"not restored (someone else holds the controls now): {now}"
        return _Plan("conflict", UndoResult("conflict", note, conflicts))
    if "updated_by" in theirs:  # someone else wrote the row: nothing of it is put back
        conflicts = [_field_conflict(row, f, expect) for f in theirs]
        note = f"not restored (the row was written by {row.get('updated_by')!r} since): {now}"
        return _Plan("conflict", UndoResult("conflict", note, conflicts))
    restore = {f: values[f] for f in ours if f != "updated_by"}
    if not theirs and "updated_by" in ours:  # the author goes back only with every field
        restore["updated_by"] = values["updated_by"]
    conflicts = [_field_conflict(row, f, expect) for f in theirs]
    if not restore:
        note = f"not restored (changed by someone else): {now}"
        return _Plan("conflict", UndoResult("conflict", note, conflicts))
    return _Plan("todo", UndoResult("todo", f"restore {restore}", conflicts), restore)


def _field_conflict(row: dict[str, Any], f: str, expect: dict[str, Any]) -> Conflict:
    return _who(Conflict("emergency_controls", f, expect.get(f), row.get(f)), row)


def _who(c: Conflict, row: dict[str, Any]) -> Conflict:
    c.updated_by = row.get("updated_by")
    reason = row.get("reason")
    c.reason = None if parse_mark(reason) is not None or c.field == "reason" else reason
    return c


def _lock_release(world: World, undo: Undo, stale: bool, write: bool) -> UndoResult:
    prev = undo.params.get("reason")
    run = str(undo.params.get("run") or undo.run)
    for _ in range(CAS_ATTEMPTS):
        row = world.controls()
        reason = row.get("reason")
        if reason == prev:
            return UndoResult("already", "lock already released")
        if not _owned(row, run):
            if stale or parse_mark(reason) is not None:
                return UndoResult(
                    "already", f"lock already released elsewhere (reason now {reason!r})"
                )
            c = _who(Conflict("emergency_controls", "reason", _mark_text(run), reason), row)
            return UndoResult("conflict", "the lock's mark was replaced; reason left as found", [c])
        if not write:
            return UndoResult("todo", f"release the lock (reason back to {prev!r})")
        if world.store.patch_row_if(CONTROLS, world.row_id, {"reason": reason}, {"reason": prev}):
            return UndoResult("done", f"lock released, reason restored to {prev!r}")
    return UndoResult("conflict", "the lock's mark kept changing; left as found")


# --- the fault proxy --------------------------------------------------------------------------


def _fault_enable(world: World, undo: Undo, stale: bool, write: bool) -> UndoResult:
    faults = _need_faults(world)
    name = str(undo.params["proxy"])
    prev = bool(undo.params["enabled"])
    left: dict[str, Any] | None = undo.params.get("left")  # the proxy as the cut left it
    proxy = faults.proxies().get(name)
    where = f"proxy {name}"
    if proxy is None:
        state = "disabled" if left else f"enabled={prev}"
        return UndoResult("conflict", "left alone", [Conflict(where, "proxy", state, "deleted")])
    if left is None:  # registered without what the cut left: put the state back as before
        if bool(proxy.get("enabled")) == prev:
            return UndoResult("already", f"proxy {name} already enabled={prev}")
        return _set_enabled(faults, name, prev, write)
    moved = [
        Conflict(where, k, left[k], proxy.get(k))
        for k in ("upstream", "listen")
        if k in left and proxy.get(k) != left[k]
    ]
    if moved:
        return UndoResult("conflict", f"proxy {name} left as found", moved)
    if bool(proxy.get("enabled")) == bool(left.get("enabled")):
        if bool(proxy.get("enabled")) == prev:
            return UndoResult("already", f"proxy {name} already enabled={prev}")
        return _set_enabled(faults, name, prev, write)
    if stale:
        return UndoResult("already", f"proxy {name} already enabled={proxy.get('enabled')}")
    c = Conflict(where, "enabled", left.get("enabled"), proxy.get("enabled"))
    return UndoResult("conflict", f"proxy {name} was changed by someone else; left as found", [c])


def _set_enabled(faults: Any, name: str, enabled: bool, write: bool) -> UndoResult:
    if not write:
        return UndoResult("todo", f"proxy {name} enabled={enabled}")
    # Toxiproxy has no conditional update: the read just before is the compare.
    faults.set_enabled(name, enabled)
    return UndoResult("done", f"proxy {name} enabled={enabled}")


def _toxic_remove(world: World, undo: Undo, stale: bool, write: bool) -> UndoResult:
    faults = _need_faults(world)
    proxy, name = str(undo.params["proxy"]), str(undo.params["name"])
    added: dict[str, Any] | None = undo.params.get("toxic")  # what the drill asked for
    found = next((t for t in _toxics_or_none(faults, proxy) if t.get("name") == name), None)
    if found is None:
        return UndoResult("already", f"toxic {name} already gone from {proxy}")
    if added is not None:
        where = f"toxic {name} on {proxy}"
        conflicts = [
            Conflict(where, k, added[k], found.get(k))
            for k in ("type", "stream", "toxicity")
            if k in added and found.get(k) != added[k]
        ]
        shown = found.get("attributes") or {}
        conflicts += [
            Conflict(where, f"attributes.{k}", v, shown.get(k))
            for k, v in (added.get("attributes") or {}).items()
            if shown.get(k) != v
        ]
        if conflicts:
            return UndoResult("conflict", f"toxic {name} was changed by someone else", conflicts)
    if not write:
        return UndoResult("todo", f"remove toxic {name} from {proxy}")
    faults.remove_toxic(proxy, name, missing_ok=True)
    return UndoResult("done", f"toxic {name} removed from {proxy}")


def _toxics_or_none(faults: Any, proxy: str) -> list[dict[str, Any]]:
    from omnidrill.faults.client import FaultAPIError

    try:
        return list(faults.toxics(proxy))
    except FaultAPIError as exc:
        if exc.status == 404:  # the proxy itself is gone: so is the toxic
            return []
        raise


def _need_faults(world: World) -> Any:
    if world.faults is None:
        raise RuntimeError("the profile names no fault proxy (faults.toxiproxy_url)")
    return world.faults


# --- Datadog downtimes ------------------------------------------------------------------------


def _monitors_unmute(world: World, undo: Undo, stale: bool, write: bool) -> UndoResult:
    from omnidrill.observe.drill_events import downtimes_now, unmute

    ids = [str(i) for i in undo.params.get("downtime_ids") or []]
    made: dict[str, dict[str, Any]] = undo.params.get("downtimes") or {}
    now = downtimes_now(ids)
    live = [i for i in ids if now.get(i) is not None and now[i].get("status") != "canceled"]
    conflicts = [
        Conflict(f"downtime {i}", k, v, now[i].get(k))
        for i in live
        for k, v in made.get(i, {}).items()
        if now[i].get(k) != v
    ]
    changed = {c.where.removeprefix("downtime ") for c in conflicts}
    todo = [i for i in live if i not in changed]
    if not todo:
        if conflicts:
            return UndoResult("conflict", "downtimes changed by someone else, left", conflicts)
        return UndoResult("already", "Datadog downtimes already cancelled or ended")
    if not write:
        return UndoResult("todo", f"cancel Datadog downtimes {', '.join(todo)}", conflicts)
    done = unmute(todo)
    note = f"Datadog downtimes cancelled: {', '.join(done) or 'none'}"
    return UndoResult("conflict" if conflicts else "done", note, conflicts)


# --- approvals the drill's trades created -----------------------------------------------------


def _approvals_reject(world: World, undo: Undo, stale: bool, write: bool) -> UndoResult:
    """Reject what the drill's trades left pending. A row someone else decided since is theirs:
    a conflict, and listed as not cleaned (a decision is final)."""
    run = str(undo.params.get("run") or undo.run)
    done: list[str] = []
    todo: list[str] = []
    conflicts: list[Conflict] = []
    left: list[str] = []
    for row in _approval_rows(world.store, undo.params):
        aid = str(row.get("id"))
        if row.get("status") == "pending":
            if not write:
                todo.append(aid)
                continue
            if _reject(world.store, row, run):
                done.append(aid)
                continue
            row = world.store.get_row(APPROVALS, aid) or row  # decided in between
        status = row.get("status")
        if status in ("pending", "expired") or world.decided.get(aid) == status:
            continue  # settled by its TTL, or by the drill's own approval.set
        if _decided_by_run(row, run):
            continue
        c = Conflict(f"approval {aid}", "status", "pending", status, row.get("decided_by"))
        c.reason = row.get("reason")
        conflicts.append(c)
        who = row.get("decided_by") or "someone else"
        what = f"{row.get('risk_level')}, {row.get('amount_usd')} USD"
        left.append(f"approval {aid} ({what}): {status} by {who}")
    if todo:
        return UndoResult("todo", f"reject pending approvals {', '.join(todo)}", conflicts, left)
    note = (
        f"pending approvals rejected: {', '.join(done)}"
        if done
        else "no approval of this drill is pending"
    )
    status = "conflict" if conflicts else "done" if done else "already"
    return UndoResult(status, note, conflicts, left)


def _approval_rows(store: ControlStore, params: dict[str, Any]) -> list[dict[str, Any]]:
    if params.get("id"):
        row = store.get_row(APPROVALS, str(params["id"]))
        return [row] if row else []
    return store.find_rows(APPROVALS, "user_id", str(params["user_id"]))


def _reject(store: ControlStore, row: dict[str, Any], run: str) -> bool:
    values: dict[str, Any] = {"status": "rejected"}
    # Columns beyond the contract's, where the target has them, name the run.
    if "reason" in row:
        values["reason"] = f"omnidrill run {run}: a drill's request, rejected in its clean-up"
    if "decided_by" in row:
        values["decided_by"] = f"omnidrill {run}"
    return store.patch_row_if(APPROVALS, str(row["id"]), {"status": "pending"}, values) is not None


def _decided_by_run(row: dict[str, Any], run: str) -> bool:
    return any(run in str(row.get(k) or "") for k in ("decided_by", "reason"))


HANDLERS: dict[str, Handler] = {
    "controls.restore": _controls_restore,
    "lock.release": _lock_release,
    "fault.enable": _fault_enable,
    "toxic.remove": _toxic_remove,
    "monitors.unmute": _monitors_unmute,
    "approvals.reject": _approvals_reject,
}
