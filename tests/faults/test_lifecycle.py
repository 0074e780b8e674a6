"""Resources: closing many connections leaves no sockets, links or tasks behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .helpers import (
    ServerThread,
    TCPServer,
    connect,
    make_proxy,
    recv_exactly,
    recv_until_eof,
    serve,
)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _server_state(st: ServerThread) -> tuple[int, int, int]:
    """(connections, live links, tasks) as the server's loop sees them."""

    def read() -> tuple[int, int, int]:
        proxies = st.server.collection.proxies.values()
        conns = sum(len(p.connections) for p in proxies)
        links = sum(len(p.toxics.links) for p in proxies)
        return conns, links, len(asyncio.all_tasks()) - 1  # minus the task reading this

    return st.run(read)


def _settle(
    st: ServerThread, want_fds: int, want_tasks: int, timeout: float = 10.0
) -> tuple[int, int, int, int]:
    """Wait until the server is back to no connections and the wanted fds and tasks."""
    deadline = time.monotonic() + timeout
    while True:
        conns, links, tasks = _server_state(st)
        fds = _open_fds()
        done = conns == links == 0 and tasks <= want_tasks and fds <= want_fds
        if done or time.monotonic() > deadline:
            return conns, links, tasks, fds
        time.sleep(0.05)


def _one_connection(port: int, i: int) -> None:
    with connect(port) as s:
        payload = f"conn-{i}".encode()
        s.sendall(payload)
        assert recv_exactly(s, len(payload)) == payload
        if i % 3 == 0:
            s.shutdown(socket.SHUT_WR)  # half-close: the proxy closes both directions
            assert recv_until_eof(s) == b""


@pytest.mark.parametrize("toxics", [False, True], ids=["splice-relay", "toxic-stages"])
def test_thousand_connections_leave_nothing_behind(
    toxi_server: ServerThread, api: httpx.Client, echo: TCPServer, toxics: bool
) -> None:
    port = make_proxy(api, echo.addr)
    if toxics:  # on both directions, so every connection runs stage tasks
        api.post("/proxies/p/toxics", json={"type": "noop", "stream": "upstream"})
        api.post("/proxies/p/toxics", json={"type": "latency", "attributes": {"latency": 0}})
    # without toxics, links move bytes by splice through a pipe: two more fds each
    _one_connection(port, 1)  # warm up lazily created resources (thread pools, etc.)
    _settle(toxi_server, 10**6, 10**6)
    baseline = _open_fds()
    base_tasks = _server_state(toxi_server)[2]  # the API connection of `api` is one

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: _one_connection(port, i), range(1000)))
    assert echo.accepted == 1001

    conns, links, tasks, fds = _settle(toxi_server, baseline, base_tasks)
    assert (conns, links) == (0, 0)
    assert tasks <= base_tasks, f"{tasks - base_tasks} tasks left running"
    assert fds <= baseline, f"{fds - baseline} file descriptors left open"


def test_disable_and_stop_release_open_connections(toxi_server: ServerThread, echo) -> None:
    with httpx.Client(base_url=toxi_server.url) as api:
        port = make_proxy(api, echo.addr)
        api.post("/proxies/p/toxics", json={"type": "timeout", "attributes": {"timeout": 0}})
        baseline = _open_fds()
        base_tasks = _server_state(toxi_server)[2]
        clients = [connect(port) for _ in range(50)]
        for c in clients:
            c.sendall(b"held")
        deadline = time.monotonic() + 5
        while _server_state(toxi_server)[0] < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _server_state(toxi_server)[0] == 50
        api.patch("/proxies/p", json={"enabled": False})
        for c in clients:
            c.close()
        conns, links, tasks, fds = _settle(toxi_server, baseline, base_tasks)
        assert (conns, links) == (0, 0) and tasks <= base_tasks and fds <= baseline
        # stopping the whole server closes the listener and what is still open
        api.patch("/proxies/p", json={"enabled": True})
        still_open = connect(port)
        still_open.sendall(b"x")
    toxi_server.call(toxi_server.server.stop())
    with contextlib.suppress(ConnectionResetError):  # unread data makes the close a reset
        assert still_open.recv(10) == b""
    still_open.close()
    conns, links, tasks, _fds = _settle(toxi_server, baseline, 0)
    assert (conns, links, tasks) == (0, 0, 0)  # the API connection is closed by stop() too


class _Firehose:
    """Upstream that sends FIREHOSE_BYTES as fast as it can, then closes."""

    def __init__(self, request, client_address, server) -> None:
        block = b"\xab" * (1 << 20)
        with contextlib.suppress(OSError):
            for _ in range(FIREHOSE_BYTES >> 20):
                request.sendall(block)
        request.close()


FIREHOSE_BYTES = 64 << 20


@pytest.mark.parametrize("toxic", [None, "noop", "latency"])
def test_slow_reader_bounds_what_the_proxy_buffers(
    toxi_server: ServerThread, api: httpx.Client, toxic: str | None
) -> None:
    from omnidrill.faults.server.link import CHANNEL_MAX_BYTES
    from omnidrill.faults.server.proxy import READ_SIZE, WRITE_HIGH_WATER

    for srv in serve(_Firehose):
        port = make_proxy(api, srv.addr)
        if toxic:
            api.post("/proxies/p/toxics", json={"type": toxic, "attributes": {"latency": 5}})
        with connect(port, timeout=30) as s:
            time.sleep(1.0)  # the client reads nothing meanwhile

            def buffered() -> int:
                total = 0
                for conn in toxi_server.server.collection.proxies["p"].connections:
                    for link in conn.links:
                        total += sum(st.inp._bytes for st in link.stages)
                        if link.relay is not None:
                            total += link.relay.pending
                    t = conn.client.transport
                    total += t.get_write_buffer_size() if t is not None else 0
                return total

            held = toxi_server.run(buffered)
            bound = CHANNEL_MAX_BYTES * 2 + WRITE_HIGH_WATER + 2 * READ_SIZE
            assert held <= bound, f"{held} bytes buffered for a reader that reads nothing"
            data = recv_until_eof(s)  # and nothing was lost on the way
            assert len(data) == FIREHOSE_BYTES and data[:1] == data[-1:] == b"\xab"
