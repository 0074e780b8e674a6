"""`--dry-run` for scenarios: what a load or rate-limit scenario would send, how it is judged."""

from __future__ import annotations

from typing import Any

from omnidrill.load.models import LoadScenario, RateLimitScenario
from omnidrill.load.plan import as_target, build_plan, task_plan
from omnidrill.profile import Resolved


def _s(seconds: float) -> str:
    return f"{seconds:g} s"


def scenario_plan_text(resolved: Resolved, file: str, scenario: Any) -> str:
    """Several lines: users, duration, pacing, tasks and thresholds (or the rate-limit check)."""
    p = resolved.profile
    target = as_target(resolved)
    head = f"scenario {file}: {scenario.name} ({scenario.type})"
    out = [head + (f": {scenario.description}" if scenario.description else "")]
    out.append(
        f"  target {p.name} ({p.environment}), {len(target.instances)} instance(s): "
        + ", ".join(target.instances)
    )
    if isinstance(scenario, LoadScenario):
        out += _load_lines(scenario, target)
    elif isinstance(scenario, RateLimitScenario):
        out += _rate_limit_lines(scenario, target)
    return "\n".join(out)


def _load_lines(sc: LoadScenario, target: Any) -> list[str]:
    plan, warnings = build_plan(sc, target)
    pacing = sc.pacing
    paced = (
        "as fast as answers come"
        if pacing is None
        else f"{pacing.per_user_rps:g} requests/s per user"
        if pacing.per_user_rps is not None
        else f"{pacing.arrival_rate:g} requests/s in all"
        if pacing.arrival_rate is not None
        else f"a pause of {pacing.think_time_s:g} s after each request"
    )
    clients = len(plan["clients"]) or 1
    out = [
        f"  {sc.users} user(s), started at {plan['spawn_rate']:g}/s, for {_s(sc.duration)}; "
        f"{paced}; {clients} client identit{'y' if clients == 1 else 'ies'}; "
        f"timeout {_s(sc.timeout_s)} per request",
        "  tasks (weight): "
        + ", ".join(
            f"{t['label']} {t['weight']} ({t['method']} {t['path']}, expects "
            f"{' or '.join(map(str, t['expect']))})"
            for t in (task_plan(task, target) for task in sc.tasks)
        ),
        "  thresholds: "
        + (
            "; ".join(f"{scope}: {', '.join(exprs)}" for scope, exprs in sc.thresholds.items())
            or "none (the scenario passes when the target answers)"
        ),
    ]
    return out + [f"  warning: {w}" for w in warnings]


def _rate_limit_lines(sc: RateLimitScenario, target: Any) -> list[str]:
    limit = sc.limit or target.rate_limit
    window = sc.window_s or target.rate_window_s
    source = "the scenario's" if sc.limit or sc.window_s else "the profile's"
    return [
        f"  checks {', '.join(sc.contract)} on {sc.function}: {limit} requests per "
        f"{_s(window)} ({target.rate_algorithm}; {source} limits)",
        f"  floods for {sc.flood_windows} window(s) at {sc.flood_factor:g}x the limit, a quiet "
        f"client at {sc.quiet_share:.0%} of it, a burst of {sc.burst_factor:g}x it; about "
        f"{_s(sc.flood_windows * window)} plus one Retry-After",
        "  judged clause by clause with evidence (CONTRACT section 4)",
    ]
