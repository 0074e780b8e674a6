"""JSON-RPC with failover (CONTRACT section 6): the primary first, then the fallback.

Each attempt is bounded by `rpc_timeout` as a whole (connect, send and answer). A provider that
answers but fails (P4: HTTP 429 or 5xx, a JSON-RPC error of the server range -32000..-32099)
counts as down, like one that cannot be reached; a JSON-RPC error of any other code is the
caller's and is answered without the fallback. There is no circuit breaker: the next request
tries the primary again (P3, rpc_recovery_s = 0), unless the primary asked for a pause (a
`Retry-After` header, or a provider's own hint such as Infura's `error.data.backoff_seconds`),
which is honoured up to MAX_BACKOFF_S (P3: "within the larger of the two").

The transport is a small keep-alive HTTP/1.1 client on asyncio streams: every read-only
request makes one RPC call, and httpx's pool cost several times the rest of the request on
one core (see benchmarks/target_bench.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from omnihub_ref.telemetry import Telemetry

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_IDLE = 64
MAX_BACKOFF_S = 60.0  # a provider's pause is honoured up to this long
SERVER_ERRORS = range(-32099, -32000 + 1)  # JSON-RPC 2.0's server range: the provider's fault


class TransportError(Exception):
    """The provider could not be reached, or broke the HTTP exchange."""


class HttpPool:
    """Keep-alive connections to one HTTP(S) endpoint; POST JSON, read the answer."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"RPC URL must be http(s)://host[:port][/path], got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        netloc = parts.netloc.rpartition("@")[2]
        self._head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {netloc}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
        ).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post_json(self, payload: Any) -> Reply:
        body = json.dumps(payload, separators=(",", ":")).encode()
        request = self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, request)
            except _Stale:
                continue  # closed by the peer while idle: nothing was answered; use another
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, limit=MAX_RESPONSE_BYTES
            )
        except OSError as exc:
            raise TransportError(f"connect failed ({type(exc).__name__})") from exc
        try:
            return await self._exchange(reader, writer, request)
        except _Stale as exc:
            raise TransportError("connection closed before an answer") from exc

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> Reply:
        keep = False
        try:
            writer.write(request)
            await writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _Stale() from exc
                raise TransportError("truncated answer") from exc
            status, length, chunked, keep, retry_after = _parse_head(head)
            if chunked:
                data = await _read_chunked(reader)
            elif length is not None:
                if length > MAX_RESPONSE_BYTES:
                    raise TransportError(f"answer too large ({length} bytes)")
                data = await reader.readexactly(length)
            else:
                keep = False
                data = await reader.read(MAX_RESPONSE_BYTES)
            return Reply(status, data, retry_after)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            keep = False
            if isinstance(exc, ConnectionResetError | BrokenPipeError) and not writer.is_closing():
                raise _Stale() from exc
            raise TransportError(type(exc).__name__) from exc
        except BaseException:
            keep = False  # cancelled (timeout) mid-exchange: the connection is unusable
            raise
        finally:
            if keep and len(self._idle) < MAX_IDLE:
                self._idle.append((reader, writer))
            else:
                writer.close()

    async def aclose(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()


class _Stale(Exception):
    """A reused connection turned out closed before any answer byte."""


@dataclass(frozen=True)
class Reply:
    """A provider's HTTP answer: status, body, and its Retry-After in seconds when it sent one."""

    status: int
    body: bytes
    retry_after: float | None = None


def _retry_after(value: bytes) -> float | None:
    """Seconds from a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool, float | None]:
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith(b"HTTP/1.")
        or not status_line[1].isdigit()
    ):
        raise TransportError("not an HTTP/1.x answer")
    length: int | None = None
    chunked = False
    keep = status_line[0] == b"HTTP/1.1"
    retry_after = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection":
            keep = value == b"keep-alive" or (keep and value != b"close")
        elif name == b"retry-after":
            retry_after = _retry_after(value)
    return int(status_line[1]), length, chunked, keep, retry_after


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected from JSON-RPC servers
            return bytes(out)
        if len(out) + size > MAX_RESPONSE_BYTES:
            raise TransportError("answer too large")
        out += await reader.readexactly(size)
        await reader.readexactly(2)


class RpcUnavailable(Exception):
    """Neither provider gave an answer (P2)."""


class RpcRejected(Exception):
    """A provider answered with a JSON-RPC error object that is the caller's fault."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(message)
        self.provider = provider


@dataclass(frozen=True)
class RpcResult:
    result: Any
    provider: str  # primary | fallback


class ProviderDown(Exception):
    """A provider answered, but failed (P4); `pause` is the rest it asked for, in seconds."""

    def __init__(self, what: str, pause: float | None = None) -> None:
        super().__init__(what)
        self.pause = pause


def judge_reply(reply: Reply) -> Any:
    """The result of a JSON-RPC answer; ProviderDown (P4), RpcRejected or ValueError otherwise."""
    if reply.status == 429 or reply.status >= 500:
        raise ProviderDown(f"HTTP {reply.status}", _pause(reply, _error_of(reply.body)))
    if reply.status != 200:
        raise ValueError(f"HTTP {reply.status}")
    body = json.loads(reply.body)
    if not isinstance(body, dict):
        raise ValueError("answer is not a JSON-RPC object")
    err = body.get("error")
    if err is not None:
        code = err.get("code") if isinstance(err, dict) else None
        msg = err.get("message") if isinstance(err, dict) else str(err)
        if isinstance(code, int) and code in SERVER_ERRORS:
            raise ProviderDown(f"JSON-RPC error {code}", _pause(reply, err))
        raise RpcRejected("", str(msg)[:200])
    if "result" not in body:
        raise ValueError("answer has neither result nor error")
    return body["result"]


def _error_of(raw: bytes) -> Any:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def _pause(reply: Reply, err: Any) -> float | None:
    """The longest pause the answer asks for: Retry-After, or the error's data.backoff_seconds."""
    hints = [reply.retry_after]
    data = err.get("data") if isinstance(err, dict) else None
    if isinstance(data, dict):
        value = data.get("backoff_seconds")
        if isinstance(value, int | float) and not isinstance(value, bool):
            hints.append(float(value))
    found = [h for h in hints if h is not None and h > 0]
    return min(max(found), MAX_BACKOFF_S) if found else None


class RpcClient:
    """Calls a method on the primary, and on the fallback when the primary gives no answer."""

    def __init__(
        self,
        primary_url: str,
        fallback_url: str,
        timeout_s: float,
        telemetry: Telemetry,
    ) -> None:
        self._urls = {"primary": primary_url, "fallback": fallback_url}
        self._timeout = timeout_s
        self._tm = telemetry
        self._ids = itertools.count(1)
        self._http = {name: HttpPool(url) for name, url in self._urls.items()}
        self._primary_pause_until = 0.0  # loop time before which the primary is not asked

    async def call(self, method: str, params: list[Any]) -> RpcResult:
        problems: list[str] = []
        loop = asyncio.get_running_loop()
        for provider in ("primary", "fallback"):
            if provider == "primary" and loop.time() < self._primary_pause_until:
                left = self._primary_pause_until - loop.time()
                problems.append(f"primary: asked for a pause ({left:.1f} s left)")
                continue
            payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
            outcome = "error"
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await self._http[provider].post_json(payload)
                result = judge_reply(reply)
                outcome = "ok"
                return RpcResult(result, provider)
            except RpcRejected as exc:
                outcome = "ok"  # the provider is up; the request itself was refused
                raise RpcRejected(provider, str(exc)) from None
            except ProviderDown as exc:
                problems.append(f"{provider}: {exc}")
                if provider == "primary" and exc.pause:
                    self._primary_pause_until = loop.time() + exc.pause
            except TimeoutError:
                outcome = "timeout"
                problems.append(f"{provider}: no answer within {int(self._timeout * 1000)} ms")
            except (TransportError, ValueError) as exc:
                problems.append(f"{provider}: {type(exc).__name__}")
            finally:
                self._tm.count(
                    "omnihub.rpc.requests", tags=[f"provider:{provider}", f"outcome:{outcome}"]
                )
        raise RpcUnavailable("; ".join(problems))

    async def aclose(self) -> None:
        for client in self._http.values():
            await client.aclose()
