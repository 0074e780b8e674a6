"""The stack keeps the contract while a burst hits it (issue 13's burst problem, short form).

Under a burst of 25+ simultaneous requests per instance, a stack whose parts share one event
loop once timed out its own Redis operations and broke R4, R5, the counting rule, I1 and A3.
Here one burst of 60 (30 per instance, from identities of its own) lands while the idempotency
and approval drills run; every drill must pass and every burst answer must be a 200. The long
form, three full suites under repeated bursts, is benchmarks/burst_soak.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from chaos.burst import BurstResult, burst
from chaos.drillkit import run_drills, start_stack


@pytest.mark.serial
def test_drills_pass_while_a_burst_of_60_hits_both_instances(tmp_path: Path) -> None:
    with start_stack(tmp_path / "stack", "--instances", "2") as stack:
        got: list[BurstResult] = []

        def fire() -> None:
            time.sleep(1.0)  # inside the first drill's method
            got.append(burst(stack.profile, size=60))

        thread = threading.Thread(target=fire)
        thread.start()
        result = run_drills(stack, "idempotency", "approval-flow", report=tmp_path / "report")
        thread.join(60)
    assert got, "the burst did not finish"
    assert got[0].all_ok(), got[0].summary()
    assert result.code == 0, result.output
    for drill in ("idempotency", "approval-flow"):
        assert result.drill(drill)["verdict"] == "passed", result.evidence_text(drill)
