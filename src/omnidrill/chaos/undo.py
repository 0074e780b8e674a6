"""Undos: how each kind of change is put back, shared by the engine and `omnidrill recover`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnidrill.chaos.controlstore import CONTROLS, ControlStore
from omnidrill.chaos.marks import parse_mark


@dataclass
class World:
    """The target's changeable parts: the control tables and the fault proxy."""

    store: ControlStore
    row_id: str
    faults: Any  # omnidrill.faults.client.FaultClient, or None when the profile has none

    def controls(self) -> dict[str, Any]:
        row = self.store.get_row(CONTROLS, self.row_id)
        if row is None:
            from omnidrill.chaos.controlstore import ControlStoreError

            raise ControlStoreError(f"the emergency_controls row {self.row_id} does not exist")
        return row


def apply_undo(world: World, kind: str, params: dict[str, Any]) -> str:
    """Run one undo; return what was done, raise on failure."""
    if kind == "controls.restore":
        world.store.patch_row(CONTROLS, world.row_id, params["values"])
        return f"controls restored: {params['values']}"
    if kind == "lock.release":
        row = world.controls()
        mark = parse_mark(row.get("reason"))
        if mark is None or mark.run != params["run"]:
            return "lock already released"
        world.store.patch_row(CONTROLS, world.row_id, {"reason": params["reason"]})
        return f"lock released, reason restored to {params['reason']!r}"
    if kind == "fault.enable":
        _need_faults(world).set_enabled(params["proxy"], bool(params["enabled"]))
        return f"proxy {params['proxy']} enabled={params['enabled']}"
    if kind == "toxic.remove":
        _need_faults(world).remove_toxic(params["proxy"], params["name"], missing_ok=True)
        return f"toxic {params['name']} removed from {params['proxy']}"
    if kind == "monitors.unmute":
        from omnidrill.observe.drill_events import unmute

        done = unmute(params["downtime_ids"])
        return f"Datadog downtimes cancelled: {', '.join(done) or 'none'}"
    raise ValueError(f"unknown undo kind {kind!r}")


def _need_faults(world: World) -> Any:
    if world.faults is None:
        raise RuntimeError("the profile names no fault proxy (faults.toxiproxy_url)")
    return world.faults
