"""CONTRACT section 3: the approval queue (A1-A4), through the functions and the control API."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from stackclient import Target

from omnidrill.ethtx import random_raw_tx, tx_hash


def _request_approval(target: Target, amount: float = 15_000) -> tuple[dict, dict, str]:
    user = f"a-{uuid.uuid4().hex[:8]}"
    raw = random_raw_tx()
    body = {"user_id": user, "amount_usd": amount, "raw_tx": raw}
    r = target.call("execute-trade", body)
    assert r.status_code == 202, r.text
    return r.json(), body, raw


def test_a1_large_trades_wait_for_approval(target: Target) -> None:
    for amount, risk in ((10_000, "high"), (99_999.5, "high"), (100_000, "critical")):
        answer, body, _ = _request_approval(target, amount)
        assert answer["status"] == "pending"
        assert set(answer) == {"approval_id", "status", "expires_at"}
        expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
        assert expires > datetime.now(UTC)
        rows = target.approvals_of(body["user_id"])
        assert len(rows) == 1
        row = rows[0]
        assert row["id"] == answer["approval_id"]
        assert row["status"] == "pending" and row["risk_level"] == risk
        assert row["action"] == "execute_trade" and row["user_id"] == body["user_id"]
        for column in ("expires_at", "created_at"):
            assert row[column]
        assert target.sends_of(_hash(body)) == 0
    # just under the threshold executes at once
    r, txh = target.trade(amount=9_999.99)
    assert r.status_code == 200 and target.sends_of(txh) == 1


def _hash(body: dict) -> str:
    return tx_hash(body["raw_tx"])


def test_a2_retry_while_pending_and_mismatches(target: Target) -> None:
    answer, body, _ = _request_approval(target)
    aid = answer["approval_id"]
    retry = {**body, "approval_id": aid}
    for instance in (0, 1):
        r = target.call("execute-trade", retry, instance=instance)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending" and r.json()["approval_id"] == aid
    target.decide(aid, "approved")
    # differing user, amount or transaction: refused even once approved
    for change in (
        {"user_id": body["user_id"] + "x"},
        {"amount_usd": body["amount_usd"] + 1},
        {"raw_tx": random_raw_tx()},
    ):
        r = target.call("execute-trade", {**retry, **change})
        assert r.status_code == 409, (change, r.text)
        assert r.json()["code"] == "APPROVAL_MISMATCH"
    assert target.sends_of(_hash(body)) == 0
    assert len(target.approvals_of(body["user_id"])) == 1
    r = target.call("execute-trade", {**retry, "approval_id": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json()["code"] == "APPROVAL_NOT_FOUND"


def test_a3_approved_executes_once_rejected_never(target: Target) -> None:
    answer, body, _ = _request_approval(target)
    aid = answer["approval_id"]
    retry = {**body, "approval_id": aid}
    target.decide(aid, "approved")
    first = target.call("execute-trade", retry)
    assert first.status_code == 200, first.text
    assert first.json()["tx_hash"] == _hash(body)
    for instance in (1, 0, 1):
        again = target.call("execute-trade", retry, instance=instance)
        assert again.status_code == 200
        assert again.json() == first.json()
    assert target.sends_of(_hash(body)) == 1

    answer, body, _ = _request_approval(target)
    target.decide(answer["approval_id"], "rejected")
    r = target.call("execute-trade", {**body, "approval_id": answer["approval_id"]})
    assert r.status_code == 403 and r.json()["code"] == "APPROVAL_REJECTED"
    assert target.sends_of(_hash(body)) == 0


def test_a3_concurrent_retries_of_an_approval_send_once(target: Target) -> None:
    answer, body, _ = _request_approval(target)
    retry = {**body, "approval_id": answer["approval_id"]}
    target.decide(answer["approval_id"], "approved")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda i: target.call("execute-trade", retry, instance=i % 2), range(6))
        )
    assert {r.status_code for r in answers} == {200}
    assert all(r.json() == answers[0].json() for r in answers)
    assert target.sends_of(_hash(body)) == 1


def test_a3_approved_in_time_stays_executable_after_expiry(target: Target) -> None:
    answer, body, _ = _request_approval(target)
    target.decide(answer["approval_id"], "approved")
    time.sleep(target.limits["approval_ttl_s"] + 0.5)
    r = target.call("execute-trade", {**body, "approval_id": answer["approval_id"]})
    assert r.status_code == 200, r.text
    assert target.sends_of(_hash(body)) == 1


def test_a4_expired_approvals_answer_410(target: Target) -> None:
    answer, body, _ = _request_approval(target)
    aid = answer["approval_id"]
    time.sleep(target.limits["approval_ttl_s"] + 0.5)
    assert target.approval(aid)["status"] == "expired"
    r = target.call("execute-trade", {**body, "approval_id": aid})
    assert r.status_code == 410 and r.json()["code"] == "APPROVAL_EXPIRED"
    assert target.sends_of(_hash(body)) == 0
