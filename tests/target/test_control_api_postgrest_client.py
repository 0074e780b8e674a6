"""The control API as supabase-py sees it: the official `postgrest` client against /rest/v1.

What an operator's script does against Supabase (read the controls, flip one, decide an
approval, read the audit trail) must work unchanged against the reference stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from postgrest import APIError, SyncPostgrestClient
from stackclient import CONTROLS_ROW, Target


def _client(target: Target, key: str) -> SyncPostgrestClient:
    value = {"anon": target.anon, "service": target.service}[key]
    return SyncPostgrestClient(
        target.rest,
        headers={"apikey": value, "Authorization": f"Bearer {value}"},
        http_client=httpx.Client(timeout=15),
    )


@pytest.fixture
def target(embedded_stack: Target) -> Iterator[Target]:
    embedded_stack.clear_controls()
    yield embedded_stack
    embedded_stack.clear_controls()


def test_reads_and_patches_the_controls_and_the_audit_trail(target: Target) -> None:
    db = _client(target, "service")
    (row,) = db.from_("emergency_controls").select("*").eq("id", CONTROLS_ROW).execute().data
    assert row["omnihub_kill_switch"] is False and row["allowed_operations"] == []

    single = db.from_("emergency_controls").select("id, reason").eq("id", CONTROLS_ROW).single()
    assert single.execute().data["id"] == CONTROLS_ROW

    changed = (
        db.from_("emergency_controls")
        .update({"execution_safe_mode": True, "reason": "postgrest-py", "updated_by": "test"})
        .eq("id", CONTROLS_ROW)
        .execute()
    )
    (after,) = changed.data  # Prefer: return=representation, as the client asks
    assert after["execution_safe_mode"] is True and after["reason"] == "postgrest-py"
    assert after["updated_at"] > row["updated_at"]  # the trigger stamps it

    audit = (
        db.from_("audit_logs")
        .select("*")
        .eq("resource_type", "emergency_controls")
        .order("created_at", desc=True)
        .limit(1)
        .execute()
        .data
    )
    assert audit[0]["action"] == "emergency_control_updated"
    assert audit[0]["metadata"]["new"]["reason"] == "postgrest-py"
    assert audit[0]["metadata"]["old"]["execution_safe_mode"] is False


def test_decides_an_approval_as_an_operator_would(target: Target) -> None:
    resp, _ = target.trade(amount=25_000)
    assert resp.status_code == 202, resp.text
    approval_id = resp.json()["approval_id"]
    db = _client(target, "service")
    pending = db.from_("approval_queue").select("*").eq("id", approval_id).single().execute()
    assert pending.data["status"] == "pending" and pending.data["risk_level"] == "high"
    assert pending.data["action"] == "execute_trade"
    queue = db.from_("approval_queue").select("id").eq("status", "pending").execute().data
    assert {"id": approval_id} in queue

    decided = (
        db.from_("approval_queue")
        .update({"status": "rejected", "decided_by": "postgrest-py"})
        .eq("id", approval_id)
        .execute()
    )
    assert decided.data[0]["status"] == "rejected" and decided.data[0]["decided_at"]
    # a decided approval cannot be decided again: the database refuses, the client raises
    with pytest.raises(APIError) as err:
        db.from_("approval_queue").update({"status": "approved"}).eq("id", approval_id).execute()
    assert err.value.code == "23514"


def test_the_anon_key_reaches_no_control_table(target: Target) -> None:
    anon = _client(target, "anon")
    for table in ("emergency_controls", "approval_queue", "audit_logs"):
        with pytest.raises(APIError) as err:
            anon.from_(table).select("*").execute()
        assert err.value.code == "42501", table
    with pytest.raises(APIError):
        anon.from_("emergency_controls").update({"omnihub_kill_switch": True}).eq(
            "id", CONTROLS_ROW
        ).execute()
    db = _client(target, "service")
    (row,) = db.from_("emergency_controls").select("omnihub_kill_switch").execute().data
    assert row["omnihub_kill_switch"] is False  # unchanged (CONTRACT S1)
