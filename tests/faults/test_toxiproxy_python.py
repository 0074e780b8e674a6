"""Our server driven through toxiproxy-python 0.1.1, the client many Python users already have.

toxiproxy-python keeps the server address in class attributes (APIConsumer.host/port); the
fixture points them at this test's server and restores them afterwards.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from .helpers import ServerThread, TCPServer, connect, recv_exactly


@pytest.fixture
def toxiproxy(toxi_server: ServerThread) -> Iterator[Toxiproxy]:
    saved = APIConsumer.host, APIConsumer.port
    APIConsumer.host, APIConsumer.port = "127.0.0.1", toxi_server.server.port
    try:
        yield Toxiproxy()
    finally:
        APIConsumer.host, APIConsumer.port = saved


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def test_running_version_create_and_list(toxiproxy: Toxiproxy, echo: TCPServer) -> None:
    assert toxiproxy.running()
    assert toxiproxy.version() == b'{"version": "2.12.0"}\n'
    proxy = toxiproxy.create(upstream=echo.addr, name="echo")
    assert proxy.listen.startswith("127.0.0.1:") and _port(proxy.listen) > 0
    assert set(toxiproxy.proxies()) == {"echo"}
    assert toxiproxy.get_proxy("echo").upstream == echo.addr
    with pytest.raises(ProxyExists):
        toxiproxy.create(upstream=echo.addr, name="echo")
    with connect(_port(proxy.listen)) as s:
        s.sendall(b"hi")
        assert recv_exactly(s, 2) == b"hi"


def test_toxics_through_the_client(toxiproxy: Toxiproxy, echo: TCPServer) -> None:
    proxy = toxiproxy.create(upstream=echo.addr, name="t")
    proxy.add_toxic(type="latency", attributes={"latency": 50})
    toxics = proxy.toxics()
    assert list(toxics) == ["latency_downstream"]  # the default name
    toxic = toxics["latency_downstream"]
    assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1)
    assert toxic.attributes == {"latency": 50, "jitter": 0}
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="latency", stream="sideways", name="bad")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="nope")
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency")
    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    with pytest.raises(NotFound):
        proxy.destroy_toxic("latency_downstream")


def test_enable_and_disable_keep_listen_and_toxics(toxiproxy: Toxiproxy, echo: TCPServer) -> None:
    proxy = toxiproxy.create(upstream=echo.addr, name="d")
    proxy.add_toxic(type="latency", attributes={"latency": 1})
    port = _port(proxy.listen)
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    again = toxiproxy.get_proxy("d")
    assert again.enabled is True and again.listen == proxy.listen
    assert list(again.toxics()) == ["latency_downstream"]
    with connect(port) as s:
        s.sendall(b"up")
        assert recv_exactly(s, 2) == b"up"


def test_reset_populate_and_destroy(toxiproxy: Toxiproxy, echo: TCPServer) -> None:
    proxy = toxiproxy.create(upstream=echo.addr, name="r")
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    proxy.disable()
    assert toxiproxy.reset()
    shown = toxiproxy.get_proxy("r")
    assert shown.enabled is True and shown.toxics() == {}
    made = toxiproxy.populate(
        [{"name": "pop", "upstream": echo.addr, "listen": "127.0.0.1:0"}]  # its own populate
    )
    assert [p.name for p in made] == ["pop"]
    toxiproxy.destroy_all()
    assert toxiproxy.proxies() == {}
    with pytest.raises(NotFound):
        proxy.destroy()
