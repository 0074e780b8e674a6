"""From a scenario and a target profile to the plan a Locust child runs (JSON, sent on stdin)."""

from __future__ import annotations

import ipaddress
import secrets as pysecrets
from dataclasses import dataclass, field
from typing import Any

from omnidrill.errors import UsageError
from omnidrill.load.models import NAMED_STATUSES, LoadScenario, Task
from omnidrill.profile import Resolved, TargetProfile, resolve

TEST_NET = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544, reserved for testing


@dataclass
class Target:
    """What the load side needs from a profile, secrets resolved."""

    name: str
    base_url: str
    instances: list[str]
    anon_key: str
    service_role_key: str
    headers: dict[str, str] = field(default_factory=dict)  # the profile's extra headers
    bypass_headers: dict[str, str] = field(default_factory=dict)  # skip the rate limit
    forwarded_for: bool = False
    verify_tls: bool = True
    rate_limit: int = 100
    rate_window_s: float = 60.0
    rate_algorithm: str = "fixed_window"
    expect: dict[str, Any] = field(default_factory=dict)

    def status(self, name: str) -> int:
        """A contract answer by name (`rate_limited`), as the profile overrides it."""
        base = name.removesuffix("_status")
        return int(self.expect.get(f"{base}_status", NAMED_STATUSES[base]))


def as_target(profile: TargetProfile | Resolved | dict[str, Any] | Target) -> Target:
    """The one adapter from a profile (model, resolved, or plain dict) to a Target."""
    if isinstance(profile, Target):
        return profile
    if isinstance(profile, dict):
        profile = TargetProfile.model_validate(profile)
    resolved = profile if isinstance(profile, Resolved) else resolve(profile)
    p = resolved.profile
    return Target(
        name=p.name,
        base_url=p.base_url,
        instances=list(p.instances) or [p.base_url],
        anon_key=resolved.anon_key,
        service_role_key=resolved.service_role_key,
        headers=resolved.headers,
        bypass_headers=resolved.bypass_headers,
        forwarded_for=p.clients.forwarded_for,
        verify_tls=p.verify_tls is not False,
        rate_limit=p.limits.rate_limit,
        rate_window_s=float(p.limits.rate_window_s),
        rate_algorithm=p.limits.rate_algorithm,
        expect=p.expect.model_dump(),
    )


def client_addresses(n: int, rng: pysecrets.SystemRandom | None = None) -> list[str]:
    """n distinct addresses from 198.18.0.0/15, from a random start (runs share no counters)."""
    size = TEST_NET.num_addresses
    if n > size:
        raise UsageError(
            f"clients: at most {size} distinct identities fit in {TEST_NET}, asked {n}"
        )
    start = (rng or pysecrets.SystemRandom()).randrange(size)
    base = int(TEST_NET.network_address)
    return [str(ipaddress.ip_address(base + (start + i) % size)) for i in range(n)]


def task_plan(task: Task, target: Target) -> dict[str, Any]:
    path = f"/functions/v1/{task.function}" if task.function else task.path or "/"
    expect = [s if isinstance(s, int) else target.status(s) for s in task.expect]
    return {
        "label": task.label,
        "method": task.http_method,
        "path": path,
        "weight": task.weight,
        "body": task.body,
        "headers": task.headers,
        "key": "none" if task.function == "healthz" and task.key == "anon" else task.key,
        "expect": expect,
    }


def build_plan(
    scenario: LoadScenario,
    target: Target,
    *,
    duration_s: float | None = None,
    phase: str = "main",
) -> tuple[dict[str, Any], list[str]]:
    """The plan for the Locust child, and warnings worth showing (e.g. one client only)."""
    warnings: list[str] = []
    clients: list[str] = []
    if target.forwarded_for:
        clients = client_addresses(scenario.clients)
    elif scenario.clients > 1:
        warnings.append(
            f"profile {target.name!r} does not trust X-Forwarded-For: the {scenario.clients} "
            "client identities collapse into one (this machine)"
            + (
                "; bypass headers are sent"
                if target.bypass_headers
                else "; the rate limit may apply"
            )
        )
    plan = {
        "scenario": scenario.name,
        "instances": target.instances,
        "users": scenario.users,
        "spawn_rate": scenario.spawn_rate or float(scenario.users),
        "duration_s": scenario.duration if duration_s is None else duration_s,
        "pacing": scenario.pacing.model_dump(exclude_none=True) if scenario.pacing else None,
        "clients": clients,
        "timeout_s": scenario.timeout_s,
        "verify_tls": target.verify_tls,
        "headers": {**target.headers, **target.bypass_headers},
        "keys": {"anon": target.anon_key, "service_role": target.service_role_key},
        "tasks": [task_plan(t, target) for t in scenario.tasks],
        "phase": phase,
    }
    return plan, warnings
