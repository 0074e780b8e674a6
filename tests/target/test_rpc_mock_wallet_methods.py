"""What a wallet needs from the mock providers to sign: nonce, fees, the latest block's base fee."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omnidrill.ethsign import Fees, Wallet
from omnihub_ref.rpc_mock import BASE_FEE_WEI, PRIORITY_FEE_WEI, create_rpc_app
from omnihub_ref.serving import serve_in_thread


def _rpc(client: httpx.Client, method: str, params: list[Any]) -> dict[str, Any]:
    resp = client.post("/", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def result(client: httpx.Client, method: str, params: list[Any]) -> Any:
    answer = _rpc(client, method, params)
    assert "error" not in answer, answer
    return answer["result"]


@pytest.fixture
def london() -> Iterator[httpx.Client]:
    with (
        serve_in_thread(create_rpc_app("primary", block_time_s=0.2)) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as client,
    ):
        yield client


@pytest.fixture
def legacy() -> Iterator[httpx.Client]:
    with (
        serve_in_thread(create_rpc_app("primary", eip1559=False)) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as client,
    ):
        yield client


def test_fees_and_latest_block_on_an_eip1559_chain(london: httpx.Client) -> None:
    assert int(result(london, "eth_gasPrice", []), 16) == BASE_FEE_WEI + PRIORITY_FEE_WEI
    assert int(result(london, "eth_maxPriorityFeePerGas", []), 16) == PRIORITY_FEE_WEI
    block = result(london, "eth_getBlockByNumber", ["latest", False])
    assert int(block["baseFeePerGas"], 16) == BASE_FEE_WEI
    number = int(block["number"], 16)
    assert number > 0 and block["hash"].startswith("0x") and len(block["hash"]) == 66
    earlier = result(london, "eth_getBlockByNumber", [hex(number - 1)])
    assert earlier["hash"] == block["parentHash"]
    assert result(london, "eth_getBlockByNumber", [hex(number + 10_000), False]) is None


def test_a_legacy_chain_has_no_base_fee_and_no_priority_fee_method(legacy: httpx.Client) -> None:
    block = result(legacy, "eth_getBlockByNumber", ["latest", False])
    assert "baseFeePerGas" not in block
    assert _rpc(legacy, "eth_maxPriorityFeePerGas", [])["error"]["code"] == -32601
    assert int(result(legacy, "eth_gasPrice", []), 16) > 0


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("eth_getTransactionCount", ["0x1234", "pending"]),
        ("eth_getTransactionCount", []),
        ("eth_getTransactionCount", ["0x" + "11" * 20, "tomorrow"]),
        ("eth_getBlockByNumber", ["newest", False]),
        ("eth_getBlockByNumber", ["latest", "yes"]),
        ("eth_gasPrice", [1]),
    ],
)
def test_bad_params_are_invalid_params(london: httpx.Client, method: str, params: list) -> None:
    answer = _rpc(london, method, params)
    assert answer["error"]["code"] == -32602, answer
    assert "invalid params" in answer["error"]["message"]


def test_nonce_counts_the_senders_signed_transactions(london: httpx.Client) -> None:
    wallet = Wallet(os.urandom(32).hex())
    other = Wallet(os.urandom(32).hex())
    fees = Fees(eip1559=True, max_fee=3 * BASE_FEE_WEI, priority_fee=PRIORITY_FEE_WEI)

    def count(w: Wallet, tag: str = "pending") -> int:
        return int(result(london, "eth_getTransactionCount", [w.address, tag]), 16)

    assert count(wallet) == 0
    for nonce in range(3):
        raw = wallet.transfer(chain_id=31337, nonce=nonce, fees=fees, data=b"x")
        result(london, "eth_sendRawTransaction", [raw])
    result(london, "eth_sendRawTransaction", ["0x02" + "ab" * 60])  # random hex: no one's
    assert count(wallet) == 3
    assert count(wallet, "latest") == 3
    assert count(other) == 0
    # a gap (nonce 4 without 3) is not counted, as a node's pending nonce would not
    raw = wallet.transfer(chain_id=31337, nonce=4, fees=fees, data=b"y")
    tx_hash = result(london, "eth_sendRawTransaction", [raw])
    assert count(wallet) == 3
    # the block that holds a transaction lists it
    number = result(london, "eth_getTransactionByHash", [tx_hash])["blockNumber"]
    assert tx_hash in result(london, "eth_getBlockByNumber", [number, False])["transactions"]
    full = result(london, "eth_getBlockByNumber", [number, True])["transactions"]
    assert tx_hash in [t["hash"] for t in full]
