"""Bad input to every function: 400 with a clear message, nothing changed, nothing crashed."""

from __future__ import annotations

import json
import uuid

import pytest
from stackclient import Target

from omnidrill.ethtx import random_raw_tx, tx_hash

MB = b"{" + b'"pad": "' + b"x" * (1024 * 1024) + b'"}'

COMMON: list[tuple[str, bytes, str]] = [
    ("malformed JSON", b'{"user_id": "u1",', "malformed JSON"),
    ("not UTF-8", b'{"a": "\xff\xfe"}', "UTF-8"),
    ("empty body", b"", "empty"),
    ("a JSON array", b"[1, 2]", "JSON object"),
    ("a JSON string", b'"hello"', "JSON object"),
    ("a 1 MB body", MB, "too large"),
]

PER_FUNCTION: dict[str, list[tuple[str, object, str]]] = {
    "omnilink-agent": [
        ("missing intent", {"user_id": "u1"}, "missing field 'intent'"),
        ("missing user_id", {"intent": "x"}, "missing field 'user_id'"),
        ("number user_id", {"user_id": 5, "intent": "x"}, "'user_id' must be a string"),
        ("null intent", {"user_id": "u", "intent": None}, "'intent' must be a string"),
        ("empty intent", {"user_id": "u", "intent": "  "}, "must not be empty"),
        ("unknown field", {"user_id": "u", "intent": "x", "admin": True}, "unexpected field"),
    ],
    "wallet-balance": [
        ("missing address", {}, "missing field 'address'"),
        ("short address", {"address": "0x1234"}, "40 hex digits"),
        ("no 0x", {"address": "ab" * 20}, "40 hex digits"),
        ("not hex", {"address": "0x" + "zz" * 20}, "40 hex digits"),
        ("41 digits", {"address": "0x" + "a" * 41}, "40 hex digits"),
        ("number", {"address": 12345}, "must be a string"),
    ],
    "execute-trade": [
        ("missing raw_tx", {"user_id": "u", "amount_usd": 5}, "missing field 'raw_tx'"),
        ("negative amount", {"user_id": "u", "amount_usd": -5, "raw_tx": "0x01"}, "positive"),
        ("zero amount", {"user_id": "u", "amount_usd": 0, "raw_tx": "0x01"}, "positive"),
        ("string amount", {"user_id": "u", "amount_usd": "5", "raw_tx": "0x01"}, "a number"),
        ("bool amount", {"user_id": "u", "amount_usd": True, "raw_tx": "0x01"}, "a number"),
        ("raw_tx not hex", {"user_id": "u", "amount_usd": 5, "raw_tx": "0xzz"}, "hex"),
        ("raw_tx odd", {"user_id": "u", "amount_usd": 5, "raw_tx": "0xabc"}, "even"),
        ("raw_tx empty", {"user_id": "u", "amount_usd": 5, "raw_tx": "0x"}, "empty"),
        (
            "approval_id not a uuid",
            {"user_id": "u", "amount_usd": 5, "raw_tx": "0x01", "approval_id": "42"},
            "UUID",
        ),
    ],
}


def _cases() -> list[tuple[str, str, bytes, str]]:
    out = []
    for fn, cases in PER_FUNCTION.items():
        for what, raw, expected in COMMON:
            out.append((fn, what, raw, expected))
        for what, body, expected in cases:
            out.append((fn, what, json.dumps(body).encode(), expected))
    return out


@pytest.mark.parametrize(("fn", "what", "raw", "expected"), _cases(), ids=lambda v: str(v)[:30])
def test_bad_input_is_400_with_a_clear_message(
    target: Target, fn: str, what: str, raw: bytes, expected: str
) -> None:
    r = target.call(fn, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, (what, r.text[:200])
    body = r.json()
    assert body["code"] == "BAD_REQUEST"
    assert expected.lower() in body["error"].lower(), body["error"]
    assert len(r.content) < 2000  # never echoes a megabyte back


def test_bad_trades_change_nothing_and_the_worker_lives_on(target: Target) -> None:
    user = f"bad-{uuid.uuid4().hex[:8]}"
    raw = random_raw_tx()
    bad = [
        {"user_id": user, "amount_usd": -50_000, "raw_tx": raw},
        {"user_id": user, "amount_usd": "50000", "raw_tx": raw},
        {"user_id": user, "amount_usd": 50_000, "raw_tx": raw, "approval_id": "x"},
        {"user_id": user, "amount_usd": 50_000, "raw_tx": raw, "extra": 1},
    ]
    for body in bad:
        assert target.call("execute-trade", body).status_code == 400
    r = target.call("execute-trade", content=b"\x00" * 100)
    assert r.status_code == 400
    r = target.call(
        "execute-trade",
        {"user_id": user, "amount_usd": 5, "raw_tx": raw},
        headers={"Idempotency-Key": "bad key with spaces"},
    )
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["error"]
    assert target.sends_of(tx_hash(raw)) == 0
    assert target.approvals_of(user) == []
    # every instance still serves
    for i in range(len(target.profile["instances"])):
        assert target.balance(instance=i).status_code == 200
