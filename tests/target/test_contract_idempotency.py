"""CONTRACT section 5: Idempotency-Key on execute-trade (I1, I2)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from stackclient import Target

from omnidrill.ethtx import random_raw_tx, tx_hash


def _body(amount: float = 42.0) -> dict:
    return {"user_id": f"i-{uuid.uuid4().hex[:8]}", "amount_usd": amount, "raw_tx": random_raw_tx()}


def _send_concurrently(target: Target, body: dict, key: str, n: int) -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        with httpx.Client(timeout=15) as c:
            url = f"{target.profile['instances'][i % 2]}/functions/v1/execute-trade"
            return c.post(url, json=body, headers={**target.headers(), "Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_i1_concurrent_duplicates_broadcast_once(target: Target) -> None:
    body = _body()
    key = f"key-{uuid.uuid4()}"
    answers = _send_concurrently(target, body, key, 8)
    assert {r.status_code for r in answers} == {200}
    assert all(r.json() == answers[0].json() for r in answers)
    assert answers[0].json()["tx_hash"] == tx_hash(body["raw_tx"])
    assert len({r.headers["X-Trace-ID"] for r in answers}) == 8
    assert target.sends_of(tx_hash(body["raw_tx"])) == 1
    # and later, sequentially, on either instance
    for i in (0, 1):
        r = target.call("execute-trade", body, instance=i, headers={"Idempotency-Key": key})
        assert r.status_code == 200 and r.json() == answers[0].json()
    assert target.sends_of(tx_hash(body["raw_tx"])) == 1


def test_i1_a_202_is_remembered_too(target: Target) -> None:
    body = _body(amount=20_000)
    key = f"key-{uuid.uuid4()}"
    answers = _send_concurrently(target, body, key, 4)
    assert {r.status_code for r in answers} == {202}
    assert all(r.json() == answers[0].json() for r in answers)
    assert len(target.approvals_of(body["user_id"])) == 1


def test_i1_errors_are_not_remembered(target: Target) -> None:
    body = _body()
    key = f"key-{uuid.uuid4()}"
    target.set_controls(execution_safe_mode=True)
    r = target.call("execute-trade", body, headers={"Idempotency-Key": key})
    assert r.status_code == 503
    target.clear_controls()
    target.proxy_enabled("rpc_primary", False)
    target.proxy_enabled("rpc_fallback", False)
    r = target.call("execute-trade", body, headers={"Idempotency-Key": key})
    assert r.status_code == 503 and r.json()["code"] == "RPC_UNAVAILABLE"
    target.reset_faults()
    r = target.call("execute-trade", body, headers={"Idempotency-Key": key})
    assert r.status_code == 200
    assert target.sends_of(tx_hash(body["raw_tx"])) == 1


def test_i2_same_key_other_body_is_422(target: Target) -> None:
    body = _body()
    key = f"key-{uuid.uuid4()}"
    assert target.call("execute-trade", body, headers={"Idempotency-Key": key}).status_code == 200
    others = [
        {**body, "amount_usd": body["amount_usd"] + 1},
        {**body, "raw_tx": random_raw_tx()},
        {**body, "approval_id": str(uuid.uuid4())},
    ]
    for other in others:
        r = target.call("execute-trade", other, headers={"Idempotency-Key": key}, instance=1)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "IDEMPOTENCY_MISMATCH"
    assert target.sends_of(tx_hash(body["raw_tx"])) == 1
    assert target.sends_of(tx_hash(others[1]["raw_tx"])) == 0
