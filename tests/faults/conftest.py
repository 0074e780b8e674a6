"""Fixtures for the fault proxy: our server on its own event loop thread, and real TCP upstreams."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .helpers import EchoHandler, RpcServer, ServerThread, TCPServer, serve, serve_rpc


@pytest.fixture
def toxi_server() -> Iterator[ServerThread]:
    st = ServerThread()
    st.start()
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture
def api(toxi_server: ServerThread) -> Iterator[httpx.Client]:
    """Raw HTTP to our server's API."""
    with httpx.Client(base_url=toxi_server.url, timeout=10) as client:
        yield client


@pytest.fixture
def echo() -> Iterator[TCPServer]:
    """A TCP echo server on 127.0.0.1 (counts connections and bytes received)."""
    yield from serve(EchoHandler)


@pytest.fixture
def rpc_upstream() -> Iterator[RpcServer]:
    """A keep-alive HTTP/1.1 JSON-RPC server (records every body it gets)."""
    yield from serve_rpc()
