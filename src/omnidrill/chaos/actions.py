"""Actions: each change registers its undo in the ledger before it is made, then is seen to work."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from omnidrill.chaos import httpfaults
from omnidrill.chaos.controlstore import APPROVALS, CONTROLS
from omnidrill.chaos.faultside import calls_mark
from omnidrill.chaos.marks import RESTORABLE, parse_mark, snapshot, toxic_name
from omnidrill.chaos.models import (
    HTTP_TOXICS,
    ApprovalSet,
    ControlsSet,
    FaultCut,
    FaultRestore,
    FaultToxic,
    HttpRequest,
    RequestSpec,
    Wait,
)
from omnidrill.chaos.requests import result_of, send_round, start_traffic
from omnidrill.chaos.runtime import (
    DrillAborted,
    DrillInconclusive,
    Runtime,
    StepNotRun,
    StepResult,
)
from omnidrill.chaos.undo import apply_undo
from omnidrill.netutil import split_hostport

PAUSE_ENV = "OMNIDRILL_TEST_PAUSE_AT"  # test hook: "N" pauses in the Nth state-changing step
PAUSE_FILE_ENV = "OMNIDRILL_TEST_PAUSE_FILE"  # touched when paused


def pause_hook(rt: Runtime) -> None:
    """Test-only: stop inside a state-changing step (after the change) until killed."""
    want = os.environ.get(PAUSE_ENV)
    rt.changes += 1
    if not want or int(want) != rt.changes:
        return
    flag = os.environ.get(PAUSE_FILE_ENV)
    if flag:
        Path(flag).write_text(f"{os.getpid()} paused in change {rt.changes}\n", encoding="utf-8")
    while True:
        time.sleep(0.2)


# --- controls --------------------------------------------------------------------------------


def do_controls_set(rt: Runtime, step: ControlsSet, res: StepResult) -> None:
    with rt.writing:  # the guardrail does not mistake the drill's own write for someone else's
        before = rt.world.controls()
        taken = takeover_in(rt, before)
        if taken:
            raise DrillAborted(taken, "takeover")
        old = {k: before.get(k) for k in step.set}
        marker = f"omnidrill {rt.run_id} #{len(rt.undos) + 1}"
        new = {**step.set, "updated_by": marker}
        rt.register_undo(
            "controls.restore",
            {"values": {**old, "updated_by": before.get("updated_by")}, "expect": new},
            f"restore {', '.join(f'{k}={v!r}' for k, v in old.items())}",
        )
        audit_before = _audit_ids(rt) if step.id else None
        changed_at = time.time()
        # A compare-and-set too: what the drill read is what it changes, or nothing.
        guard = {k: before.get(k) for k in [*step.set, "updated_by"] if k in before}
        after = None
        for _ in range(3):  # a halt rewriting the mark in between is not someone else
            guard["reason"] = before.get("reason")
            after = rt.world.store.patch_row_if(CONTROLS, rt.world.row_id, guard, new)
            if after is not None:
                break
            before = rt.world.controls()
            moved = {k: before.get(k) for k, v in guard.items() if k != "reason"}
            if takeover_in(rt, before) or moved != {
                k: v for k, v in guard.items() if k != "reason"
            }:
                break
        if after is None:
            raise DrillAborted(
                takeover_in(rt, before)
                or "someone else changed the controls row while the drill was changing it "
                f"(updated_by {before.get('updated_by')!r}, reason {before.get('reason')!r})",
                "takeover",
            )
        rt.held.update(new)
    rt.mark_changed()
    res.detail.update({"set": step.set, "old": old, "after": _shown(after)})
    if step.id:
        rt.results[step.id] = {
            "set": step.set,
            "old": old,
            "updated_by": marker,
            "at": changed_at,
            "audit_before": audit_before,
        }
    res.verdict = "done"
    pause_hook(rt)


def takeover_in(rt: Runtime, row: dict[str, Any], held: dict[str, Any] | None = None) -> str | None:
    """Why the controls row is no longer the drill's to change, or None while it is."""
    held = rt.held if held is None else held
    mark = parse_mark(row.get("reason"))
    who = f"updated_by {row.get('updated_by')!r}"
    if mark is None or mark.run != rt.run_id:
        return (
            f"someone else took the wheel: the drill's mark is gone from the controls' reason "
            f"(now {row.get('reason')!r}, {who})"
        )
    changed = {k: row.get(k) for k, v in held.items() if row.get(k) != v}
    if changed:
        return (
            "someone else took the wheel: controls the drill holds were changed "
            + ", ".join(f"{k}={v!r} (the drill set {held[k]!r})" for k, v in changed.items())
            + f" ({who})"
        )
    return None


def _audit_ids(rt: Runtime) -> list[Any] | None:
    """Ids of the audit rows already there, so `audit.changed` counts only this change's rows
    (an earlier drill may have made the same change seconds ago); None when unreadable."""
    try:
        return [r.get("id") for r in rt.world.store.audit_rows(200) if r.get("id") is not None]
    except Exception:  # the audit check itself will say what is wrong with the audit log
        return None


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snapshot(row).items() if k != "reason"}


# --- faults ----------------------------------------------------------------------------------


def _faults(rt: Runtime) -> Any:
    if rt.world.faults is None:
        raise StepNotRun("the profile has no fault proxy (faults.toxiproxy_url)")
    return rt.world.faults


def listen_address(rt: Runtime, proxy: str) -> tuple[str, int]:
    spec = rt.profile.proxy(proxy)
    if spec is None:
        raise StepNotRun(f"the profile offers no proxy {proxy!r}")
    host, port = split_hostport(spec.listen)
    if host in ("0.0.0.0", "::", ""):
        host = urlsplit(rt.profile.faults.toxiproxy_url).hostname or "127.0.0.1"
    return host, port


def _refuses(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except OSError:
        return True


def do_fault_cut(rt: Runtime, step: FaultCut, res: StepResult) -> None:
    faults = _faults(rt)
    host, port = listen_address(rt, step.proxy)
    proxy = faults.get_proxy(step.proxy)
    prev = bool(proxy.get("enabled", True))
    left = {"enabled": False, "upstream": proxy.get("upstream"), "listen": proxy.get("listen")}
    rt.register_undo(
        "fault.enable",
        {"proxy": step.proxy, "enabled": prev, "left": left},
        f"re-enable proxy {step.proxy}",
    )
    faults.set_enabled(step.proxy, False)
    rt.mark_changed()
    deadline = time.monotonic() + 2.0
    while not _refuses(host, port):
        if time.monotonic() > deadline:
            raise DrillInconclusive(
                f"proxy {step.proxy} was disabled but {host}:{port} still accepts connections: "
                "the cut did not take effect"
            )
        time.sleep(0.05)
    rt.active_faults[step.proxy] = {
        "kind": "cut",
        "what": "cut",
        "blocks": True,
        "calls_mark": calls_mark(rt, step.proxy),
    }
    res.detail["verified"] = f"{host}:{port} refuses connections"
    res.verdict = "done"
    pause_hook(rt)


def do_fault_restore(rt: Runtime, step: FaultRestore, res: StepResult) -> None:
    """Run the drill's own undos of this proxy (its toxics, then its cut), compare-and-set."""
    _faults(rt)
    mine = [
        u
        for u in reversed(rt.undos)
        if u.kind in ("toxic.remove", "fault.enable") and u.params.get("proxy") == step.proxy
    ]
    mine.sort(key=lambda u: u.kind != "toxic.remove")  # toxics first, then the cut
    did, conflicts = [], []
    for undo in mine:
        result = apply_undo(rt.world, undo)
        rt.settle_undo(undo, result, by="fault.restore: ")
        did.append(result.text())
        conflicts += result.conflicts
    rt.mark_changed()
    rt.active_faults.pop(step.proxy, None)
    res.detail.update({"did": did})
    if conflicts:
        raise DrillInconclusive(
            f"proxy {step.proxy} was changed by someone else while the drill held it: "
            + "; ".join(c.text() for c in conflicts)
        )
    if bool(_faults(rt).get_proxy(step.proxy).get("enabled")):
        host, port = listen_address(rt, step.proxy)
        deadline = time.monotonic() + 2.0
        while _refuses(host, port):
            if time.monotonic() > deadline:
                raise DrillInconclusive(f"proxy {step.proxy} was enabled but refuses connections")
            time.sleep(0.05)
    res.verdict = "done"
    pause_hook(rt)


def do_fault_toxic(rt: Runtime, step: FaultToxic, res: StepResult) -> None:
    faults = _faults(rt)
    host, port = listen_address(rt, step.proxy)
    name = toxic_name(rt.run_id, f"{step.proxy}-{step.type}-{len(rt.undos) + 1}")
    added = {
        "type": step.type,
        "stream": step.stream,
        "toxicity": step.toxicity,
        "attributes": step.attributes,
    }
    rt.register_undo(
        "toxic.remove", {"proxy": step.proxy, "name": name, "toxic": added}, f"remove toxic {name}"
    )
    httpfaults.add(faults, step, name)
    rt.mark_changed()
    res.detail["toxic"] = name
    if step.type in HTTP_TOXICS:
        rt.active_faults[step.proxy] = {
            **httpfaults.fault_record(step.type, step.attributes, step.toxicity),
            "calls_mark": calls_mark(rt, step.proxy),
            "provider_marks": httpfaults.provider_marks(rt),
        }
        httpfaults.verify(host, port, step.type, step.attributes, step.toxicity, res)
        res.verdict = "done"
        pause_hook(rt)
        return
    latency_ms = step.attributes.get("latency", 0) if step.type == "latency" else 0
    rpc_timeout = rt.profile.limits.rpc_timeout_ms
    blocks = step.type in ("timeout", "reset_peer") or latency_ms >= rpc_timeout
    rt.active_faults[step.proxy] = {
        "kind": "toxic",
        "what": f"under a {step.type} toxic {step.attributes}",
        "blocks": blocks and step.toxicity >= 1.0,
        "delay_s": latency_ms / 1000,
        "calls_mark": calls_mark(rt, step.proxy),
    }
    if step.type == "latency" and latency_ms and step.toxicity >= 1.0:
        # The probe takes as long as the latency: it runs beside the next check, which must
        # look within its bound of the change, and is settled before any verdict is given.
        probe = rt.pool.submit(_first_byte_delay, host, port, latency_ms / 1000 + 3.0)

        def settle() -> None:
            took = probe.result()
            res.detail["verified_delay_s"] = None if took is None else round(took, 3)
            if took is None or took < 0.8 * latency_ms / 1000:
                shown = "no answer" if took is None else f"{took * 1000:.0f} ms"
                raise DrillInconclusive(
                    f"toxic {name} on {step.proxy}: a probe through {host}:{port} answered in "
                    f"{shown}, not slowed by {latency_ms} ms: the toxic did not take effect"
                )

        rt.verifications.append((probe, settle))
    else:
        res.evidence.append(f"the effect of a {step.type} toxic is not probed directly")
    res.verdict = "done"
    pause_hook(rt)


def _first_byte_delay(host: str, port: int, timeout: float) -> float | None:
    """Seconds until the first byte (or close) of an answer through the proxy."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.recv(1)
    except OSError:
        return None
    return time.monotonic() - t0


# --- approvals -------------------------------------------------------------------------------


def do_approval_set(rt: Runtime, step: ApprovalSet, res: StepResult) -> None:
    approval_id = str(rt.resolve(step.approval))
    # Decisions are final (a decided approval cannot go back to pending), so a drill only
    # decides approvals its own requests created: nothing of anyone else's is ever changed.
    if not _created_here(rt, approval_id):
        raise StepNotRun(
            f"approval {approval_id} was not created by this drill's requests; omnidrill only "
            "decides its own approvals"
        )
    row = rt.world.store.get_row(APPROVALS, approval_id)
    if row is None:
        raise StepNotRun(f"approval_queue has no row {approval_id}")
    values: dict[str, Any] = {"status": step.status}
    if "decided_by" in row:  # beyond the contract's columns: where there, it names the run
        values["decided_by"] = f"omnidrill {rt.run_id}"
    after = rt.world.store.patch_row_if(APPROVALS, approval_id, {"status": "pending"}, values)
    if after is None:
        now = rt.world.store.get_row(APPROVALS, approval_id) or {}
        raise DrillInconclusive(
            f"approval {approval_id} was decided by someone else before the drill could "
            f"({now.get('status')!r}, decided_by {now.get('decided_by')!r}); it was left as is"
        )
    rt.world.decided[approval_id] = step.status
    rt.mark_changed()
    res.detail.update(
        {"approval": approval_id, "was": row.get("status"), "now": after.get("status")}
    )
    if step.id:
        rt.results[step.id] = {"id": approval_id, "status": step.status}
    res.verdict = "done"
    pause_hook(rt)


def _created_here(rt: Runtime, approval_id: str) -> bool:
    for result in rt.results.values():
        body = result.get("body") if isinstance(result, dict) else None
        if isinstance(body, dict) and body.get("approval_id") == approval_id:
            return True
    return False


# --- requests and waiting --------------------------------------------------------------------


def guard_rest_write(rt: Runtime, spec: RequestSpec, step_id: str | None) -> None:
    """A write to the controls table (S1 probes) may succeed on a faulty target: undo first."""
    if spec.path is None or (spec.method or "GET") == "GET":
        return
    table_path = spec.path if spec.base == "controls" else spec.path.removeprefix("/rest/v1")
    if not table_path.startswith("/emergency_controls"):
        return
    row = rt.world.controls()
    if step_id:
        rt.pre_step_rows[step_id] = {k: v for k, v in row.items() if k != "updated_at"}
    body = rt.resolve(spec.body) if isinstance(spec.body, dict) else None
    fields = [k for k in (body or {}) if k in RESTORABLE and k != "reason"]
    params: dict[str, Any]
    if body is not None and fields:  # the probe's own values are what the undo may take back
        params = {"values": {k: row.get(k) for k in fields}, "expect": {k: body[k] for k in fields}}
    else:
        params = {"values": {k: v for k, v in snapshot(row).items() if k != "reason"}}
    rt.register_undo("controls.restore", params, "restore controls after a probe")
    rt.probing = dict(params.get("expect") or {})  # the guardrail tells it from a takeover


def do_http_request(rt: Runtime, step: HttpRequest, res: StepResult) -> None:
    guard_rest_write(rt, step, step.id)
    st = start_traffic(rt, step)
    answers = send_round(rt, step, st, source="action")
    res.add_requests([a.summary() for a in answers])
    if step.id:
        rt.results[step.id] = result_of(answers, st)
    res.verdict = "done"


def do_wait(rt: Runtime, step: Wait, res: StepResult) -> None:
    rt.sleep(step.duration)
    res.verdict = "done"


ACTION_RUNNERS: dict[str, Callable[[Runtime, Any, StepResult], None]] = {
    "controls.set": do_controls_set,
    "fault.cut": do_fault_cut,
    "fault.restore": do_fault_restore,
    "fault.toxic": do_fault_toxic,
    "approval.set": do_approval_set,
    "http.request": do_http_request,
    "wait": do_wait,
}
