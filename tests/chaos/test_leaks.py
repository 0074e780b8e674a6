"""S2's leak detector: credentials of every kind in bodies and headers, never entropy alone."""

from __future__ import annotations

import pytest

from omnidrill.chaos.leaks import find

TX = "0x" + "9f" * 32
ADDRESS = "0x000000000000000000000000000000000000dEaD"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "body",
    [
        f'{{"tx_hash": "{TX}", "provider": "primary"}}',
        f'{{"address": "{ADDRESS}", "balance_wei": "1000000000000000000"}}',
        f'{{"error": "all RPC providers are unavailable", "code": "RPC_UNAVAILABLE", '
        f'"trace_id": "{TRACE}"}}',
        '{"error": "missing or invalid API key", "code": "UNAUTHORIZED"}',
        '{"error": "field \'address\' must be 0x and 40 hex digits", "code": "VALIDATION_ERROR"}',
        '{"error": "Idempotency-Key was already used with a different body", "code": "X"}',
        '{"approval_id": "3b241101-e2bb-4255-8caf-4136c566a962", "status": "pending"}',
    ],
)
def test_normal_answers_leak_nothing(body: str) -> None:
    headers = {"x-trace-id": TRACE, "content-type": "application/json", "retry-after": "3"}
    assert find(body, headers, [("the anon key", "anon-key-value-123")]) == []


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ('{"error": "no answer from https://eth-mainnet.g.alchemy.com/v2/AbCdEf0123456789xyzW"}',
         "a provider URL with its key"),
        ('{"error": "upstream https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef"}',
         "a provider URL with its key"),
        ('{"error": "cannot reach https://admin:s3cret@rpc.example.com/"}', "credentials in a URL"),
        ('{"error": "connect to postgresql://db.internal:5432/omnihub failed"}',
         "a connection string"),
        ('{"error": "redis://10.0.0.5:6379/0 refused"}', "a connection string"),
        ('{"error": "host=db port=5432 dbname=omnihub user=svc"}', "a libpq DSN"),
        ('{"error": "Traceback (most recent call last):\\n  File \\"x.py\\", line 3"}',
         "a Python stack trace"),
        ('{"error": "bad", "key": "AKIAIOSFODNN7EXAMPLE"}', "aws access key"),
        ('{"error": "jwt eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.dozjgNryP4J3jVmNHl0w5N"}',
         "json web token"),
        ('{"error": "bad", "url": "https://api.example.com/x?api_key=sk0123456789abcdef"}',
         "a key in a URL query"),
    ],
)  # fmt: skip
def test_credentials_of_every_kind_are_found_in_bodies(body: str, kind: str) -> None:
    found = find(body, {}, [])
    assert any(kind in f and "the body" in f for f in found), found


def test_headers_are_judged_too_and_values_are_never_shown() -> None:
    key = "provider-key-0123456789abcdef"
    found = find(
        "{}",
        {"x-upstream": f"https://eth-mainnet.g.alchemy.com/v2/{key}", "x-debug": key},
        [("the secret in ALCHEMY_KEY", key)],
    )
    assert "the secret in ALCHEMY_KEY in header x-debug" in found
    assert "a provider URL with its key in header x-upstream" in found
    assert not any(key in f for f in found)
