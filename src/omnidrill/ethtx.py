"""Ethereum transaction helpers: the keccak-256 hash of a raw transaction and input checks."""

from __future__ import annotations

import re
import secrets

from Crypto.Hash import keccak

_HEX = re.compile(r"[0-9a-fA-F]*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak-256 (the original padding, not NIST SHA3-256)."""
    h = keccak.new(digest_bits=256)
    h.update(data)
    return h.digest()


def hex_bytes(value: object, *, what: str = "hex data", allow_empty: bool = False) -> bytes:
    """Decode "0x"-prefixed hex with an even number of digits, or raise ValueError saying why."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string of 0x-prefixed hex, got {type(value).__name__}")
    if not value.startswith(("0x", "0X")):
        raise ValueError(f"{what} must start with 0x, got {_preview(value)}")
    digits = value[2:]
    if not _HEX.fullmatch(digits):
        raise ValueError(f"{what} must contain only hex digits after 0x, got {_preview(value)}")
    if len(digits) % 2:
        raise ValueError(f"{what} must have an even number of hex digits, got {len(digits)}")
    if not digits and not allow_empty:
        raise ValueError(f"{what} must not be empty (got 0x)")
    return bytes.fromhex(digits)


def tx_hash(raw_tx: str) -> str:
    """The transaction hash: "0x" + keccak-256 of the raw signed bytes."""
    return "0x" + keccak256(hex_bytes(raw_tx, what="raw_tx")).hex()


def random_raw_tx(nbytes: int = 110) -> str:
    """Random bytes shaped like a raw transaction; every call gives a new hash."""
    if nbytes < 1:
        raise ValueError(f"nbytes must be >= 1, got {nbytes}")
    # 0x02: an EIP-1559 typed transaction starts with its type byte.
    return "0x02" + secrets.token_hex(nbytes - 1)


def check_address(value: object) -> str:
    """Return the address lower-cased if it is 0x + 40 hex digits, else raise ValueError."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        shown = _preview(value) if isinstance(value, str) else type(value).__name__
        raise ValueError(f"address must be 0x followed by 40 hex digits, got {shown}")
    return value.lower()


def check_tx_hash(value: object) -> str:
    """Return the hash lower-cased if it is 0x + 64 hex digits, else raise ValueError."""
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        shown = _preview(value) if isinstance(value, str) else type(value).__name__
        raise ValueError(f"transaction hash must be 0x followed by 64 hex digits, got {shown}")
    return value.lower()


def _preview(text: str, limit: int = 24) -> str:
    """A short repr of user input, so an error never echoes a megabyte back."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
