"""The mock JSON-RPC providers over real HTTP: methods, hashes, errors and the call log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from omnidrill import ethtx
from omnihub_ref.rpc_mock import create_rpc_app
from omnihub_ref.serving import serve_in_thread

ADDRESS = "0x" + "12" * 20


@pytest.fixture
def rpc() -> Iterator[httpx.Client]:
    with (
        serve_in_thread(create_rpc_app("primary", chain_id=31337, block_time_s=0.2)) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as client,
    ):
        yield client


def call(client: httpx.Client, method: str, params: Any = None, rid: Any = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    resp = client.post("/", json=body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["jsonrpc"] == "2.0" and answer["id"] == rid
    return answer


def result(client: httpx.Client, method: str, params: Any = None) -> Any:
    answer = call(client, method, params)
    assert "error" not in answer, answer
    return answer["result"]


def test_chain_id_and_net_version(rpc: httpx.Client) -> None:
    assert result(rpc, "eth_chainId", []) == hex(31337)
    assert result(rpc, "net_version") == "31337"


def test_block_number_advances_with_time(rpc: httpx.Client) -> None:
    first = int(result(rpc, "eth_blockNumber", []), 16)
    time.sleep(0.5)  # block_time_s=0.2: at least two blocks later
    second = int(result(rpc, "eth_blockNumber", []), 16)
    assert first > 0 and second >= first + 2


def test_balance_is_deterministic_per_address_and_provider_independent(rpc: httpx.Client) -> None:
    a = result(rpc, "eth_getBalance", [ADDRESS, "latest"])
    assert a.startswith("0x") and int(a, 16) > 0
    assert result(rpc, "eth_getBalance", [ADDRESS.upper().replace("0X", "0x")]) == a
    assert result(rpc, "eth_getBalance", ["0x" + "34" * 20, "0x10"]) != a
    with (
        serve_in_thread(create_rpc_app("fallback")) as other,
        httpx.Client(base_url=other.url, timeout=10) as client2,
    ):
        assert result(client2, "eth_getBalance", [ADDRESS, "latest"]) == a


@pytest.mark.parametrize(
    "params",
    [["0x1234", "latest"], [ADDRESS, "yesterday"], [], [ADDRESS, "latest", 3], [42]],
)
def test_balance_with_bad_params_is_invalid_params(rpc: httpx.Client, params: list) -> None:
    answer = call(rpc, "eth_getBalance", params)
    assert answer["error"]["code"] == -32602
    assert "invalid params" in answer["error"]["message"]


def test_sent_transaction_is_hashed_like_ethereum_and_findable(rpc: httpx.Client) -> None:
    raw = ethtx.random_raw_tx()
    tx_hash = result(rpc, "eth_sendRawTransaction", [raw])
    assert tx_hash == ethtx.tx_hash(raw)
    tx = result(rpc, "eth_getTransactionByHash", [tx_hash])
    assert tx["hash"] == tx_hash and tx["input"] == raw
    assert int(tx["blockNumber"], 16) > 0
    assert tx["provider"] == "primary"
    # Any hex is accepted as a raw transaction, as the contract says.
    assert result(rpc, "eth_sendRawTransaction", ["0x616263"]) == ethtx.tx_hash("0x616263")


def test_unknown_transaction_is_null(rpc: httpx.Client) -> None:
    assert result(rpc, "eth_getTransactionByHash", ["0x" + "00" * 32]) is None
    bad = call(rpc, "eth_getTransactionByHash", ["0x1234"])
    assert bad["error"]["code"] == -32602


@pytest.mark.parametrize("raw", ["0xzz", "0x123", "abcd", 7, "0x"])
def test_send_with_bad_raw_tx_is_invalid_params_and_sends_nothing(rpc: httpx.Client, raw) -> None:
    answer = call(rpc, "eth_sendRawTransaction", [raw])
    assert answer["error"]["code"] == -32602
    assert "raw_tx" in answer["error"]["message"]
    sends = rpc.get("/__calls", params={"method": "eth_sendRawTransaction"}).json()["calls"]
    assert len(sends) == 1  # the call is logged, and nothing else happened


def test_json_rpc_errors(rpc: httpx.Client) -> None:
    parse = rpc.post("/", content=b"{not json", headers={"content-type": "application/json"})
    assert parse.status_code == 200
    assert parse.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": parse.json()["error"]["message"]},
    }
    assert call(rpc, "eth_nope", [])["error"]["code"] == -32601
    no_version = rpc.post("/", json={"id": 1, "method": "eth_chainId"}).json()
    assert no_version["error"]["code"] == -32600
    no_method = rpc.post("/", json={"jsonrpc": "2.0", "id": 1}).json()
    assert no_method["error"]["code"] == -32600
    scalar = rpc.post("/", json=[1]).json()
    assert scalar[0]["error"]["code"] == -32600
    assert rpc.post("/", json=[]).json()["error"]["code"] == -32600
    assert call(rpc, "eth_chainId", {"a": 1})["error"]["code"] == -32602
    assert call(rpc, "eth_chainId", [1])["error"]["code"] == -32602


def test_batch_and_notification(rpc: httpx.Client) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # notification: no answer
        {"jsonrpc": "2.0", "id": "b", "method": "eth_nope"},
    ]
    answers = rpc.post("/", json=batch).json()
    assert [a["id"] for a in answers] == [1, "b"]
    assert answers[0]["result"] == hex(31337)
    assert answers[1]["error"]["code"] == -32601
    note = rpc.post("/", json={"jsonrpc": "2.0", "method": "eth_chainId"})
    assert note.status_code == 204
    methods = [c["method"] for c in rpc.get("/__calls").json()["calls"]]
    assert methods == ["eth_chainId", "eth_blockNumber", "eth_nope", "eth_chainId"]


def test_call_log_is_oldest_first_and_delete_keeps_transactions(rpc: httpx.Client) -> None:
    raw = ethtx.random_raw_tx()
    result(rpc, "eth_blockNumber", [])
    result(rpc, "eth_sendRawTransaction", [raw])
    result(rpc, "eth_getBalance", [ADDRESS, "latest"])
    log = rpc.get("/__calls").json()
    calls = log["calls"]
    assert [c["method"] for c in calls] == [
        "eth_blockNumber",
        "eth_sendRawTransaction",
        "eth_getBalance",
    ]
    assert calls[1]["params"] == [raw]
    assert all(isinstance(c["ts"], float) for c in calls)
    assert [c["ts"] for c in calls] == sorted(c["ts"] for c in calls)
    assert abs(calls[-1]["ts"] - time.time()) < 60
    only_sends = rpc.get("/__calls", params={"method": "eth_sendRawTransaction"}).json()
    assert len(only_sends["calls"]) == 1

    cleared = rpc.delete("/__calls")
    assert cleared.status_code == 200 and cleared.json() == {"cleared": 3}
    assert rpc.get("/__calls").json()["calls"] == []
    # A transaction sent stays findable by hash: drills check P2/C7 after clearing the log.
    assert result(rpc, "eth_getTransactionByHash", [ethtx.tx_hash(raw)])["hash"] == ethtx.tx_hash(
        raw
    )


def test_resend_answers_the_same_hash_and_logs_both_calls(rpc: httpx.Client) -> None:
    raw = ethtx.random_raw_tx()
    assert result(rpc, "eth_sendRawTransaction", [raw]) == result(
        rpc, "eth_sendRawTransaction", [raw]
    )
    sends = rpc.get("/__calls", params={"method": "eth_sendRawTransaction"}).json()["calls"]
    assert len(sends) == 2


def test_concurrent_sends_are_all_logged_and_recorded(rpc: httpx.Client) -> None:
    raws = [ethtx.random_raw_tx() for _ in range(40)]

    def send(raw: str) -> str:
        return result(rpc, "eth_sendRawTransaction", [raw])

    with ThreadPoolExecutor(max_workers=8) as pool:
        hashes = list(pool.map(send, raws))
    assert hashes == [ethtx.tx_hash(r) for r in raws]
    assert len(rpc.get("/__calls").json()["calls"]) == 40
    for h in hashes:
        assert result(rpc, "eth_getTransactionByHash", [h])["hash"] == h


def test_oversized_body_and_wrong_method(rpc: httpx.Client) -> None:
    big = rpc.post("/", content=b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert big.status_code == 413
    assert big.json()["error"]["code"] == -32600
    assert rpc.get("/").status_code == 405
    assert rpc.get("/__calls").json()["calls"] == []
