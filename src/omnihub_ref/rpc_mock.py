"""Mock Ethereum JSON-RPC providers (the stack's primary and fallback), with a call log.

Transactions sent stay findable by hash for the provider's lifetime; `DELETE /__calls` clears
only the call log, so a drill can reset its broadcast count without losing what was sent.
A provider also answers what a wallet needs to sign (nonce, fees, the latest block's base fee):
the nonce counts the signed transactions it holds from that sender (any other hex counts for no
one), and `eip1559=False` makes it a legacy chain (no base fee, no priority-fee method).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnidrill import ethtx

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 100
# Block numbers advance with wall time from this instant, the same for every provider.
_EPOCH_S = 1_700_000_000.0
_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})
_JSON = "application/json"
BASE_FEE_WEI = 1_000_000_000  # 1 gwei
PRIORITY_FEE_WEI = 100_000_000  # 0.1 gwei


class InvalidParams(ValueError):
    """A JSON-RPC call's params are wrong; the message says which and why."""


class RpcMock:
    """State of one mock provider: the chain it pretends to be, its transactions, its call log."""

    def __init__(
        self,
        name: str,
        *,
        chain_id: int = 31337,
        block_time_s: float = 1.0,
        max_calls: int = 100_000,
        max_txs: int = 100_000,
        eip1559: bool = True,
    ) -> None:
        if chain_id <= 0:
            raise ValueError(f"chain_id must be > 0, got {chain_id}")
        if block_time_s <= 0:
            raise ValueError(f"block_time_s must be > 0, got {block_time_s}")
        self.name = name
        self.chain_id = chain_id
        self.block_time_s = block_time_s
        self._lock = threading.Lock()
        self._calls: deque[dict[str, Any]] = deque(maxlen=max_calls)
        self._dropped = 0
        self._txs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max_txs = max_txs
        self.eip1559 = eip1559
        # tx hash -> (sender, nonce) or None (not a signed transaction); filled lazily
        self._senders: dict[str, tuple[str, int] | None] = {}
        self._nonces: dict[str, set[int]] = {}
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": self._chain_id,
            "net_version": self._net_version,
            "eth_blockNumber": self._block_number,
            "eth_getBalance": self._get_balance,
            "eth_sendRawTransaction": self._send_raw_transaction,
            "eth_getTransactionByHash": self._get_transaction_by_hash,
            "eth_getTransactionCount": self._get_transaction_count,
            "eth_gasPrice": self._gas_price,
            "eth_getBlockByNumber": self._get_block_by_number,
        }
        if eip1559:
            self._methods["eth_maxPriorityFeePerGas"] = self._max_priority_fee

    # --- chain state ----------------------------------------------------------------------

    def block_number(self) -> int:
        return int((time.time() - _EPOCH_S) / self.block_time_s)

    @staticmethod
    def balance_of(address: str) -> int:
        """A balance in wei that depends only on the address (up to about 18 ETH)."""
        digest = ethtx.keccak256(b"omnidrill-balance:" + address.lower().encode())
        return int.from_bytes(digest[:8], "big")

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        with self._lock:
            tx = self._txs.get(tx_hash.lower())
            return dict(tx) if tx else None

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._calls if method is None or c["method"] == method]

    def clear_calls(self) -> int:
        with self._lock:
            n = len(self._calls)
            self._calls.clear()
            self._dropped = 0
            return n

    def index_senders(self) -> None:
        """Recover the sender of every transaction not yet indexed (slow: call off the loop)."""
        from omnidrill.ethsign import sender_and_nonce

        with self._lock:
            todo = [(h, t["input"]) for h, t in self._txs.items() if h not in self._senders]
        found = [(h, sender_and_nonce(raw)) for h, raw in todo]
        with self._lock:
            for h, who in found:
                self._remember_sender(h, who)

    def _remember_sender(self, tx_hash: str, who: tuple[str, int] | None) -> None:
        if tx_hash in self._senders:
            return
        self._senders[tx_hash] = who
        if who is not None:
            self._nonces.setdefault(who[0], set()).add(who[1])

    @property
    def dropped(self) -> int:
        """Calls that fell off the bounded log since it was last cleared."""
        return self._dropped

    # --- JSON-RPC -------------------------------------------------------------------------

    def handle(self, request: Any) -> dict[str, Any] | None:
        """One JSON-RPC request object; None for a notification (no id)."""
        if not isinstance(request, dict):
            return _error(None, INVALID_REQUEST, "Invalid Request: expected a JSON object")
        rid = request.get("id")
        is_notification = "id" not in request
        if rid is not None and (isinstance(rid, bool) or not isinstance(rid, str | int | float)):
            return _error(None, INVALID_REQUEST, "Invalid Request: id must be a string or number")
        if request.get("jsonrpc") != "2.0":
            return _error(rid, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
        method = request.get("method")
        if not isinstance(method, str) or not method:
            return _error(rid, INVALID_REQUEST, "Invalid Request: method must be a string")
        params = request.get("params", [])
        if not isinstance(params, list | dict):
            return _error(rid, INVALID_REQUEST, "Invalid Request: params must be an array")
        with self._lock:
            if len(self._calls) == self._calls.maxlen:
                self._dropped += 1
            self._calls.append({"method": method, "params": params, "ts": time.time()})
            fn = self._methods.get(method)
            if fn is None:
                response = _error(rid, METHOD_NOT_FOUND, f"the method {method[:60]} does not exist")
            elif not isinstance(params, list):
                response = _error(rid, INVALID_PARAMS, "invalid params: expected an array")
            else:
                try:
                    response = {"jsonrpc": "2.0", "id": rid, "result": fn(params)}
                except InvalidParams as exc:
                    response = _error(rid, INVALID_PARAMS, f"invalid params: {exc}")
        return None if is_notification else response

    # Each method runs under self._lock, so a send and its log entry are one atomic step.

    def _chain_id(self, params: list[Any]) -> str:
        _arity(params, 0, 0)
        return hex(self.chain_id)

    def _net_version(self, params: list[Any]) -> str:
        _arity(params, 0, 0)
        return str(self.chain_id)

    def _block_number(self, params: list[Any]) -> str:
        _arity(params, 0, 0)
        return hex(self.block_number())

    def _get_balance(self, params: list[Any]) -> str:
        _arity(params, 1, 2)
        address = _param(ethtx.check_address, params[0])
        if len(params) == 2:
            _check_block(params[1])
        return hex(self.balance_of(address))

    def _send_raw_transaction(self, params: list[Any]) -> str:
        _arity(params, 1, 1)
        tx_hash = _param(ethtx.tx_hash, params[0])
        if tx_hash not in self._txs:
            # A resend of a known transaction is answered with its hash and changes nothing.
            block = self.block_number()
            self._txs[tx_hash] = {
                "hash": tx_hash,
                "input": params[0].lower(),
                "blockNumber": hex(block),
                "blockHash": "0x" + ethtx.keccak256(f"block:{block}".encode()).hex(),
                "transactionIndex": hex(len(self._txs) % 500),
                "chainId": hex(self.chain_id),
                "provider": self.name,
                "receivedAt": time.time(),
            }
            while len(self._txs) > self._max_txs:
                gone, _ = self._txs.popitem(last=False)
                self._senders.pop(gone, None)  # its nonce stays used, as on a chain
        return tx_hash

    def _get_transaction_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        _arity(params, 1, 1)
        tx_hash = _param(ethtx.check_tx_hash, params[0])
        tx = self._txs.get(tx_hash)
        return dict(tx) if tx else None

    def _get_transaction_count(self, params: list[Any]) -> str:
        _arity(params, 1, 2)
        address = _param(ethtx.check_address, params[0])
        if len(params) == 2:
            _check_block(params[1])
        if any(h not in self._senders for h in self._txs):
            from omnidrill.ethsign import sender_and_nonce

            for h, tx in self._txs.items():
                if h not in self._senders:
                    self._remember_sender(h, sender_and_nonce(tx["input"]))
        # Every transaction is mined at once, so latest and pending agree: the first free nonce.
        used = self._nonces.get(address, set())
        nonce = 0
        while nonce in used:
            nonce += 1
        return hex(nonce)

    def _gas_price(self, params: list[Any]) -> str:
        _arity(params, 0, 0)
        return hex(BASE_FEE_WEI + PRIORITY_FEE_WEI)

    def _max_priority_fee(self, params: list[Any]) -> str:
        _arity(params, 0, 0)
        return hex(PRIORITY_FEE_WEI)

    def _get_block_by_number(self, params: list[Any]) -> dict[str, Any] | None:
        _arity(params, 1, 2)
        _check_block(params[0])
        full = params[1] if len(params) == 2 else False
        if not isinstance(full, bool):
            raise InvalidParams("the second parameter (full transactions) must be a boolean")
        latest = self.block_number()
        tag = params[0]
        number = {"earliest": 0}.get(tag, latest) if tag in _BLOCK_TAGS else int(tag, 16)
        if number > latest:
            return None
        txs = [dict(t) for t in self._txs.values() if t["blockNumber"] == hex(number)]
        block: dict[str, Any] = {
            "number": hex(number),
            "hash": "0x" + ethtx.keccak256(f"block:{number}".encode()).hex(),
            "parentHash": "0x" + ethtx.keccak256(f"block:{number - 1}".encode()).hex(),
            "timestamp": hex(int(_EPOCH_S + number * self.block_time_s)),
            "gasLimit": hex(30_000_000),
            "gasUsed": hex(21_000 * len(txs)),
            "transactions": txs if full else [t["hash"] for t in txs],
        }
        if self.eip1559:
            block["baseFeePerGas"] = hex(BASE_FEE_WEI)
        return block


def _param(check: Callable[[Any], str], value: Any) -> str:
    """A parameter read by an ethtx check; its ValueError is JSON-RPC's invalid params."""
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None


def _arity(params: list[Any], low: int, high: int) -> None:
    if not low <= len(params) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise InvalidParams(f"expected {want} parameters, got {len(params)}")


def _check_block(value: Any) -> None:
    if isinstance(value, str) and value in _BLOCK_TAGS:
        return
    if isinstance(value, str) and value.startswith("0x") and len(value) > 2:
        try:
            int(value, 16)
            return
        except ValueError:
            pass
    raise InvalidParams("block must be a hex quantity or one of " + ", ".join(sorted(_BLOCK_TAGS)))


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(value, separators=(",", ":")).encode(), status_code=status, media_type=_JSON
    )


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY_BYTES (drained, not kept)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        elif size > 16 * MAX_BODY_BYTES:
            break
    return None if size > MAX_BODY_BYTES else b"".join(chunks)


def create_rpc_app(
    name: str, *, chain_id: int = 31337, block_time_s: float = 1.0, eip1559: bool = True
) -> Starlette:
    """A JSON-RPC 2.0 provider at POST /, with GET/DELETE /__calls (CONTRACT section 6)."""
    mock = RpcMock(name, chain_id=chain_id, block_time_s=block_time_s, eip1559=eip1559)

    async def rpc(request: Request) -> Response:
        if request.method != "POST":
            return _json({"error": "send JSON-RPC 2.0 requests with POST /"}, 405)
        body = await _read_limited(request)
        if body is None:
            return _json(
                _error(None, INVALID_REQUEST, f"request larger than {MAX_BODY_BYTES} bytes"), 413
            )
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return _json(_error(None, PARSE_ERROR, "Parse error: the body is not valid JSON"))
        if b"eth_getTransactionCount" in body:
            # Recovering senders (and importing eth-account) takes a while: keep the loop free.
            await asyncio.to_thread(mock.index_senders)
        if isinstance(payload, list):
            if not payload:
                return _json(_error(None, INVALID_REQUEST, "Invalid Request: empty batch"))
            if len(payload) > MAX_BATCH:
                return _json(
                    _error(None, INVALID_REQUEST, f"batch larger than {MAX_BATCH} requests")
                )
            answers = [a for a in (mock.handle(item) for item in payload) if a is not None]
            return _json(answers) if answers else Response(status_code=204)
        answer = mock.handle(payload)
        return _json(answer) if answer is not None else Response(status_code=204)

    async def calls(request: Request) -> Response:
        if request.method == "DELETE":
            return _json({"cleared": mock.clear_calls()})
        method = request.query_params.get("method")
        return _json({"calls": mock.calls(method), "dropped": mock.dropped})

    app = Starlette(
        routes=[
            Route("/", rpc, methods=["GET", "POST"]),
            Route("/__calls", calls, methods=["GET", "DELETE"]),
        ]
    )
    app.state.rpc_mock = mock
    return app
