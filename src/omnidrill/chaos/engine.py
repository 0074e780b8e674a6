"""The drill engine: steady state, lock, method, rollbacks, recovery; a verdict with evidence."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from omnidrill import secrets
from omnidrill.chaos.actions import ACTION_RUNNERS, takeover_in
from omnidrill.chaos.checks import CHECK_RUNNERS, run_http
from omnidrill.chaos.cleanup import after_rollback, left_behind
from omnidrill.chaos.client import DrillClient
from omnidrill.chaos.conflicts import conflict_text
from omnidrill.chaos.halt import HaltWatcher
from omnidrill.chaos.httpfaults import provider_marks
from omnidrill.chaos.journal import Journal, iso
from omnidrill.chaos.ledger import Ledger
from omnidrill.chaos.lock import refuse_if_held, take
from omnidrill.chaos.marks import Mark, snapshot
from omnidrill.chaos.models import (
    STATE_CHANGING,
    DrillFile,
    HttpCheck,
    TxPresentCheck,
    step_kind,
    step_label,
)
from omnidrill.chaos.requirements import skip_reason
from omnidrill.chaos.runtime import (
    DrillAborted,
    DrillInconclusive,
    DrillSkipped,
    Runtime,
    StepNotRun,
    StepResult,
    Terminated,
)
from omnidrill.chaos.undo import World, apply_undo
from omnidrill.errors import Inconclusive, OmnidrillError, RunRefused, UsageError
from omnidrill.profile import Resolved

VERDICT_ORDER = ["rollback_failed", "aborted", "failed", "inconclusive", "skipped", "passed"]


@dataclass
class DrillOutcome:
    """What one drill found; `record` is its part of the journal."""

    file: str
    title: str
    contract: list[str]
    verdict: str = "running"
    reason: str = ""
    steps: list[StepResult] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    skipped_checks: list[str] = field(default_factory=list)
    left_changed: list[str] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # undos that met a change
    not_cleaned: list[str] = field(default_factory=list)  # what no undo could take back
    internal_error: str = ""
    started: float = field(default_factory=time.time)
    ended: float | None = None
    detection: dict[str, Any] = field(default_factory=dict)

    def clause_verdicts(self) -> dict[str, str]:
        """Each clause of `contract`: failed, inconclusive, skipped, passed or not_checked."""
        out: dict[str, str] = {}
        for clause in self.contract:
            seen = {
                s.verdict
                for s in self.steps
                if s.clause == clause and s.phase in ("method", "detection")
            }
            for verdict in ("failed", "inconclusive", "not_run", "aborted", "skipped", "passed"):
                if verdict in seen:
                    out[clause] = {"not_run": "inconclusive"}.get(verdict, verdict)
                    break
            else:
                out[clause] = "not_checked"
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "title": self.title,
            "contract": self.contract,
            "verdict": self.verdict,
            "reason": self.reason,
            "started_at": iso(self.started),
            "ended_at": iso(self.ended),
            "started_ts": round(self.started, 3),
            "ended_ts": round(self.ended, 3) if self.ended else None,
            "measurements": self.measurements,
            "clauses": self.clause_verdicts(),
            "evidence": self.evidence,
            "skipped_checks": self.skipped_checks,
            "left_changed": self.left_changed,
            "conflicts": self.conflicts,
            "not_cleaned": self.not_cleaned,
            "internal_error": self.internal_error or None,
            "detection": self.detection,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass
class RunContext:
    """One `omnidrill run`: shared by its drills."""

    run_id: str
    target: str
    resolved: Resolved
    world: World
    ledger: Ledger
    journal: Journal
    printer: Any  # chaos.console.Progress
    halt: threading.Event = field(default_factory=threading.Event)
    in_rollback: bool = False
    mute_monitors: bool = False
    interrupted: str = ""  # a signal that arrived while rollbacks ran
    variables: dict[str, Any] = field(default_factory=dict)  # --var, for background scenarios
    observe: Any = None  # chaos.detection.ObserveSetup, opened at the first drill


def run_drill(ctx: RunContext, file: str, drill: DrillFile) -> DrillOutcome:
    """Run one drill; never raises for what the target does, only for a refused run."""
    out = DrillOutcome(file=file, title=drill.title, contract=list(drill.contract))
    record = out.to_json()
    ctx.journal.doc["drills"].append(record)

    def save() -> None:
        record.clear()
        record.update(out.to_json())
        record["tags"] = drill.tags
        ctx.journal.flush(force=True)

    ctx.printer.drill_start(file, drill)
    why = skip_reason(ctx.resolved, drill)
    verdict = "skipped"
    if not why:
        try:
            _observe(ctx, file)
        except Inconclusive as exc:  # the intake or Datadog cannot be read: no verdict at all
            verdict, why = "inconclusive", secrets.scrub(str(exc))
    if why:
        out.verdict, out.reason = verdict, why
        out.ended = time.time()
        save()
        ctx.printer.drill_end(out)
        return out
    # Trades carry the run in their user id: approval rows they cause are found and cleaned.
    client = DrillClient(
        ctx.resolved, ctx.journal.traffic, drill=file, user_id=f"omnidrill-{ctx.run_id}"
    )
    rt = Runtime(
        run_id=ctx.run_id,
        drill=file,
        resolved=ctx.resolved,
        client=client,
        world=ctx.world,
        ledger=ctx.ledger,
        journal=ctx.journal,
        halt=ctx.halt,
        deadline=time.monotonic() + drill.max_duration,
    )
    rt.printer = ctx.printer
    phases = [*drill.steady_state, *drill.method, *drill.rollbacks]
    rt.mark_before = {s.since for s in phases if isinstance(s, TxPresentCheck) and s.since}
    det = _detection(ctx, rt, file, out)
    out.conflicts, out.not_cleaned = rt.conflicts, rt.not_cleaned  # filled as undos run
    for g in drill.abort_if:
        if g.background_error_rate_over is not None:
            from omnidrill.chaos.background import error_rate_guard

            rt.guards.append(error_rate_guard(rt, g.background_error_rate_over))
        if g.monitor_alerts is not None:
            from omnidrill.chaos.background import monitor_guard

            rt.guards.append(monitor_guard(g.monitor_alerts))
        if g.elapsed_over is not None:
            limit = time.monotonic() + g.elapsed_over
            rt.guards.append(
                lambda limit=limit, g=g: (
                    f"guardrail: elapsed over {g.elapsed_over:.0f} s"
                    if time.monotonic() > limit
                    else None
                )
            )
    watcher: HaltWatcher | None = None
    locked = False
    try:
        refuse_if_held(ctx.world, ctx.target)
        to_mute = _monitors_to_mute(ctx, file) if ctx.mute_monitors else None
        needs_proxy = _uses_faults(drill)
        if needs_proxy and not ctx.resolved.profile.faults.populate:
            _ensure_proxies(ctx, populate=False)  # read-only: a mismatch is inconclusive
        # 1. steady state before: read-only; a miss means nothing is touched (exit 1)
        if not _steady_state(rt, drill, out, "steady_state_before", save) or not _monitors_quiet(
            rt, det, out, save, len(drill.steady_state)
        ):
            out.verdict = "failed"
            out.reason = "the steady state did not hold before the drill; nothing was touched"
            return out
        # 2. the lock on the target, itself undone last
        row = ctx.world.controls()
        mark = Mark(run=ctx.run_id, drill=file, prev=snapshot(row), proxies=_proxy_states(ctx))
        rt.register_undo(
            "lock.release",
            {"run": ctx.run_id, "reason": row.get("reason")},
            "release the lock (restore the controls' reason)",
        )
        take(ctx.world, mark)
        locked = True
        rt.watching = True
        watcher = HaltWatcher(
            ctx.world, ctx.target, ctx.run_id, ctx.halt, takeover=lambda: _taken_over(rt)
        ).start()
        if needs_proxy and ctx.resolved.profile.faults.populate:
            _ensure_proxies(ctx, populate=True)
        if to_mute is not None:
            _mute(ctx, rt, drill, file, *to_mute)
        _start_background(rt, drill, ctx)
        # 3. the method
        for i, step in enumerate(drill.method):
            rt.check_abort()
            det.note_step(step)
            res = _run_step(rt, "method", i, step, out, save)
            if res.verdict == "inconclusive":
                raise DrillInconclusive(res.evidence[-1] if res.evidence else "inconclusive")
        rt.settle_verifications()  # a fault probe still running when the method ended
        det.await_alerts(rt)  # the fault holds until the monitors that must trip have
    except DrillAborted as exc:
        by, why_text = exc.by, exc.why
        if watcher and exc.by == "halt" and watcher.reason:
            by, why_text = watcher.by, watcher.reason
        rt.taken_over = by == "takeover"
        out.verdict, out.reason = "aborted", f"aborted: {why_text}"
        ctx.journal.event("abort", out.reason, drill=file, by=by)
        if rt.taken_over:
            ctx.printer.line(
                f"  ! {why_text}: the drill stops and leaves alone what that person set"
            )
    except (KeyboardInterrupt, Terminated) as exc:
        what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
        out.verdict, out.reason = "aborted", f"aborted by {what}"
        ctx.journal.event("abort", out.reason, drill=file, by=what)
    except DrillInconclusive as exc:
        out.verdict, out.reason = "inconclusive", secrets.scrub(str(exc))
    except DrillSkipped as exc:
        out.verdict, out.reason = "skipped", secrets.scrub(str(exc))
    except (RunRefused, UsageError):
        raise  # bad input or a refusal: exit 2 (the finally still rolls back what was done)
    except Inconclusive as exc:
        out.verdict, out.reason = "inconclusive", secrets.scrub(str(exc))
    except OmnidrillError as exc:
        out.verdict, out.reason = "inconclusive", secrets.scrub(str(exc))
    except Exception as exc:
        import traceback

        out.verdict = "inconclusive"
        out.reason = secrets.scrub(f"omnidrill internal error: {type(exc).__name__}: {exc}")
        out.internal_error = secrets.scrub(traceback.format_exc())
    finally:
        try:
            _finish(ctx, rt, drill, out, save, locked)
        finally:
            det.stop()
            if watcher is not None:
                watcher.stop()
            rt.close()
            client.close()
            out.ended = time.time()
            save()
    _report(ctx, out)
    ctx.printer.drill_end(out)
    return out


def _report(ctx: RunContext, out: DrillOutcome) -> None:
    from omnidrill.chaos.observe_hooks import report_drill

    record = next((d for d in ctx.journal.doc["drills"] if d.get("file") == out.file), None)
    if record is None:
        return
    p = ctx.resolved.profile
    for warning in report_drill(
        record, target=p.name, environment=p.environment, run_id=ctx.run_id
    ):
        ctx.printer.line(f"warning: {warning}")
        ctx.journal.event("warning", warning, drill=out.file)


def _finish(
    ctx: RunContext, rt: Runtime, drill: DrillFile, out: DrillOutcome, save: Any, locked: bool
) -> None:
    """Rollbacks (extra, then every undo in reverse), recovery, lock release, verdict."""
    rt.watching = False  # from here on the drill changes the row back itself
    if not locked:
        # Nothing was changed (the lock comes first); a lock write that half-happened is undone.
        for undo in reversed(list(rt.undos)):
            _apply(ctx, rt, undo, out, stale=True)
        if out.verdict == "running":
            out.verdict = "inconclusive"
        if out.left_changed:
            out.verdict = "rollback_failed"
        ctx.ledger.compact()
        return
    aborted_by_halt = out.verdict == "aborted"
    ctx.in_rollback = True
    try:
        rollback_failed = _rollback(ctx, rt, drill, out, save)
    finally:
        ctx.in_rollback = False
    _stop_background(rt, out)
    # After a conflict the target holds someone else's change: its recovery is not the drill's.
    if not (rollback_failed or aborted_by_halt or out.internal_error or out.conflicts):
        _measure_recovery(ctx, rt, drill, out, save)
        for undo in reversed([u for u in rt.undos if u.kind != "lock.release"]):
            _apply(ctx, rt, undo, out)  # what the recovery check's own trades caused
    _detected(ctx, rt, out, save, rollback_failed or aborted_by_halt or bool(out.conflicts))
    lock = [u for u in rt.undos if u.kind == "lock.release"]
    if not out.left_changed:  # a failed undo keeps the mark: every machine sees it, recover uses it
        ctx.in_rollback = True  # a signal now is noted, not raised: the lock must be released
        try:
            for undo in reversed(lock):
                _apply(ctx, rt, undo, out)
        finally:
            ctx.in_rollback = False
    out.not_cleaned.extend(left_behind(rt))
    _verdict(ctx, out)
    ctx.ledger.compact()
    ctx.journal.set_pending(
        [
            {"run": u.run, "seq": u.seq, "kind": u.kind, "label": u.label}
            for u in ctx.ledger.pending(ctx.run_id)
        ]
    )


def _measure_recovery(
    ctx: RunContext, rt: Runtime, drill: DrillFile, out: DrillOutcome, save: Any
) -> None:
    rt.halt = threading.Event()  # recovery is measured even though the method is over
    rt.deadline = time.monotonic() + drill.recover_within + 60
    try:
        recovered = _steady_state(rt, drill, out, "steady_state_after", save, recover=True)
    except DrillInconclusive as exc:
        recovered = True  # no verdict on recovery; the drill says why below
        if out.verdict == "running":
            out.verdict, out.reason = "inconclusive", secrets.scrub(str(exc))
    except (KeyboardInterrupt, Terminated) as exc:
        # The undos already ran: stop measuring recovery, but still release the lock, or the
        # next run would refuse until `omnidrill recover`.
        recovered = True
        ctx.interrupted = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
    if not recovered and out.verdict == "running":
        out.verdict = "failed"
        out.reason = f"the steady state did not return within {drill.recover_within:.1f} s"


def _verdict(ctx: RunContext, out: DrillOutcome) -> None:
    """The drill's verdict once every undo ran: a failed or conflicted undo comes first."""
    surprises = [c for c in out.conflicts if not c.get("taken_over")]
    if out.left_changed:
        out.verdict = "rollback_failed"
        out.reason = "ROLLBACK FAILED, the target may be left changed: " + "; ".join(
            out.left_changed
        )
    elif surprises:
        out.verdict = "rollback_failed"
        out.reason = (
            "UNDO CONFLICT, someone else changed what the drill had changed; left as they set "
            "it, check by hand: " + "; ".join(conflict_text(c) for c in surprises)
        )
    elif out.verdict == "running":
        failed = [s for s in out.steps if s.verdict == "failed"]
        not_run = [s for s in out.steps if s.verdict == "not_run"]
        if failed:
            out.verdict = "failed"
            clauses = sorted({s.clause for s in failed if s.clause})
            out.reason = f"{len(failed)} check(s) failed" + (
                f" (clauses {', '.join(clauses)})" if clauses else ""
            )
        elif not_run:
            out.verdict = "inconclusive"
            out.reason = f"{len(not_run)} step(s) could not run: {not_run[0].evidence[-1]}"
        else:
            out.verdict = "passed"
    if ctx.interrupted and out.verdict in ("passed", "failed", "inconclusive"):
        out.verdict, out.reason = "aborted", f"aborted by {ctx.interrupted} (rollbacks ran)"
    out.skipped_checks = [
        f"{s.name}: {s.evidence[-1] if s.evidence else 'skipped'}"
        for s in out.steps
        # O1/O2 without an `observe:` section: reported, never a failure under --strict
        if s.verdict == "skipped" and not s.detail.get("unobserved")
    ]


def _observe(ctx: RunContext, file: str) -> None:
    """Where the run reads monitors and Sentry events, opened at its first drill; live
    Datadog must have every monitor the drill expects deployed (else exit 2)."""
    from omnidrill.chaos.detection import check_setup_for, open_setup, project_root

    if ctx.observe is None:
        ctx.observe = open_setup(ctx.resolved, project_root(file))
    check_setup_for(ctx.observe, file)


def _detection(ctx: RunContext, rt: Runtime, file: str, out: DrillOutcome) -> Any:
    """O1/O2 of this drill: its expected monitors, and every answer watched for O2."""
    from omnidrill.chaos.detection import Detection

    det = Detection(ctx.observe, ctx.resolved, file)
    out.contract += [c for c in det.clauses() if c not in out.contract]
    rt.client.watchers.append(det.watch)
    rt.detection = det
    return det


def _monitors_quiet(rt: Runtime, det: Any, out: DrillOutcome, save: Any, index: int) -> bool:
    """Part of the steady state: the monitors this drill must trip do not alert yet."""
    if not det.active:
        return True
    if not det.expected:
        det.follow()  # nothing to trip, but an alert here would still be noise
        return True
    res = StepResult(
        phase="steady_state_before",
        index=index,
        kind="monitors.quiet",
        name="the monitors this drill must trip are not alerting: " + ", ".join(det.expected),
        clause="O1",
    )
    out.steps.append(res)
    save()
    try:
        ok = det.before(rt, res)
    finally:
        res.ended = time.time()
        _record(rt, out, res, "steady_state_before", save)
    return ok


def _detected(ctx: RunContext, rt: Runtime, out: DrillOutcome, save: Any, cut_short: bool) -> None:
    """After the rollbacks: wait for the alerts to resolve, then judge O1 and O2."""
    det = getattr(rt, "detection", None)
    if det is None:
        return
    no_verdict = None
    if cut_short or out.internal_error or out.verdict in ("aborted", "inconclusive"):
        no_verdict = f"the drill ended {out.verdict if out.verdict != 'running' else 'early'}"
    elif det.expected:
        rt.halt = threading.Event()
        try:
            det.settle(rt, out.measurements.get("rollbacks_done_ts"))
        except (KeyboardInterrupt, Terminated) as exc:
            ctx.interrupted = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
            no_verdict = f"interrupted by {ctx.interrupted}"
    det.stop()
    for res in det.o1_steps(out, no_verdict):
        out.steps.append(res)
        _record(rt, out, res, "detection", save)
    o2 = det.o2_step(rt) if no_verdict is None else None
    if o2 is not None:
        if "O2" not in out.contract:
            out.contract.append("O2")
        out.steps.append(o2)
        _record(rt, out, o2, "detection", save)
    out.detection = det.record()
    ttd = [m["time_to_detect_s"] for s in out.steps if "time_to_detect_s" in (m := s.measurements)]
    ttr = [
        m["time_to_resolve_s"] for s in out.steps if "time_to_resolve_s" in (m := s.measurements)
    ]
    if ttd:
        out.measurements["time_to_detect_s"] = min(ttd)  # the incident is seen at its first alert
        out.measurements["time_to_detect_resolution_s"] = det.states.poll_s
    if ttr:
        out.measurements["time_to_resolve_s"] = max(ttr)  # and over once every alert cleared
        out.measurements["time_to_resolve_resolution_s"] = det.states.poll_s
    for mid in out.detection.get("noise", []):
        warning = (
            f"noise: monitor {mid} alerted during the drill, and its tripped_by does not name it"
        )
        ctx.printer.line(f"warning: {warning}")
        ctx.journal.event("warning", warning, drill=out.file, monitor=mid)
    save()


def _record(rt: Runtime, out: DrillOutcome, res: StepResult, phase: str, save: Any) -> None:
    res.evidence = [secrets.scrub(e) for e in res.evidence]
    if res.verdict == "failed":
        out.evidence.append(
            {"clause": res.clause, "step": res.name, "phase": phase, "evidence": res.evidence}
        )
    save()
    _print(rt, res)


def _rollback(ctx: RunContext, rt: Runtime, drill: DrillFile, out: DrillOutcome, save: Any) -> bool:
    rt.halt = threading.Event()  # a halt must not stop the rollbacks themselves
    rt.deadline = time.monotonic() + 600
    rt.guards = []  # guardrails stop the method, never the rollbacks
    rt.verifications.clear()  # nothing may stand between an abort and the undos
    if rt.background is not None:
        from omnidrill.chaos.background import phase as load_phase

        load_phase(rt, "recovery")
    for i, step in enumerate(drill.rollbacks):
        _run_step(rt, "rollbacks", i, step, out, save)
    for undo in reversed([u for u in rt.undos if u.kind != "lock.release"]):
        _apply(ctx, rt, undo, out)
    rt.active_faults.clear()
    after_rollback(rt)
    rt.mark_changed()
    out.measurements["rollbacks_done_ts"] = round(time.time(), 3)
    save()
    return bool(out.left_changed)


def _apply(ctx: RunContext, rt: Runtime, undo: Any, out: DrillOutcome, stale: bool = False) -> None:
    """One undo, compare-and-set: done, already done, or a conflict left alone; printed."""
    res = StepResult(phase="undo", index=undo.seq, kind=undo.kind, name=undo.label)
    out.steps.append(res)
    try:
        with rt.writing:
            result = apply_undo(ctx.world, undo, stale=stale)
        rt.settle_undo(undo, result)
        res.detail["did"] = result.note
        if result.conflicts:
            res.verdict = "conflict"
            res.detail["conflicts"] = [c.to_json() for c in result.conflicts]
            res.evidence = [secrets.scrub(c.text()) for c in result.conflicts]
        else:
            res.verdict = "done"
            res.evidence = [secrets.scrub(result.note)]
    except Exception as exc:
        res.verdict = "error"
        text = secrets.scrub(f"{undo.describe()}: {type(exc).__name__}: {exc}")
        res.evidence.append(text)
        out.left_changed.append(text)
        ctx.journal.event("rollback_failed", text, drill=out.file, undo=undo.kind)
        rt.undos = [u for u in rt.undos if u is not undo]
    res.ended = time.time()
    _print(rt, res)


def _after_probe(rt: Runtime) -> None:
    """A probe that wrote to the controls (a faulty target let it) wrote the drill's own
    values: what the drill holds now includes them, so the guardrail does not take them for
    someone else's."""
    with rt.writing:
        try:
            row = rt.world.controls()
        except Exception:
            row = None
        if row is not None:
            rt.held.update({k: row.get(k) for k in rt.probing if k in rt.held})
        rt.probing = {}


def _taken_over(rt: Runtime) -> str | None:
    """The guardrail that cannot be switched off: what the drill holds, as it left it?"""
    if not rt.watching or not rt.writing.acquire(blocking=False):
        return None  # not holding anything yet, rolling back, or mid-write itself
    try:
        if not rt.watching:
            return None
        row = rt.world.controls()
        held = {k: v for k, v in rt.held.items() if k not in rt.probing}
        return takeover_in(rt, row, held)
    finally:
        rt.writing.release()


def _steady_state(
    rt: Runtime, drill: DrillFile, out: DrillOutcome, phase: str, save: Any, recover: bool = False
) -> bool:
    start = time.monotonic()
    ok = True
    for i, check in enumerate(drill.steady_state):
        step = check
        if recover and isinstance(check, HttpCheck):
            left = max(0.0, drill.recover_within - (time.monotonic() - start))
            step = check.model_copy(update={"within": left, "measure": None, "hold": None})
        res = _run_step(rt, phase, i, step, out, save, since=start if recover else None)
        ok = ok and res.verdict in ("passed", "skipped")
        if res.verdict == "inconclusive":
            raise DrillInconclusive(res.evidence[-1] if res.evidence else "inconclusive")
    if recover:
        waited = time.monotonic() - start
        polls = [s.measurements.get("resolution_s", 0) for s in out.steps if s.phase == phase]
        out.measurements["time_to_recover_s"] = round(waited, 3) if ok else None
        out.measurements["time_to_recover_resolution_s"] = max(polls, default=None)
    return ok


def _run_step(
    rt: Runtime,
    phase: str,
    index: int,
    step: Any,
    out: DrillOutcome,
    save: Any,
    since: float | None = None,
) -> StepResult:
    kind = step_kind(step)
    res = StepResult(
        phase=phase,
        index=index,
        kind=kind,
        name=step.name or step_label(step),
        clause=getattr(step, "clause", None),
    )
    out.steps.append(res)
    save()
    rt.journal.event("step", f"{phase} {index + 1}: {res.name}", drill=out.file, step=kind)
    try:
        if getattr(step, "id", None) in rt.mark_before:
            rt.provider_marks[step.id] = provider_marks(rt)
        if kind in STATE_CHANGING:
            rt.settle_verifications()  # the last fault is proven before the next change
        if hasattr(step, "action"):
            if kind in STATE_CHANGING and phase == "method":
                from omnidrill.chaos.background import phase as load_phase

                load_phase(rt, "fault")
            ACTION_RUNNERS[kind](rt, step, res)
        elif kind == "http":
            run_http(rt, step, res, since=since)
        else:
            CHECK_RUNNERS[kind](rt, step, res)
        if not hasattr(step, "action"):
            rt.settle_verifications()  # no verdict stands on a fault not seen to take effect
    except StepNotRun as exc:
        res.verdict = "not_run"
        res.evidence.append(secrets.scrub(str(exc)))
    except DrillSkipped as exc:
        res.verdict = "skipped"
        res.evidence.append(secrets.scrub(str(exc)))
        raise
    except DrillInconclusive as exc:
        res.verdict = "inconclusive"
        res.evidence.append(secrets.scrub(str(exc)))
    except (DrillAborted, KeyboardInterrupt, Terminated):
        res.verdict = "aborted"
        raise
    except Inconclusive as exc:
        res.verdict = "inconclusive"
        res.evidence.append(secrets.scrub(str(exc)))
    finally:
        if rt.probing:
            _after_probe(rt)
        res.ended = time.time()
        res.evidence = [secrets.scrub(e) for e in res.evidence]
        for what in ("effect", "recovery"):
            key = f"time_to_{what}_s"
            if key in res.measurements and key not in out.measurements:
                out.measurements[key] = res.measurements[key]
                out.measurements[f"time_to_{what}_resolution_s"] = res.measurements.get(
                    "resolution_s"
                )
        if res.verdict == "failed":
            out.evidence.append(
                {"clause": res.clause, "step": res.name, "phase": phase, "evidence": res.evidence}
            )
        save()
    _print(rt, res)
    return res


def _print(rt: Runtime, res: StepResult) -> None:
    printer = getattr(rt, "printer", None)
    if printer is not None:
        printer.step(res)


def _monitors_to_mute(ctx: RunContext, file: str) -> tuple[str, list[str]]:
    """Read before anything is touched: a bad monitors setup refuses the drill."""
    from pathlib import Path

    from omnidrill.chaos.observe_hooks import monitor_env, monitors_for

    p = ctx.resolved.profile
    env = monitor_env(p.name, p.environment, Path.cwd())
    return env, monitors_for(file, env, Path.cwd())


def _mute(
    ctx: RunContext, rt: Runtime, drill: DrillFile, file: str, env: str, ids: list[str]
) -> None:
    from omnidrill.chaos.observe_hooks import mute

    # Downtimes end on their own after this long: the safety net should a run die unrecovered.
    span = drill.max_duration + drill.recover_within + 120
    downtimes = mute(ids, file, env, span)
    if downtimes is None:
        ctx.printer.line("--mute-monitors: DD_API_KEY is not set; no monitor was muted")
        return
    from omnidrill.observe.drill_events import downtimes_now

    # As created: the undo cancels a downtime only while it is still as the drill left it.
    made = {
        i: {k: v for k, v in (d or {}).items() if k != "status"}
        for i, d in downtimes_now(downtimes).items()
    }
    rt.register_undo(
        "monitors.unmute",
        {"downtime_ids": downtimes, "downtimes": made},
        f"unmute {len(downtimes)} monitor(s)",
    )
    ctx.journal.event(
        "mute", f"muted monitors {ids}", drill=file, downtime_ids=downtimes, monitors=ids
    )


def _uses_faults(drill: DrillFile) -> bool:
    return any(step_kind(s).startswith("fault.") for s in [*drill.method, *drill.rollbacks])


def _ensure_proxies(ctx: RunContext, populate: bool) -> None:
    """The profile's proxies exist as it says (created or corrected when populate is true)."""
    if ctx.world.faults is None:
        raise Inconclusive("the drill cuts paths but the profile names no fault proxy")
    specs = [p.model_dump() for p in ctx.resolved.profile.faults.proxies]
    ctx.world.faults.ensure_proxies(specs, populate=populate)


def _proxy_states(ctx: RunContext) -> dict[str, bool]:
    if ctx.world.faults is None:
        return {}
    names = {p.name for p in ctx.resolved.profile.faults.proxies}
    try:
        shown = ctx.world.faults.proxies()
    except Exception:
        return {}
    return {n: bool(v.get("enabled", True)) for n, v in shown.items() if n in names}


def _start_background(rt: Runtime, drill: DrillFile, ctx: RunContext) -> None:
    if drill.background is None:
        return
    from omnidrill.chaos.background import start_background

    report_dir = ctx.journal.path.parent
    rt.background = start_background(
        rt, drill.background, report_dir, drill.max_duration + 120, ctx.variables
    )


def _stop_background(rt: Runtime, out: DrillOutcome) -> None:
    if rt.background is None:
        return
    from omnidrill.chaos.background import stop_background

    out.measurements["background"] = stop_background(rt)
