"""CONTRACT section 1: the surface, keys (S1), error bodies (S2), trace ids and providers."""

from __future__ import annotations

import json

from stackclient import Target


def test_health_needs_no_key_and_has_a_trace_id(target: Target) -> None:
    for instance in range(len(target.profile["instances"])):
        r = target.http.get(f"{target.profile['instances'][instance]}/functions/v1/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}
        assert r.headers["X-Trace-ID"]


def test_operations_answer_the_contract_shapes(target: Target) -> None:
    r = target.agent()
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["block_number"], int) and body["intent"] == "price of eth"
    assert body["trace_id"] == r.headers["X-Trace-ID"]
    assert body["provider"] == r.headers["X-RPC-Provider"] == "primary"

    r = target.balance()
    assert r.status_code == 200, r.text
    assert r.json()["balance_wei"].isdigit()
    assert r.json()["address"] == "0x" + "ab" * 20
    assert r.headers["X-RPC-Provider"] == "primary"

    r, txh = target.trade(amount=25.5)
    assert r.status_code == 200, r.text
    assert r.json() == {"tx_hash": txh, "provider": "primary"}
    assert target.sends_of(txh) == 1


def test_every_answer_has_a_trace_id_even_off_the_map(target: Target) -> None:
    base = target.profile["base_url"]
    for method, path in (("GET", "/"), ("POST", "/functions/v1/"), ("GET", "/rest/v1/x")):
        r = target.http.request(method, base + path, headers=target.headers())
        assert r.status_code == 404, path
        assert r.json()["code"] == "NOT_FOUND" and r.headers["X-Trace-ID"]


def test_trace_ids_are_unique(target: Target) -> None:
    ids = {target.balance().headers["X-Trace-ID"] for _ in range(5)}
    ids |= {target.call("nope", {}).headers["X-Trace-ID"] for _ in range(3)}
    assert len(ids) == 8


def test_s1_missing_or_wrong_key_is_401(target: Target) -> None:
    url = f"{target.profile['base_url']}/functions/v1/wallet-balance"
    body = {"address": "0x" + "ab" * 20}
    good = target.anon
    cases = {
        "no headers": {},
        "apikey only": {"apikey": good},
        "bearer only": {"Authorization": f"Bearer {good}"},
        "wrong apikey": {"apikey": "nope-" + good, "Authorization": f"Bearer {good}"},
        "wrong bearer": {"apikey": good, "Authorization": f"Bearer x{good}"},
        "not bearer": {"apikey": good, "Authorization": f"Basic {good}"},
    }
    for case, headers in cases.items():
        r = target.http.post(url, json=body, headers={**headers, "X-Forwarded-For": "198.19.0.1"})
        assert r.status_code == 401, case
        assert r.json()["code"] == "UNAUTHORIZED", case
        assert r.headers["X-Trace-ID"]
    # the service-role key is accepted too
    assert target.balance(key="service").status_code == 200


def test_s1_anon_key_cannot_touch_the_control_tables(target: Target) -> None:
    before = target.controls()
    for table in ("emergency_controls", "approval_queue", "audit_logs"):
        r = target.http.get(f"{target.rest}/{table}", headers=target.rest_headers("anon"))
        assert r.status_code in (401, 403), table
    r = target.http.patch(
        f"{target.rest}/emergency_controls",
        params={"id": f"eq.{before['id']}"},
        json={"omnihub_kill_switch": True},
        headers=target.rest_headers("anon"),
    )
    assert r.status_code in (401, 403)
    r = target.http.patch(
        f"{target.rest}/emergency_controls",
        params={"id": f"eq.{before['id']}"},
        json={"omnihub_kill_switch": True},
        headers=target.rest_headers("wrong-key-123"),
    )
    assert r.status_code in (401, 403)
    assert target.controls() == before
    assert target.balance().status_code == 200


def test_s2_error_bodies_are_clean(target: Target) -> None:
    """Errors are {"error","code"} and never carry a key, DSN, connection string or trace."""
    answers = [
        target.call("wallet-balance", {"address": "0x1"}),
        target.call("wallet-balance", {"address": "0x" + "ab" * 20}, key="bad-" + target.anon),
        target.call("execute-trade", content=b"{not json"),
        target.call("execute-trade", {"user_id": 1}),
        target.call("no-such-function", {}),
        target.call("wallet-balance", method="GET"),
    ]
    target.set_controls(omnihub_kill_switch=True)
    answers.append(target.balance())
    target.clear_controls()
    target.proxy_enabled("rpc_primary", False)
    target.proxy_enabled("rpc_fallback", False)
    answers.append(target.balance())
    target.reset_faults()
    secrets = [target.anon, target.service, "postgresql://", "redis://", "Traceback", 'File "']
    for r in answers:
        assert r.status_code >= 400
        body = r.json()
        assert isinstance(body["error"], str) and body["error"]
        assert isinstance(body["code"], str) and body["code"].isupper()
        assert body["trace_id"] == r.headers["X-Trace-ID"]
        text = json.dumps(body) + json.dumps(dict(r.headers))
        for s in secrets:
            assert s not in text, (r.status_code, body)
