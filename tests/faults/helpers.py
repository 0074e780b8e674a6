"""Helpers for the fault proxy tests: our server on its own loop thread, real TCP upstreams."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx

from omnidrill.faults.server import ToxiproxyServer


class ServerThread:
    """A ToxiproxyServer on port 0, served by an event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = ToxiproxyServer("127.0.0.1", 0)

    def start(self) -> None:
        self._thread.start()
        self.call(self.server.start())

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run a plain function on the server's loop (to read its state safely)."""

        async def wrapped() -> Any:
            return fn()

        return self.call(wrapped())

    def stop(self) -> None:
        self.call(self.server.stop())

        async def leftovers() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return self.server.url


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        self.server.accepted += 1  # type: ignore[attr-defined]
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                self.server.received += len(data)  # type: ignore[attr-defined]
                sock.sendall(data)
        except OSError:
            return


class TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    accepted = 0
    received = 0

    @property
    def addr(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"


def serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[TCPServer]:
    yield from running(TCPServer(("127.0.0.1", 0), handler))


S = TypeVar("S", bound=socketserver.BaseServer)


def running(srv: S) -> Iterator[S]:
    """Serve in a thread while the caller holds it; shut down and close after."""
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def make_proxy(api: httpx.Client, upstream: str, name: str = "p", **extra: Any) -> int:
    """Create a proxy on an ephemeral port; returns the port."""
    body = {"name": name, "upstream": upstream, "listen": "127.0.0.1:0", **extra}
    r = api.post("/proxies", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["listen"].rsplit(":", 1)[1])


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            break
        buf += data
    return bytes(buf)


def recv_until_eof(sock: socket.socket) -> bytes:
    buf = bytearray()
    while True:
        data = sock.recv(65536)
        if not data:
            return bytes(buf)
        buf += data


class RpcHandler(http.server.BaseHTTPRequestHandler):
    """A JSON-RPC upstream over keep-alive HTTP/1.1: answers every call with its method's name.

    `GET /chunked` answers with a chunked body; every POST body is recorded in `server.bodies`.
    Each answer leaves in two writes (head, then body), as http.server writes them.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # so that only the proxy could hold the second write

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("method") == "slow":
            time.sleep(0.4)  # an exchange still in flight a while
        if isinstance(doc, list):
            out: object = [_rpc_result(c) for c in doc if "id" in c]
        elif isinstance(doc, dict):
            out = _rpc_result(doc)
        else:
            out = {"echo": body.decode("latin-1")}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.bodies.append(b"GET " + self.path.encode())  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in (b"hello ", b"chunked ", b"world"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()


def _rpc_result(call: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call.get("id"), "result": f"ok:{call.get('method')}"}


class RpcServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RpcHandler)
        self.bodies: list[bytes] = []

    @property
    def addr(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def calls(self) -> list[str]:
        """Methods of every JSON-RPC call received, in order (batches flattened)."""
        out = []
        for body in self.bodies:
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            for call in doc if isinstance(doc, list) else [doc]:
                if isinstance(call, dict):
                    out.append(str(call.get("method")))
        return out


def serve_rpc() -> Iterator[RpcServer]:
    yield from running(RpcServer())


def rpc(method: str, id_: object = 1, **extra: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": [], **extra}
