"""`--dry-run`: the plan of every drill with each value resolved; nothing is touched."""

from __future__ import annotations

from typing import Any

from omnidrill.chaos.checks import expected_status
from omnidrill.chaos.models import DrillFile, Expect, RequestSpec, step_kind
from omnidrill.chaos.requests import functions_of
from omnidrill.chaos.requirements import skip_reason
from omnidrill.profile import Resolved


def _req(resolved: Resolved, spec: RequestSpec) -> str:
    p = resolved.profile
    where = "every instance " + ", ".join(p.instances) if spec.instances == "all" else p.base_url
    what = spec.path or ", ".join(functions_of(spec))
    method = spec.method or ("GET" if spec.path or spec.function == "healthz" else "POST")
    parts = [
        f"{method} {what} on {where}",
        f"key {spec.key}" + (f" in {spec.key_in}" if spec.key_in != "both" else ""),
    ]
    if spec.count > 1:
        parts.append(f"x{spec.count}{' at once' if spec.concurrent else ''}")
    if spec.body:
        parts.append(f"body {spec.body}")
    if spec.idempotency_key:
        parts.append(f"Idempotency-Key {spec.idempotency_key}")
    if spec.function and "execute-trade" in functions_of(spec):
        parts.append(
            "a fresh transaction per request" if spec.tx == "fresh" else "one shared transaction"
        )
    return "; ".join(parts)


def _expect(resolved: Resolved, e: Expect) -> str:
    parts = []
    status = expected_status(_Shim(resolved), e)  # type: ignore[arg-type]
    if status:
        parts.append("status " + " or ".join(map(str, status)))
    if e.refusal:
        parts.append(
            f"code {e.refusal}"
            if resolved.profile.expect.error_codes
            else f"message of {e.refusal}"
        )
    for k, v in (("body", e.body), ("types", e.body_types), ("headers", e.headers)):
        if v:
            parts.append(f"{k} {v}")
    if e.provider:
        parts.append(f"provider {e.provider}")
    if e.latency_below is not None:
        parts.append(f"under {e.latency_below * 1000:.0f} ms")
    for flag in ("same_answers", "no_leaks", "error_shape", "trace_id"):
        if getattr(e, flag):
            parts.append(flag.replace("_", " "))
    return ", ".join(parts)


class _Shim:
    def __init__(self, resolved: Resolved) -> None:
        self.profile = resolved.profile


def describe(resolved: Resolved, step: Any) -> str:
    kind = step_kind(step)
    head = f"{'check' if hasattr(step, 'check') else 'action'} {kind}"
    if step.name:
        head += f" — {step.name}"
    lines = [head]
    if isinstance(step, RequestSpec):
        lines.append("send: " + _req(resolved, step))
    if hasattr(step, "expect"):
        lines.append("expect: " + _expect(resolved, step.expect))
    for field in (
        "set",
        "proxy",
        "type",
        "attributes",
        "approval",
        "status",
        "of",
        "since",
        "answers",
        "sends",
        "thresholds",
        "user_id",
    ):
        value = getattr(step, field, None)
        if value not in (None, {}, []):
            lines.append(f"{field}: {value}")
    if kind == "wait":
        lines.append(f"for {step.duration:.2f} s")
    if getattr(step, "within", None) is not None:
        lines.append(
            f"within {step.within:.3f} s of the last change (+{step.poll:.3f} s poll slack), "
            f"polling every {step.poll:.3f} s"
        )
    if getattr(step, "hold", None):
        lines.append(f"then holding for {step.hold:.2f} s")
    if getattr(step, "clause", None):
        lines.append(f"proves {step.clause}")
    proxy = getattr(step, "proxy", None)
    if proxy and (spec := resolved.profile.proxy(proxy)):
        lines.append(f"proxy {proxy}: listen {spec.listen} -> upstream {spec.upstream}")
    return "\n      ".join(lines)


def plan_text(resolved: Resolved, file: str, drill: DrillFile) -> str:
    p = resolved.profile
    out = [f"drill {file}: {drill.title}", f"  clauses: {', '.join(drill.contract)}"]
    why = skip_reason(resolved, drill)
    if why:
        out.append(f"  WOULD BE SKIPPED: {why}")
    out.append(
        f"  target {p.name} ({p.environment}), {len(p.instances)} instance(s); traffic: "
        + (
            "forwarded-for spread"
            if p.clients.forwarded_for
            else "bypass headers"
            if p.clients.bypass_headers
            else f"paced at 80% of {p.limits.rate_limit}/{p.limits.rate_window_s:g}s"
        )
    )
    out.append(
        f"  max duration {drill.max_duration:.0f} s; recover within {drill.recover_within:.1f} s"
    )
    sections = [
        ("steady state (before and after)", drill.steady_state),
        ("method", drill.method),
        ("rollbacks (then every undo, in reverse)", drill.rollbacks),
    ]
    for title, steps in sections:
        out.append(f"  {title}:")
        for i, step in enumerate(steps, 1):
            out.append(f"    {i}. {describe(resolved, step)}")
    for g in drill.abort_if:
        out.append(f"  abort if: {g.model_dump(exclude_none=True)}")
    from omnidrill.chaos.detection import plan_lines

    out += plan_lines(resolved, file)
    return "\n".join(out)
