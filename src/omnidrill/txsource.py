"""Fresh raw transactions for drills, as the profile's `trade` says: random hex, or signed.

`signer_key` profiles get a zero-value transfer from the test wallet to itself, signed per
request (EIP-1559 where the latest block has a base fee, else legacy), with chain id, nonce and
fees read over JSON-RPC from `rpc_direct` (primary, then fallback when primary fails). Sixteen
random bytes in its data make every transaction unique, even two that share a nonce.

Nonces: a local counter hands out consecutive nonces while a batch of requests is open (a
drill step's round, sent together). When no batch is open, the next transaction starts again
from the chain: the pending nonce, or one past the highest nonce the target said it broadcast
(a 200 answer), whichever is higher. So a refused transaction, which is never broadcast, leaves
no gap: its nonce is used again by the next round. The price: a transaction held for later
(an approval retried after other trades were sent) can find its nonce taken; the provider then
refuses it with "nonce too low", and the drill shows that answer.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Protocol

import httpx

from omnidrill import ethtx, secrets
from omnidrill.errors import Inconclusive, UsageError
from omnidrill.ethsign import Fees, Wallet
from omnidrill.profile import Resolved

RPC_TIMEOUT_S = 5.0
TAG = b"omnidrill"
_REMEMBERED = 10_000  # transactions whose nonce is kept, to learn from their broadcast


class TxSource(Protocol):
    """Where a drill gets a fresh raw transaction for each trade."""

    def fresh(self) -> str: ...

    def batch(self) -> contextlib.AbstractContextManager[None]: ...

    def note_sent(self, raw_tx: str) -> None: ...

    def close(self) -> None: ...


class RandomTx:
    """`raw_tx: random`: random hex shaped like a transaction; test providers accept any."""

    def fresh(self) -> str:
        return ethtx.random_raw_tx()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        yield

    def note_sent(self, raw_tx: str) -> None:
        return None

    def close(self) -> None:
        return None


class RpcError(Exception):
    """A provider answered a JSON-RPC error (the method exists on neither, say)."""


class ChainReader:
    """JSON-RPC reads, tried on each provider in order until one answers."""

    def __init__(self, routes: list[tuple[str, str]], timeout_s: float = RPC_TIMEOUT_S) -> None:
        if not routes:
            raise UsageError("signing needs rpc_direct.primary or rpc_direct.fallback")
        self.routes = routes
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, params: list[Any]) -> Any:
        failures: list[str] = []
        for name, url in self.routes:
            payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            try:
                resp = self._http.post(url, json=payload)
                body = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            if resp.status_code != 200 or not isinstance(body, dict):
                failures.append(f"{name}: HTTP {resp.status_code} {resp.text[:120]!r}")
                continue
            if isinstance(body.get("error"), dict):
                raise RpcError(secrets.scrub(f"{name} answered {method}: {body['error']}"))
            if "result" not in body:
                failures.append(f"{name}: no result in {resp.text[:120]!r}")
                continue
            return body["result"]
        raise Inconclusive(
            secrets.scrub(
                f"cannot sign a transaction: {method} failed on every rpc_direct provider ("
                + "; ".join(failures)
                + ")"
            )
        )

    def quantity(self, method: str, params: list[Any]) -> int:
        value = self.call(method, params)
        try:
            return int(value, 16)
        except (TypeError, ValueError):
            raise Inconclusive(
                f"{method} answered {str(value)[:60]!r}, not a hex quantity"
            ) from None


class SignedTransfers:
    """`signer_key`: a fresh signed zero-value transfer per request (see the module's notes)."""

    def __init__(self, wallet: Wallet, chain: ChainReader) -> None:
        self.wallet = wallet
        self.chain = chain
        self._lock = threading.Lock()
        self._open = 0
        self._next: int | None = None  # None: read the pending nonce before the next one
        self._floor = 0  # one past the highest nonce the target said it broadcast
        self._chain_id: int | None = None
        self._fees: Fees | None = None
        self._issued: OrderedDict[str, int] = OrderedDict()

    def close(self) -> None:
        self.chain.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Transactions made while any batch is open get consecutive nonces."""
        with self._lock:
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                if self._open == 0:
                    self._next = None

    def fresh(self) -> str:
        with self._lock:
            if self._chain_id is None:
                self._chain_id = self.chain.quantity("eth_chainId", [])
            if self._next is None:
                pending = self.chain.quantity(
                    "eth_getTransactionCount", [self.wallet.address, "pending"]
                )
                self._next = max(pending, self._floor)
                self._fees = self._read_fees()
            nonce = self._next
            self._next += 1
            if self._open == 0:
                self._next = None  # outside a batch every transaction starts from the chain
            assert self._fees is not None
            raw = self.wallet.transfer(
                chain_id=self._chain_id, nonce=nonce, fees=self._fees, data=TAG + os.urandom(16)
            )
            self._issued[raw.lower()] = nonce
            while len(self._issued) > _REMEMBERED:
                self._issued.popitem(last=False)
            return raw

    def note_sent(self, raw_tx: str) -> None:
        """The target says it broadcast this transaction: never hand out its nonce again."""
        with self._lock:
            nonce = self._issued.get(raw_tx.lower())
            if nonce is not None:
                self._floor = max(self._floor, nonce + 1)
                if self._next is not None:
                    self._next = max(self._next, self._floor)

    def _read_fees(self) -> Fees:
        block = self.chain.call("eth_getBlockByNumber", ["latest", False])
        base = block.get("baseFeePerGas") if isinstance(block, dict) else None
        if base is None:
            return Fees(eip1559=False, gas_price=self.chain.quantity("eth_gasPrice", []))
        base_fee = int(base, 16)
        try:
            priority = self.chain.quantity("eth_maxPriorityFeePerGas", [])
        except RpcError:  # some providers lack it: what the gas price offers above the base
            priority = max(1, self.chain.quantity("eth_gasPrice", []) - base_fee)
        # Twice the base fee stays valid through six full blocks of rising base fee.
        return Fees(eip1559=True, max_fee=2 * base_fee + priority, priority_fee=priority)


def tx_source(resolved: Resolved) -> TxSource:
    """The profile's way of making transactions."""
    trade = resolved.profile.trade
    if trade.signer_key is None:
        return RandomTx()
    routes = [
        (f"rpc_direct.{which}", url.rstrip("/"))
        for which in ("primary", "fallback")
        if (url := resolved.rpc_url(which))  # type: ignore[arg-type]
    ]
    if not routes:
        raise UsageError(
            "trade.signer_key needs rpc_direct.primary or rpc_direct.fallback to read the chain "
            "id, nonce and fees"
        )
    return SignedTransfers(Wallet(resolved.secret("trade.signer_key")), ChainReader(routes))
