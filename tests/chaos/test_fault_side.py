"""Whether a fault took effect is judged from the fault's side: a target that makes up a
success through a provably cut path fails its clause; one that really reaches the provider
another way gets no verdict (inconclusive), with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.drillkit import run_drills
from chaos.variantkit import variant_stack


@pytest.mark.serial
@pytest.mark.postgres
@pytest.mark.redis
def test_a_made_up_success_through_cut_paths_fails_p2_with_the_fault_side_evidence(
    tmp_path: Path, pg_admin: str, redis_url: str, redis_prefix: str
) -> None:
    with variant_stack(tmp_path / "s", "made_up_success", pg_admin, redis_url, redis_prefix) as st:
        result = run_drills(st, "rpc-both-down", report=tmp_path / "r")
    record = result.drill("rpc-both-down")
    assert result.code == 1, result.output
    assert record["verdict"] == "failed"
    assert record["clauses"]["P2"] == "failed"
    text = result.evidence_text("rpc-both-down")
    assert "naming provider 'primary'" in text and "a made-up answer" in text, text
    assert "refuses connections (probed by the harness)" in text
    assert "never saw the transaction" in text


@pytest.mark.serial
@pytest.mark.postgres
@pytest.mark.redis
def test_a_real_bypass_of_the_fault_proxy_stays_inconclusive(
    tmp_path: Path, pg_admin: str, redis_url: str, redis_prefix: str
) -> None:
    name = "bypass_primary_proxy"
    with variant_stack(tmp_path / "s", name, pg_admin, redis_url, redis_prefix) as st:
        result = run_drills(st, "rpc-primary-outage", report=tmp_path / "r")
    record = result.drill("rpc-primary-outage")
    assert result.code == 5, result.output
    assert record["verdict"] == "inconclusive"
    assert "does not pass through the fault proxy" in record["reason"], json.dumps(record)
    assert "primary" in record["reason"]
