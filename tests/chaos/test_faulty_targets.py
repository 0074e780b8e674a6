"""Each standard drill fails, naming the clause, against a target that breaks that clause.

The faulty targets are the reference stack with one behaviour replaced at start-up by
tests/chaos/faultinject (the shipped target has no such switch). Most faults are subtle:
they break one clause in one circumstance and keep every other answer correct.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.drillkit import run_drills, start_stack

CASES = [
    # fault, drill, clauses the evidence must name, extra stack args
    ("controls_uppercase", "kill-switch", {"C5", "C2"}, []),
    ("controls_slow", "kill-switch", {"C5"}, []),
    ("one_instance", "kill-switch", {"C5", "C2"}, ["--instances", "2"]),
    ("broadcast_before_refusing", "kill-switch", {"C7"}, []),
    ("fail_open_on_timeout", "controls-outage", {"C1"}, []),
    ("takeover_paths", "operator-takeover", {"C3"}, []),
    ("safe_mode_everything", "safe-mode", {"C4"}, []),
    ("approval_not_compared", "approval-flow", {"A2"}, []),
    ("approval_never_expires", "approval-expiry", {"A4"}, []),
    ("no_fallback", "rpc-primary-outage", {"P1"}, []),
    ("sticky_fallback", "rpc-primary-outage", {"P3"}, []),
    ("no_rpc_timeout", "rpc-primary-slow", {"P1"}, []),
    ("hang_when_rpc_down", "rpc-both-down", {"P2"}, []),
    ("fallback_on_connect_errors_only", "rpc-primary-errors", {"P4"}, []),
    ("rpc_error_as_success", "rpc-primary-errors", {"P4"}, []),
    ("broadcast_retry_forever", "rpc-primary-errors", {"P4"}, []),
    ("reads_from_cache_on_error", "rpc-primary-errors", {"P4"}, []),
    ("idempotency_ignored", "idempotency", {"I1"}, []),
    ("apikey_only", "security", {"S1"}, []),
]


@pytest.mark.serial
@pytest.mark.parametrize(("fault", "drill", "clauses", "args"), CASES, ids=[c[0] for c in CASES])
def test_faulty_target_fails_the_drill(
    fault: str, drill: str, clauses: set[str], args: list[str], tmp_path: Path
) -> None:
    with start_stack(tmp_path / "stack", *args, fault=fault) as stack:
        result = run_drills(stack, drill, report=tmp_path / "report")
    record = result.drill(drill)
    assert record["verdict"] == "failed", result.output
    assert result.code == 1
    assert clauses <= result.failed_clauses(drill), result.evidence_text(drill)
    assert all(record["clauses"][c] == "failed" for c in clauses)
    assert result.journal["pending_undos"] == [], "every undo ran"


@pytest.mark.serial
@pytest.mark.redis
def test_redis_fail_open_fails_r7(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    args = ["--redis", redis_url, "--redis-prefix", f"{redis_prefix}faulty:"]
    with start_stack(tmp_path / "stack", *args, fault="redis_fail_open") as stack:
        result = run_drills(stack, "redis-outage", report=tmp_path / "report")
    assert result.drill("redis-outage")["verdict"] == "failed", result.output
    assert "R7" in result.failed_clauses("redis-outage")
