"""The observable effect of every toxic on real TCP connections through our proxy.

Timing tolerances are generous on purpose (2 shared cores): delays are asserted from below
tightly (a toxic must never be faster than asked) and from above loosely (SLOW, stated below).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import httpx
import pytest

from omnidrill.faults.server.toxics import slice_bounds
from omnidrill.netutil import free_port

from .helpers import TCPServer, connect, make_proxy, recv_exactly, recv_until_eof, serve

EARLY = 0.005  # timers may fire this much early (loop clock granularity)
SLOW = 0.25  # how much later than asked we still accept, on a loaded 2-core machine


def add(api: httpx.Client, proxy: str, type_: str, **body: object) -> dict:
    r = api.post(f"/proxies/{proxy}/toxics", json={"type": type_, **body})
    assert r.status_code == 200, r.text
    return r.json()


def rtt(sock: socket.socket, payload: bytes = b"x") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - start


def test_latency_each_direction_added_and_removed_live(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    with connect(port) as s:
        assert rtt(s) < SLOW
        add(api, "p", "latency", attributes={"latency": 150})  # applies to the open connection
        assert 0.150 - EARLY <= rtt(s) <= 0.150 + SLOW
        add(api, "p", "latency", stream="upstream", attributes={"latency": 100})
        assert 0.250 - EARLY <= rtt(s) <= 0.250 + SLOW
        add(api, "p", "latency", name="second", attributes={"latency": 50})  # chains add up
        assert 0.300 - EARLY <= rtt(s) <= 0.300 + SLOW
        r = api.patch("/proxies/p/toxics/latency_downstream", json={"attributes": {"latency": 0}})
        assert r.status_code == 200
        assert 0.150 - EARLY <= rtt(s) <= 0.150 + SLOW
        for name in ("latency_downstream", "latency_upstream", "second"):
            assert api.delete(f"/proxies/p/toxics/{name}").status_code == 204
        assert rtt(s) < SLOW


def test_latency_jitter_stays_in_range_and_bursts_do_not_pile_up(
    api: httpx.Client, echo: TCPServer
) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "latency", attributes={"latency": 100, "jitter": 50})
    with connect(port) as s:
        for _ in range(5):
            assert 0.050 - EARLY <= rtt(s) <= 0.150 + SLOW
        api.patch("/proxies/p/toxics/latency_downstream", json={"attributes": {"jitter": 0}})
        # 20 writes in a row: each chunk is delayed from its own read time, not serially
        start = time.monotonic()
        for _ in range(20):
            s.sendall(b"y" * 100)
            time.sleep(0.005)
        assert recv_exactly(s, 2000) == b"y" * 2000
        assert 0.100 + 19 * 0.005 - EARLY <= time.monotonic() - start <= 0.100 + 0.1 + 2 * SLOW


def test_data_survives_toxics_added_and_removed_mid_stream(
    api: httpx.Client, echo: TCPServer
) -> None:
    port = make_proxy(api, echo.addr)
    payload = os.urandom(3 * 1024 * 1024)
    with connect(port, timeout=30) as s:
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(recv_exactly(s, len(payload))))
        reader.start()
        for i in range(0, len(payload), 64 * 1024):
            s.sendall(payload[i : i + 64 * 1024])
            if i == 512 * 1024:
                add(api, "p", "slicer", attributes={"average_size": 2048, "size_variation": 1000})
                add(api, "p", "latency", stream="upstream", attributes={"latency": 20})
                add(api, "p", "noop", name="n")
            if i == 1536 * 1024:
                api.delete("/proxies/p/toxics/slicer_downstream")
                api.patch("/proxies/p/toxics/latency_upstream", json={"attributes": {"latency": 1}})
            if i == 2048 * 1024:
                api.delete("/proxies/p/toxics/latency_upstream")
        reader.join(30)
        assert received and received[0] == payload


def test_bandwidth_rate(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "bandwidth", attributes={"rate": 100})  # 100 KB/s = 100,000 bytes/s
    with connect(port) as s:
        start = time.monotonic()
        s.sendall(b"b" * 50_000)
        assert recv_exactly(s, 50_000) == b"b" * 50_000
        elapsed = time.monotonic() - start
    assert 0.5 - 0.05 <= elapsed <= 0.5 + SLOW


class _SendThenClose:
    """Upstream that sends a greeting and closes at once."""

    def __init__(self, request, client_address, server) -> None:
        request.sendall(b"hello")
        request.close()


def test_slow_close_delays_the_close(api: httpx.Client) -> None:
    for srv in serve(_SendThenClose):
        port = make_proxy(api, srv.addr)
        add(api, "p", "slow_close", attributes={"delay": 300})
        with connect(port) as s:
            start = time.monotonic()
            assert recv_until_eof(s) == b"hello"
            assert 0.300 - EARLY <= time.monotonic() - start <= 0.300 + SLOW


def test_timeout_closes_after_idle_time(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "timeout", stream="upstream", attributes={"timeout": 200})
    with connect(port) as s:
        start = time.monotonic()
        s.sendall(b"dropped")
        assert recv_until_eof(s) == b""  # nothing passes, then the connection is closed
        assert 0.200 - EARLY <= time.monotonic() - start <= 0.200 + SLOW
    assert echo.received == 0


def test_timeout_zero_holds_the_connection_until_removed(
    api: httpx.Client, echo: TCPServer
) -> None:
    port = make_proxy(api, echo.addr)
    with connect(port) as s:
        assert rtt(s) < SLOW
        add(api, "p", "timeout", attributes={"timeout": 0})
        s.settimeout(0.6)
        s.sendall(b"ping")
        with pytest.raises(TimeoutError):
            s.recv(10)  # held open, nothing comes back
        s.settimeout(5)
        start = time.monotonic()
        assert api.delete("/proxies/p/toxics/timeout_downstream").status_code == 204
        assert recv_until_eof(s) == b""  # removing a timeout toxic closes what it held
        assert time.monotonic() - start < SLOW


def test_reset_peer_resets_the_client(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "reset_peer", attributes={"timeout": 100})
    with connect(port) as s:
        start = time.monotonic()
        s.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            s.recv(10)
        assert 0.100 - EARLY <= time.monotonic() - start <= 0.100 + SLOW


def test_slicer_splits_writes(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "slicer", attributes={"average_size": 10, "size_variation": 0, "delay": 30_000})
    with connect(port) as s:
        start = time.monotonic()
        s.sendall(bytes(range(100)))
        pieces = []
        while sum(map(len, pieces)) < 100:
            pieces.append(s.recv(1000))
        elapsed = time.monotonic() - start
    assert b"".join(pieces) == bytes(range(100))
    assert len(pieces) >= 5  # 30 ms apart, so the client reads them separately
    assert max(map(len, pieces)) <= 20
    assert elapsed >= 9 * 0.030 - EARLY


def test_slice_bounds_sizes() -> None:
    bounds = slice_bounds(480 * 1024, 1024, 512)
    sizes = [b - a for a, b in zip([0, *bounds], bounds, strict=False)]
    assert bounds[-1] == 480 * 1024 and 240 <= len(bounds) <= 720
    assert max(sizes) <= 1024 + 512
    assert slice_bounds(24, 1, 0) == list(range(1, 25))


def test_limit_data_cuts_at_the_limit(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "limit_data", attributes={"bytes": 10})
    with connect(port) as s:
        s.sendall(b"0123456789abcdefghij")
        assert recv_until_eof(s) == b"0123456789"
    # upstream: the server gets exactly the limit
    api.delete("/proxies/p/toxics/limit_data_downstream")
    add(api, "p", "limit_data", stream="upstream", attributes={"bytes": 7})
    before = echo.received
    with connect(port) as s:
        s.sendall(b"abc")
        assert recv_exactly(s, 3) == b"abc"
        s.sendall(b"defghij")
        # the upstream socket is fully closed at the limit, so its echo may not make it back
        assert b"defg".startswith(recv_until_eof(s))
    deadline = time.monotonic() + 5
    while echo.received - before < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert echo.received - before == 7


def test_toxicity_zero_acts_as_noop(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "latency", toxicity=0.0, attributes={"latency": 500})
    add(api, "p", "timeout", toxicity=0.0, stream="upstream", attributes={"timeout": 0})
    with connect(port) as s:
        assert rtt(s) < 0.5 - 0.1
    api.patch("/proxies/p/toxics/latency_downstream", json={"toxicity": 1})
    api.delete("/proxies/p/toxics/timeout_upstream")
    with connect(port) as s:
        assert rtt(s) >= 0.5 - EARLY


def test_disable_closes_connections_and_listener(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr)
    add(api, "p", "latency", attributes={"latency": 1})
    clients = [connect(port) for _ in range(3)]
    for c in clients:
        assert rtt(c) < SLOW
    assert api.patch("/proxies/p", json={"enabled": False}).status_code == 200
    for c in clients:
        with contextlib.suppress(ConnectionResetError):  # a reset is also a closed connection
            assert c.recv(10) == b""
        c.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    shown = api.patch("/proxies/p", json={"enabled": True}).json()
    assert shown["listen"] == f"127.0.0.1:{port}" and len(shown["toxics"]) == 1
    with connect(port) as s:
        assert rtt(s) < SLOW


def test_upstream_down_closes_the_client(api: httpx.Client) -> None:
    dead = free_port()
    port = make_proxy(api, f"127.0.0.1:{dead}")
    with connect(port) as s:
        assert recv_until_eof(s) == b""
    assert api.get("/version").status_code == 200
