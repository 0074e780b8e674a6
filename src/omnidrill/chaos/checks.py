"""Checks: judge the target from outside (answers, transactions, audit rows, approvals)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from omnidrill import secrets
from omnidrill.chaos import rpc
from omnidrill.chaos.client import Answer
from omnidrill.chaos.controlstore import APPROVALS
from omnidrill.chaos.faultside import judge_claims
from omnidrill.chaos.httpfaults import run_served
from omnidrill.chaos.leaks import find as find_leaks
from omnidrill.chaos.models import (
    OPEN_CODES,
    REFUSAL_MESSAGES,
    REFUSAL_STATUS_KEYS,
    ApprovalStatusCheck,
    AuditChangedCheck,
    ControlsUnchangedCheck,
    Expect,
    HttpCheck,
    LoadCheck,
    NoApprovalCheck,
    TxAbsentCheck,
    TxPresentCheck,
)
from omnidrill.chaos.requests import result_of, send_round, start_traffic
from omnidrill.chaos.runtime import (
    DrillInconclusive,
    Runtime,
    StepNotRun,
    StepResult,
    dig,
)

TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "present": lambda v: True,
}


# --- judging one answer ----------------------------------------------------------------------


def expected_status(rt: Runtime, expect: Expect) -> list[int] | None:
    if expect.refusal is not None:
        return [int(getattr(rt.profile.expect, REFUSAL_STATUS_KEYS[expect.refusal]))]
    if expect.status is None:
        return None
    return expect.status if isinstance(expect.status, list) else [expect.status]


def judge_answer(rt: Runtime, expect: Expect, a: Answer) -> list[str]:
    """Reasons this answer misses the expectation (empty: it meets it)."""
    where = f"{a.method} {a.function or a.url.removeprefix(a.instance)} on {a.instance}"
    if a.status is None:
        return [f"{where}: no answer ({a.error})"]
    problems: list[str] = []
    want = expected_status(rt, expect)
    if want is not None and a.status not in want:
        shown = f"{a.status}" + (f" {a.code}" if a.code else "")
        problems.append(f"{where}: status {shown}, expected {' or '.join(map(str, want))}")
    if expect.refusal is not None:
        problems += _judge_refusal(rt, expect.refusal, a, where)
    for dotted, value in rt.resolve(expect.body).items():
        found, actual = dig(a.body, dotted)
        if not found:
            problems.append(f"{where}: body has no {dotted!r} (expected {value!r})")
        elif actual != value:
            problems.append(f"{where}: body.{dotted} is {actual!r}, expected {value!r}")
    for dotted, kind in expect.body_types.items():
        found, actual = dig(a.body, dotted)
        if not found or not TYPE_CHECKS[kind](actual):
            problems.append(f"{where}: body.{dotted} should be {kind}, found {actual!r}")
    for name, value in rt.resolve(expect.headers).items():
        actual = a.headers.get(name.lower())
        if actual != str(value):
            problems.append(f"{where}: header {name} is {actual!r}, expected {value!r}")
    if expect.provider is not None and a.provider != expect.provider:
        problems.append(f"{where}: X-RPC-Provider is {a.provider!r}, expected {expect.provider!r}")
    if expect.latency_below is not None and a.latency_s >= expect.latency_below:
        problems.append(
            f"{where}: answered in {a.latency_s * 1000:.0f} ms, expected under "
            f"{expect.latency_below * 1000:.0f} ms"
        )
    if expect.no_leaks:
        problems += [f"{where}: {p}" for p in leaks(rt, a)]
    if expect.error_shape and a.status >= 400:
        problems += [f"{where}: {p}" for p in _error_shape(rt, a)]
    if expect.trace_id:
        trace = a.headers.get("x-trace-id")
        if not trace:
            problems.append(f"{where}: no X-Trace-ID header")
        elif isinstance(a.body, dict) and "trace_id" in a.body and a.body["trace_id"] != trace:
            problems.append(f"{where}: body trace_id differs from X-Trace-ID")
    return problems


def _judge_refusal(rt: Runtime, code: str, a: Answer, where: str) -> list[str]:
    if code in OPEN_CODES:
        return []  # judged by status (and `error_shape`), never by the code's name
    if rt.profile.expect.error_codes:
        if a.code != code:
            return [f"{where}: error code {a.code!r}, expected {code!r}"]
        return []
    message = REFUSAL_MESSAGES.get(code)
    if message is None:
        return []  # judged by status alone; the profile says bodies carry no code
    said = a.body.get("error") if isinstance(a.body, dict) else a.text
    if not isinstance(said, str) or message not in said:
        return [f"{where}: error message {said!r}, expected {message!r}"]
    return []


def leaks(rt: Runtime, a: Answer) -> list[str]:
    """Credentials, connection strings or stack traces in an answer's body or headers (S2);
    names the kind and the place, never the value."""
    known = [
        ("the anon key", rt.resolved.anon_key),
        ("the service-role key", rt.resolved.service_role_key),
    ]
    known += [(f"the secret in {name}", value) for name, value in rt.resolved.watched.items()]
    named = {value for _, value in known}
    known += [("a registered secret", v) for v in sorted(secrets.registered() - named)]
    return [f"the answer contains {what}" for what in find_leaks(a.text, a.headers, known)]


def _error_shape(rt: Runtime, a: Answer) -> list[str]:
    if "/rest/v1/" in a.url:
        return []  # PostgREST's own error shape is allowed there (S1)
    if not isinstance(a.body, dict) or not isinstance(a.body.get("error"), str):
        return [f"error body is not JSON with a string `error`: {a.text[:120]!r}"]
    if rt.profile.expect.error_codes and not isinstance(a.body.get("code"), str):
        return ["error body has no string `code`"]
    return []


def judge_round(rt: Runtime, step: HttpCheck, answers: list[Answer]) -> list[str]:
    problems: list[str] = []
    for a in answers:
        problems += judge_answer(rt, step.expect, a)
    if step.expect.same_answers and answers:
        shapes = {(a.status, _canonical(a)) for a in answers}
        if len(shapes) > 1:
            shown = sorted({f"{s} {t[:80]}" for s, t in shapes})
            problems.append(f"{len(answers)} answers differ: {shown}")
    if step.expect.trace_id:
        traces = [a.headers.get("x-trace-id") for a in answers if a.headers.get("x-trace-id")]
        if len(set(traces)) != len(traces):
            problems.append("X-Trace-ID repeats across answers (must be unique per request)")
    return problems


def _canonical(a: Answer) -> str:
    """The body as compared across answers (I1): parsed JSON, key order and a `trace_id` aside
    (it equals X-Trace-ID, which differs per answer), else the text."""
    import json

    if isinstance(a.body, dict):
        return json.dumps({k: v for k, v in a.body.items() if k != "trace_id"}, sort_keys=True)
    return json.dumps(a.body, sort_keys=True) if a.body is not None else a.text


# --- http: rounds, polling, holding ----------------------------------------------------------


def run_http(
    rt: Runtime,
    step: HttpCheck,
    res: StepResult,
    source: str = "probe",
    since: float | None = None,
) -> None:
    """Rounds until the expectation holds (`within`, from `since` or the last change), then hold."""
    from omnidrill.chaos.actions import guard_rest_write

    guard_rest_write(rt, step, step.id)
    st = start_traffic(rt, step)
    reference = since if since is not None else rt.last_change_at
    t0 = time.monotonic()
    round_starts: list[float] = []
    looks: list[float] = []  # when each round's last answer came back (monotonic)
    asks: list[float] = []  # when each round's last request was sent (monotonic)
    wall_offset = time.time() - time.monotonic()

    def one_round() -> tuple[list[Answer], list[str]]:
        round_starts.append(time.monotonic())
        answers = send_round(rt, step, st, source)
        # An answer proves what the target did by the time it came back, not when it was asked.
        back = [a.started_at + a.latency_s - wall_offset for a in answers]
        looks.append(max(back) if back else round_starts[-1])
        asks.append(max((a.started_at - wall_offset for a in answers), default=round_starts[-1]))
        res.add_requests([a.summary() for a in answers])
        claims = judge_claims(rt, answers)
        if claims.bypass:
            raise DrillInconclusive(claims.bypass)
        # A made-up success matters to a check of what was answered (a status, a provider),
        # not to one that looks only for leaks or the error's shape.
        judged = step.expect.status is not None or step.expect.refusal or step.expect.provider
        return answers, (claims.fabricated if judged else []) + judge_round(rt, step, answers)

    answers, problems = one_round()
    if step.within == 0:
        # A zero bound is "the next request" (CONTRACT P3 with rpc_recovery_s 0): the first
        # round must show the effect, and how long it took to look proves nothing either way.
        res.measurements["rounds"] = 1
        if problems:
            res.evidence.append("the first requests after the change did not show the effect")
    elif step.within is not None:
        limit = step.within + step.poll  # one poll interval of slack (CONTRACT C5)
        start = reference if reference is not None else t0
        while problems and time.monotonic() - start < limit:
            rt.sleep(max(0.0, round_starts[-1] + step.poll - time.monotonic()))
            answers, problems = one_round()
        waited = looks[-1] - start
        # The effect happened between the last look that missed it (or the change) and this one.
        resolution = waited - (looks[-2] - start if len(looks) > 1 else 0.0)
        res.measurements["waited_s"] = round(waited, 3)
        res.measurements["resolution_s"] = round(resolution, 3)
        res.measurements["rounds"] = len(round_starts)
        if step.measure:
            res.measurements[f"time_to_{step.measure}_s"] = round(max(0.0, waited), 3)
        res.measurements["poll_interval_s"] = round(_resolution(round_starts, step.poll), 3)
        if problems:
            res.evidence.append(
                f"not within {step.within:.3f} s (+{step.poll:.3f} s poll slack): "
                f"after {time.monotonic() - start:.3f} s, {len(round_starts)} rounds"
            )
        elif waited > limit and len(round_starts) > 1 and asks[-1] - start > limit:
            problems = [
                f"the effect was first seen {waited:.3f} s after the change, in answers to "
                f"requests sent {asks[-1] - start:.3f} s after it; the look at "
                f"{looks[-2] - start:.3f} s still saw the old behaviour; the bound is "
                f"{step.within:.3f} s (+{step.poll:.3f} s poll slack)"
            ]
        elif waited > limit and len(round_starts) > 1:
            # Requests sent within the bound already met the effect; that their answers came
            # back later (a fail-closed answer waits out a slow store) is latency_below's to
            # judge, not proof that the effect came late.
            res.evidence.append(
                f"the effect was met by requests sent {asks[-1] - start:.3f} s after the change "
                f"(answered by {waited:.3f} s)"
            )
        elif waited > limit:
            # One late look cannot prove a bound: say so rather than pass (paced traffic).
            res.verdict = "skipped"
            res.evidence.append(
                f"the first look came {waited:.3f} s after the change (traffic "
                f"{rt.client.mode}); that resolution cannot prove an effect within "
                f"{step.within:.3f} s"
            )
            if step.id:
                rt.results[step.id] = result_of(answers, st)
            return
    if not problems and step.hold:
        hold_end = time.monotonic() + step.hold
        while not problems and time.monotonic() < hold_end:
            rt.sleep(max(0.0, round_starts[-1] + step.poll - time.monotonic()))
            answers, problems = one_round()
        if problems:
            res.evidence.append(f"held, then stopped holding within {step.hold:.1f} s")
        res.measurements["held_s"] = step.hold
    res.detail["traffic_mode"] = rt.client.mode
    if rt.client.pacer is not None:
        res.detail["paced_interval_s"] = round(rt.client.pacer.interval, 3)
    if step.id:
        rt.results[step.id] = result_of(answers, st)
    _finish(res, problems)


def _resolution(starts: list[float], poll: float) -> float:
    if len(starts) < 2:
        return poll
    return max(b - a for a, b in itertools.pairwise(starts))


def _finish(res: StepResult, problems: list[str], limit: int = 12) -> None:
    if problems:
        res.verdict = "failed"
        res.evidence += problems[:limit]
        if len(problems) > limit:
            res.evidence.append(f"... and {len(problems) - limit} more")
    else:
        res.verdict = "passed"


# --- transactions ----------------------------------------------------------------------------


def _sent_of(rt: Runtime, step_id: str) -> list[dict[str, Any]]:
    result = rt.results.get(step_id)
    if result is None:
        raise StepNotRun(f"step {step_id!r} did not run")
    return list(result.get("sent", []))


def run_tx_absent(rt: Runtime, step: TxAbsentCheck, res: StepResult) -> None:
    sent = _sent_of(rt, step.of)
    chosen = [s for s in sent if step.answers == "all" or s["status"] != 200]
    if not chosen:
        res.verdict = "skipped"
        res.evidence.append(
            f"step {step.of!r} has no {'' if step.answers == 'all' else 'refused '}transaction "
            "to look for (so nothing was proven here)"
        )
        return
    providers = rpc.direct_routes(rt.resolved)
    if not providers:
        res.verdict = "skipped"
        res.evidence.append("the profile has no rpc_direct routes to ask")
        return
    problems, notes = rpc.absent(providers, chosen)
    res.detail["transactions"] = len(chosen)
    res.detail["providers"] = sorted(providers)
    res.evidence += notes
    _finish(res, problems)


def run_tx_present(rt: Runtime, step: TxPresentCheck, res: StepResult) -> None:
    sent = [s for s in _sent_of(rt, step.of) if s["status"] == 200]
    if not sent:
        res.verdict = "failed"
        res.evidence.append(f"step {step.of!r} got no 200 answer for a transaction")
        return
    providers = rpc.direct_routes(rt.resolved)
    if not providers:
        res.verdict = "skipped"
        res.evidence.append("the profile has no rpc_direct routes to ask")
        return
    marks = None
    if step.since is not None:
        if step.since not in rt.provider_marks:
            raise StepNotRun(f"step {step.since!r} did not run")
        marks = rt.provider_marks[step.since]
    problems, notes, countable = rpc.present(providers, sent, step.sends, marks)
    res.evidence += notes
    if step.sends is not None and not countable:
        res.verdict = "skipped"
        res.evidence.append(
            "the providers do not offer /__calls, so the number of sends cannot be counted"
        )
        return
    _finish(res, problems)


# --- control tables --------------------------------------------------------------------------


def run_audit_changed(rt: Runtime, step: AuditChangedCheck, res: StepResult) -> None:
    change = rt.results.get(step.of)
    if not change or "set" not in change:
        raise StepNotRun(f"{step.of!r} is not a controls.set step that ran")
    deadline = time.monotonic() + 2.0  # an audit row may be written just after the answer
    while True:
        rows = rt.world.store.audit_rows(200)
        matching = [r for r in rows if _audit_matches(r, change)]
        # Rows older than the change (an earlier drill's) never count: those that were there
        # before it, and by time (clocks may differ a bit) where the ids could not be read.
        before = set(change.get("audit_before") or ())
        matching = [
            r
            for r in matching
            if r.get("id") not in before
            and ((ts := _created_ts(r)) is None or ts >= change["at"] - 5.0)
        ]
        if len(matching) >= step.count or time.monotonic() > deadline:
            break
        rt.sleep(0.1)
    res.detail["matching_rows"] = len(matching)
    if len(matching) != step.count:
        res.verdict = "failed"
        res.evidence.append(
            f"expected {step.count} audit_logs row(s) with action emergency_control_updated "
            f"recording {change['set']} (old {change['old']}), found {len(matching)}"
        )
    else:
        res.verdict = "passed"


def _audit_matches(row: dict[str, Any], change: dict[str, Any]) -> bool:
    if row.get("action") != "emergency_control_updated":
        return False
    if row.get("resource_type") not in (None, "emergency_controls"):
        return False
    meta = row.get("metadata")
    if isinstance(meta, str):
        import json

        try:
            meta = json.loads(meta)
        except ValueError:
            return False
    if not isinstance(meta, dict):
        return False
    new, old = meta.get("new") or {}, meta.get("old") or {}
    if not isinstance(new, dict) or not isinstance(old, dict):
        return False
    return all(new.get(k) == v for k, v in change["set"].items()) and all(
        old.get(k) == v for k, v in change["old"].items()
    )


def _created_ts(row: dict[str, Any]) -> float | None:
    from datetime import datetime

    value = row.get("created_at")
    if not isinstance(value, str):
        return None
    from datetime import UTC

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Postgres timestamps without a zone are UTC here
    return parsed.timestamp()


def run_approval_status(rt: Runtime, step: ApprovalStatusCheck, res: StepResult) -> None:
    approval_id = str(rt.resolve(step.approval))
    t0 = time.monotonic()
    limit = (step.within or 0) + (step.poll if step.within else 0)
    while True:
        row = rt.world.store.get_row(APPROVALS, approval_id)
        problems = _approval_problems(rt, row, approval_id, step)
        if not problems or time.monotonic() - t0 >= limit:
            break
        rt.sleep(step.poll)
    if step.within is not None:
        res.measurements["waited_s"] = round(time.monotonic() - t0, 3)
        res.measurements["resolution_s"] = step.poll
    res.detail["row"] = row
    if step.id:
        rt.results[step.id] = {"row": row}
    _finish(res, problems)


def _approval_problems(
    rt: Runtime, row: dict[str, Any] | None, approval_id: str, step: ApprovalStatusCheck
) -> list[str]:
    if row is None:
        return [f"approval_queue has no row {approval_id}"]
    problems = []
    if row.get("status") != step.status:
        problems.append(
            f"approval {approval_id} status is {row.get('status')!r}, expected {step.status!r}"
        )
    for k, v in rt.resolve(step.fields).items():
        if row.get(k) != v:
            problems.append(f"approval {approval_id} {k} is {row.get(k)!r}, expected {v!r}")
    return problems


def run_no_approval(rt: Runtime, step: NoApprovalCheck, res: StepResult) -> None:
    user = str(rt.resolve(step.user_id))
    rows = rt.world.store.find_rows(APPROVALS, "user_id", user)
    res.detail["rows"] = len(rows)
    _finish(
        res,
        [f"approval_queue has {len(rows)} row(s) for user {user!r}: {[r.get('id') for r in rows]}"]
        if rows
        else [],
    )


def run_controls_unchanged(rt: Runtime, step: ControlsUnchangedCheck, res: StepResult) -> None:
    before = rt.pre_step_rows.get(step.since)
    if before is None:
        raise StepNotRun(f"no controls row was read before step {step.since!r}")
    now = rt.world.controls()
    changed = {k: (before.get(k), now.get(k)) for k in before if before.get(k) != now.get(k)}
    res.detail["changed"] = changed
    _finish(
        res, [f"the controls row changed: {k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()]
    )


def run_load(rt: Runtime, step: LoadCheck, res: StepResult) -> None:
    if rt.background is None:
        res.verdict = "skipped"
        res.evidence.append("this drill has no background load to judge")
        return
    stats = rt.background.stats()
    results = [stats.judge(expr, phase=step.phase) for expr in step.thresholds]
    res.detail["thresholds"] = [r.to_json() for r in results]
    _finish(res, [r.describe() for r in results if not r.passed])


CHECK_RUNNERS: dict[str, Callable[[Runtime, Any, StepResult], None]] = {
    "http": run_http,
    "rpc.tx_absent": run_tx_absent,
    "rpc.tx_present": run_tx_present,
    "rpc.served": run_served,
    "audit.changed": run_audit_changed,
    "approval.status": run_approval_status,
    "approval.none": run_no_approval,
    "controls.unchanged": run_controls_unchanged,
    "load": run_load,
}
