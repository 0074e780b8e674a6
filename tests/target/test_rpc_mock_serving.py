"""serve_app / serve_in_thread: the runner every server of the stack uses (here with the mock)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from facilities import missing
from omnidrill.netutil import free_port
from omnihub_ref.rpc_mock import create_rpc_app
from omnihub_ref.serving import serve_app, serve_in_thread


def test_serve_in_thread_binds_a_free_port_and_stops() -> None:
    with serve_in_thread(create_rpc_app("p")) as srv:
        assert srv.port > 0 and srv.url == f"http://127.0.0.1:{srv.port}"
        assert httpx.get(f"{srv.url}/__calls", timeout=5).status_code == 200
        listener = srv.server.servers[0].sockets[0]
        # asyncio turns on TCP_NODELAY only for sockets created as IPPROTO_TCP; without it every
        # request on a kept-alive connection waits ~40 ms for a delayed ACK.
        assert listener.proto == socket.IPPROTO_TCP
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.url}/__calls", timeout=2)


def test_serve_app_on_a_given_port_and_a_busy_port_is_a_clear_oserror() -> None:
    port = free_port()

    async def main() -> None:
        running = await serve_app(create_rpc_app("p"), "127.0.0.1", port)
        try:
            assert running.port == port
            async with httpx.AsyncClient(timeout=5) as client:
                resp = await client.post(
                    running.url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
                )
                assert resp.json()["result"] == hex(31337)
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                await serve_app(create_rpc_app("q"), "127.0.0.1", port)
        finally:
            await running.stop()
        assert running.task.done()
        await running.stop()  # a second stop is harmless

    asyncio.run(main())


def test_serve_on_ipv6_loopback_when_available() -> None:
    if not socket.has_ipv6:
        missing("IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        missing("the IPv6 loopback ::1", exc)
    with serve_in_thread(create_rpc_app("p"), "::1") as srv:
        assert srv.url.startswith("http://[::1]:")
        assert httpx.get(f"{srv.url}/__calls", timeout=5).json()["calls"] == []
