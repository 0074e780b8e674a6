"""Transaction hashes are Ethereum's keccak-256, and inputs are checked with clear messages."""

from __future__ import annotations

import hashlib

import pytest

from omnidrill import ethtx

# Published keccak-256 vectors (Ethereum's, not NIST SHA3-256).
KECCAK_EMPTY = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
KECCAK_ABC = "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


def test_keccak_known_vectors() -> None:
    assert ethtx.keccak256(b"").hex() == KECCAK_EMPTY
    assert ethtx.keccak256(b"abc").hex() == KECCAK_ABC


def test_keccak_is_not_nist_sha3() -> None:
    assert ethtx.keccak256(b"").hex() != hashlib.sha3_256(b"").hexdigest()


def test_tx_hash_hashes_the_raw_bytes_not_the_text() -> None:
    assert ethtx.tx_hash("0x616263") == "0x" + KECCAK_ABC  # the bytes b"abc"
    assert ethtx.tx_hash("0X616263") == ethtx.tx_hash("0x616263")
    assert ethtx.tx_hash("0x6162AB") == ethtx.tx_hash("0x6162ab")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("616263", "must start with 0x"),
        ("0x61626", "even number of hex digits"),
        ("0xzz", "only hex digits"),
        ("0x", "must not be empty"),
        (123, "must be a string"),
    ],
)
def test_tx_hash_refuses_bad_input(raw: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        ethtx.tx_hash(raw)  # type: ignore[arg-type]


def test_random_raw_tx_is_valid_hex_and_new_every_time() -> None:
    txs = {ethtx.random_raw_tx() for _ in range(50)}
    assert len(txs) == 50
    for tx in txs:
        assert len(ethtx.hex_bytes(tx)) == 110
        assert ethtx.tx_hash(tx).startswith("0x") and len(ethtx.tx_hash(tx)) == 66
    assert len(ethtx.hex_bytes(ethtx.random_raw_tx(1))) == 1
    with pytest.raises(ValueError, match="nbytes"):
        ethtx.random_raw_tx(0)


def test_check_address() -> None:
    addr = "0x" + "Ab" * 20
    assert ethtx.check_address(addr) == addr.lower()
    for bad in ("0x" + "a" * 39, "0x" + "a" * 41, "a" * 42, "0x" + "g" * 40, None, 5):
        with pytest.raises(ValueError, match="40 hex digits"):
            ethtx.check_address(bad)


def test_check_tx_hash() -> None:
    h = "0x" + "AB" * 32
    assert ethtx.check_tx_hash(h) == h.lower()
    with pytest.raises(ValueError, match="64 hex digits"):
        ethtx.check_tx_hash("0x1234")


def test_error_messages_do_not_echo_huge_input() -> None:
    with pytest.raises(ValueError) as info:
        ethtx.tx_hash("0x" + "z" * 100_000)
    assert len(str(info.value)) < 200
