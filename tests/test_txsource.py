"""Fresh transactions for drills: random hex, or transfers signed by a test wallet (real HTTP)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omnidrill import ethtx, secrets
from omnidrill.errors import Inconclusive, UsageError
from omnidrill.ethsign import Wallet
from omnidrill.netutil import free_port
from omnidrill.profile import TargetProfile, resolve
from omnidrill.txsource import RandomTx, SignedTransfers, tx_source
from omnihub_ref.rpc_mock import BASE_FEE_WEI, PRIORITY_FEE_WEI, create_rpc_app
from omnihub_ref.serving import serve_in_thread

ENV = "OMNIDRILL_TEST_WALLET_KEY"


def profile(trade: dict[str, Any], primary: str | None, fallback: str | None) -> TargetProfile:
    return TargetProfile.model_validate(
        {
            "name": "signer-test",
            "base_url": "http://127.0.0.1:9",
            "keys": {"anon": {"value": "anon-key-x"}, "service_role": {"value": "sr-key-x"}},
            "controls": {"kind": "postgrest", "url": "http://127.0.0.1:9/rest/v1"},
            "rpc_direct": {"primary": primary, "fallback": fallback},
            "trade": trade,
        }
    )


@contextlib.contextmanager
def providers(**kw: Any) -> Iterator[tuple[str, str]]:
    with (
        serve_in_thread(create_rpc_app("primary", **kw)) as p,
        serve_in_thread(create_rpc_app("fallback", **kw)) as f,
    ):
        yield p.url, f.url


@pytest.fixture
def key() -> str:
    return "0x" + os.urandom(32).hex()  # a wallet of this test only: nothing real to lose


def signer(key: str, primary: str | None, fallback: str | None) -> SignedTransfers:
    p = profile({"signer_key": {"env": ENV}, "allow_broadcast": True}, primary, fallback)
    source = tx_source(resolve(p, {ENV: key}))
    assert isinstance(source, SignedTransfers)
    return source


def send(url: str, raw_tx: str) -> str:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw_tx]}
    return httpx.post(url, json=body, timeout=10).json()["result"]


def fields(raw_tx: str) -> dict[str, Any]:
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    return dict(TypedTransaction.from_bytes(HexBytes(raw_tx)).as_dict())


def nonce_of(raw_tx: str) -> int:
    from omnidrill.ethsign import sender_and_nonce

    found = sender_and_nonce(raw_tx)
    assert found is not None
    return found[1]


def test_random_profile_gives_random_hex() -> None:
    source = tx_source(resolve(profile({"raw_tx": "random"}, None, None), {}))
    assert isinstance(source, RandomTx)
    a, b = source.fresh(), source.fresh()
    assert a != b and ethtx.tx_hash(a) != ethtx.tx_hash(b)


def test_signed_transfer_is_eip1559_to_itself_and_its_hash_is_keccak_of_the_bytes(
    key: str,
) -> None:
    from eth_account import Account

    with providers() as (primary, fallback):
        source = signer(key, primary, fallback)
        raw = source.fresh()
        me = Account.from_key(key).address
        assert source.wallet.address == me
        assert Account.recover_transaction(raw) == me
        tx = fields(raw)
        assert raw.startswith("0x02") and tx["type"] == 2
        assert (
            tx["chainId"] == 31337
            and tx["value"] == 0
            and "0x" + bytes(tx["to"]).hex() == me.lower()
        )
        assert tx["maxPriorityFeePerGas"] == PRIORITY_FEE_WEI
        assert tx["maxFeePerGas"] == 2 * BASE_FEE_WEI + PRIORITY_FEE_WEI
        # the hash drills compute (keccak of the raw bytes) is Ethereum's transaction hash
        assert ethtx.tx_hash(raw) == "0x" + ethtx.keccak256(bytes.fromhex(raw[2:])).hex()
        unsigned = {k: v for k, v in tx.items() if k not in ("v", "r", "s", "yParity")}
        again = Account.sign_transaction(unsigned, key)  # RFC 6979: the same signature
        assert "0x" + bytes(again.raw_transaction).hex() == raw
        assert "0x" + bytes(again.hash).hex() == ethtx.tx_hash(raw)
        assert send(primary, raw) == ethtx.tx_hash(raw)
        source.close()


def test_legacy_chain_gets_a_legacy_transaction(key: str) -> None:
    from eth_account import Account

    with providers(eip1559=False, chain_id=1337) as (primary, fallback):
        source = signer(key, primary, fallback)
        raw = source.fresh()
        assert int(raw[2:4], 16) >= 0xC0, "an RLP list, not a typed transaction"
        assert Account.recover_transaction(raw) == source.wallet.address
        v = int.from_bytes(__import__("rlp").decode(bytes.fromhex(raw[2:]))[6], "big")
        assert v in (1337 * 2 + 35, 1337 * 2 + 36), "EIP-155 binds it to the chain id"
        source.close()


def test_every_transaction_is_fresh_and_nonces_follow_what_was_broadcast(key: str) -> None:
    with providers() as (primary, fallback):
        source = signer(key, primary, fallback)
        # outside a batch, a transaction that was never broadcast leaves its nonce free
        a, b = source.fresh(), source.fresh()
        assert a != b and ethtx.tx_hash(a) != ethtx.tx_hash(b)
        assert nonce_of(a) == nonce_of(b) == 0
        # a round of requests sent together gets consecutive nonces
        with source.batch():
            round_txs = [source.fresh() for _ in range(3)]
        assert [nonce_of(t) for t in round_txs] == [0, 1, 2]
        assert len({ethtx.tx_hash(t) for t in round_txs}) == 3
        # two of them broadcast: the chain's pending nonce moves on, so does the next one
        for t in round_txs[:2]:
            send(primary, t)
        assert nonce_of(source.fresh()) == 2
        # broadcast through the fallback only: primary lags, the target's 200 tells us
        late = source.fresh()
        send(fallback, late)
        source.note_sent(late)
        assert nonce_of(source.fresh()) == 3
        source.close()


def test_reads_fall_back_when_primary_is_down_and_say_so_when_both_are(key: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with providers() as (_, fallback):
        source = signer(key, dead, fallback)
        assert nonce_of(source.fresh()) == 0
        source.close()
    source = signer(key, dead, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Inconclusive) as err:
        source.fresh()
    text = str(err.value)
    assert "eth_chainId" in text and "rpc_direct.primary" in text and "rpc_direct.fallback" in text
    assert key[2:] not in text
    source.close()


def test_signing_needs_an_rpc_direct_route(key: str) -> None:
    p = profile({"signer_key": {"env": ENV}, "allow_broadcast": True}, None, None)
    with pytest.raises(UsageError, match="rpc_direct"):
        tx_source(resolve(p, {ENV: key}))


@pytest.mark.parametrize(
    "bad",
    [
        "0x" + "ab" * 31,  # too short
        "0x" + "zz" * 32,  # not hex
        "0x" + "00" * 32,  # zero: not a key
        "0x" + "ff" * 32,  # beyond the curve order
    ],
)
def test_a_bad_key_is_a_usage_error_that_never_shows_it(bad: str) -> None:
    with pytest.raises(UsageError, match=r"trade\.signer_key") as err:
        Wallet(bad)
    assert bad not in str(err.value) and bad[2:] not in str(err.value)
    assert bad[2:12] not in str(err.value)


def test_the_key_is_registered_for_scrubbing_and_never_printed(key: str) -> None:
    wallet = Wallet(key.upper().replace("0X", ""))  # any spelling of it is scrubbed
    text = f"{wallet!r} {wallet.address} {key} {key[2:]} {key[2:].upper()}"
    scrubbed = secrets.scrub(text)
    assert key[2:].lower() not in scrubbed.lower()
    assert wallet.address in scrubbed
    assert key[2:] not in repr(wallet)


def test_signing_profiles_run_trading_drills_given_an_rpc_route(key: str) -> None:
    from pathlib import Path

    from omnidrill.chaos.models import DrillFile
    from omnidrill.chaos.requirements import skip_reason
    from omnidrill.profile import template_variables
    from omnidrill.spec.loader import load_file

    trade = {"signer_key": {"env": ENV}, "allow_broadcast": True}
    routed = profile(trade, "http://127.0.0.1:8545", None)
    chaos = Path(__file__).resolve().parents[1] / "chaos"
    for name in ("kill-switch", "approval-flow", "idempotency"):
        drill = load_file(chaos / f"{name}.yaml", variables=template_variables(routed, {})).model
        assert skip_reason(resolve(routed, {ENV: key}), drill) is None, name
    # a drill that trades but checks nothing on the chain still needs a route to sign
    trades_only = DrillFile.model_validate(
        {
            "title": "a trade",
            "description": "one trade",
            "contract": ["C2"],
            "steady_state": [{"check": "http", "function": "healthz", "expect": {"status": 200}}],
            "method": [
                {
                    "check": "http",
                    "function": "execute-trade",
                    "clause": "C2",
                    "expect": {"status": 200},
                }
            ],
        }
    )
    why = skip_reason(resolve(profile(trade, None, None), {ENV: key}), trades_only)
    assert why is not None and "rpc_direct" in why and "signer_key" in why
