"""A test wallet (eth-account): signs zero-value transfers to itself; reads signed ones back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omnidrill import secrets
from omnidrill.errors import UsageError

_KEY = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
# Post-Pectra (EIP-7623) a calldata byte can cost up to 40 gas; budget that so no chain refuses.
_GAS_PER_DATA_BYTE = 40
TRANSFER_GAS = 21_000


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fees (max_fee and priority_fee), or a legacy gas_price."""

    eip1559: bool
    max_fee: int = 0
    priority_fee: int = 0
    gas_price: int = 0


class Wallet:
    """A private key held for signing; it is registered for scrubbing and never printed."""

    def __init__(self, key: str, *, where: str = "trade.signer_key") -> None:
        key = key.strip()
        digits = key.removeprefix("0x").removeprefix("0X")
        secrets.register(key, digits, digits.lower(), "0x" + digits.lower())
        if not _KEY.fullmatch("0x" + digits):
            raise UsageError(
                f"{where} must be a private key of 64 hex digits (0x optional); "
                f"the value has {len(key)} characters"
            )
        from eth_account import Account  # 1 s to import: only profiles that sign pay it

        try:
            self._account = Account.from_key("0x" + digits)
        except Exception:  # the library's message could echo the key
            raise UsageError(
                f"{where} is not a usable secp256k1 private key (zero or beyond the curve order)"
            ) from None
        self.address: str = self._account.address

    def __repr__(self) -> str:
        return f"Wallet({self.address})"

    def transfer(self, *, chain_id: int, nonce: int, fees: Fees, data: bytes) -> str:
        """A signed zero-value transfer to the wallet itself, as 0x-prefixed raw hex."""
        tx: dict[str, Any] = {
            "chainId": chain_id,
            "nonce": nonce,
            "to": self.address,
            "value": 0,
            "gas": TRANSFER_GAS + _GAS_PER_DATA_BYTE * len(data),
            "data": data,
        }
        if fees.eip1559:
            tx.update(type=2, maxFeePerGas=fees.max_fee, maxPriorityFeePerGas=fees.priority_fee)
        else:
            tx["gasPrice"] = fees.gas_price
        signed = self._account.sign_transaction(tx)
        return "0x" + bytes(signed.raw_transaction).hex()


def sender_and_nonce(raw_tx: str) -> tuple[str, int] | None:
    """The signer (lower-case address) and nonce of a signed transaction; None if it is not one."""
    import rlp
    from eth_account import Account

    try:
        raw = bytes.fromhex(raw_tx.removeprefix("0x"))
        if not raw:
            return None
        # A typed transaction (EIP-2718) is a type byte then an RLP list led by chainId, nonce.
        fields = rlp.decode(raw[1:]) if raw[0] <= 0x7F else rlp.decode(raw)
        nonce_field = fields[1] if raw[0] <= 0x7F else fields[0]
        sender = Account.recover_transaction(raw)
    except Exception:  # random hex, as test providers also accept
        return None
    return sender.lower(), int.from_bytes(nonce_field, "big")
