"""FaultClient against our server: every call, error mapping, and ensure_proxies both ways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omnidrill.errors import ExitCode, Inconclusive
from omnidrill.faults.client import (
    FaultAPIError,
    FaultClient,
    FaultProxyMismatch,
    FaultProxyUnreachable,
    FaultRequestRejected,
)
from omnidrill.netutil import free_port

from .helpers import ServerThread, TCPServer, connect, recv_exactly


@pytest.fixture
def client(toxi_server: ServerThread) -> Iterator[FaultClient]:
    with FaultClient(toxi_server.url) as c:
        yield c


def test_calls(client: FaultClient, echo: TCPServer) -> None:
    assert client.version() == "2.12.0"
    made = client.create_proxy("c", echo.addr)
    assert made["listen"].startswith("127.0.0.1:") and made["enabled"] is True
    assert client.get_proxy("c") == made
    assert list(client.proxies()) == ["c"]
    toxic = client.add_toxic("c", "latency", name="omnidrill-x", attributes={"latency": 5})
    assert toxic["name"] == "omnidrill-x" and toxic["stream"] == "downstream"
    updated = client.update_toxic("c", "omnidrill-x", attributes={"jitter": 2}, toxicity=0.5)
    assert updated["attributes"] == {"latency": 5, "jitter": 2} and updated["toxicity"] == 0.5
    assert client.get_toxic("c", "omnidrill-x") == updated
    assert [t["name"] for t in client.toxics("c")] == ["omnidrill-x"]
    client.remove_toxic("c", "omnidrill-x")
    client.remove_toxic("c", "omnidrill-x", missing_ok=True)
    assert client.toxics("c") == []
    assert client.set_enabled("c", False)["enabled"] is False
    client.reset()
    assert client.get_proxy("c")["enabled"] is True
    port = int(made["listen"].rsplit(":", 1)[1])
    with connect(port) as s:
        s.sendall(b"ok")
        assert recv_exactly(s, 2) == b"ok"
    client.delete_proxy("c")
    assert client.proxies() == {}


def test_errors(client: FaultClient, echo: TCPServer) -> None:
    with pytest.raises(FaultAPIError) as info:
        client.get_proxy("missing")
    err = info.value
    assert (err.status, err.message, err.method, err.path) == (
        404,
        "proxy not found",
        "GET",
        "/proxies/missing",
    )
    assert isinstance(err, Inconclusive) and err.exit_code == ExitCode.INCONCLUSIVE
    assert "proxy not found" in str(err)
    client.create_proxy("c", echo.addr)
    with pytest.raises(FaultRequestRejected) as bad:
        client.add_toxic("c", "nope")
    assert bad.value.status == 400 and bad.value.message == "invalid toxic type"
    assert bad.value.exit_code == ExitCode.BAD_INPUT
    with pytest.raises(FaultAPIError) as dup:
        client.create_proxy("c", echo.addr)
    assert dup.value.status == 409
    with pytest.raises(FaultRequestRejected):
        client.add_toxic("c", "latency", attributes={"latency": "100"})
    with pytest.raises(ValueError, match="expected http://host:port"):
        FaultClient("127.0.0.1:8474")


def test_unreachable() -> None:
    with (
        FaultClient(f"http://127.0.0.1:{free_port()}", timeout=2) as c,
        pytest.raises(FaultProxyUnreachable) as info,
    ):
        c.version()
    assert info.value.exit_code == ExitCode.INCONCLUSIVE
    assert "cannot reach the Toxiproxy API" in str(info.value)


def test_ensure_proxies_populates_and_corrects(client: FaultClient, echo: TCPServer) -> None:
    port_a, port_b = free_port(), free_port()
    specs = [
        {"name": "a", "listen": f"127.0.0.1:{port_a}", "upstream": echo.addr},
        {"name": "b", "listen": f"localhost:{port_b}", "upstream": echo.addr},
    ]
    shown = client.ensure_proxies(specs, populate=True)
    assert [p["listen"] for p in shown] == [f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"]
    # drift: a disabled, b pointing elsewhere; populate corrects both
    client.set_enabled("a", False)
    client.update_proxy("b", upstream="127.0.0.1:9")
    shown = client.ensure_proxies(specs, populate=True)
    assert [p["enabled"] for p in shown] == [True, True]
    assert shown[1]["upstream"] == echo.addr
    # and a spec asking for a disabled proxy gets one
    shown = client.ensure_proxies([{**specs[0], "enabled": False}], populate=True)
    assert shown[0]["enabled"] is False


def test_ensure_proxies_verify_only(client: FaultClient, echo: TCPServer) -> None:
    port_a = free_port()
    specs = [
        {"name": "a", "listen": f"localhost:{port_a}", "upstream": echo.addr},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": echo.addr},
    ]
    with pytest.raises(FaultProxyMismatch) as info:
        client.ensure_proxies(specs, populate=False)
    assert len(info.value.differences) == 2
    assert "a: missing" in str(info.value) and "b: missing" in str(info.value)
    assert client.proxies() == {}  # nothing was created
    client.create_proxy("a", "127.0.0.1:9", listen=f"127.0.0.1:{port_a}", enabled=False)
    client.create_proxy("b", echo.addr)
    with pytest.raises(FaultProxyMismatch) as info:
        client.ensure_proxies(specs, populate=False)
    assert info.value.differences == [
        f"a: upstream is 127.0.0.1:9, want {echo.addr}",
        "a: is disabled, want enabled",
    ]
    assert client.get_proxy("a")["enabled"] is False  # still untouched
    client.update_proxy("a", upstream=echo.addr, enabled=True)
    shown = client.ensure_proxies(specs, populate=False)  # listen :0 matches any port
    assert [p["name"] for p in shown] == ["a", "b"]
    with pytest.raises(ValueError, match=r"faults.proxies\[0\].upstream"):
        client.ensure_proxies([{"name": "x", "listen": "127.0.0.1:0"}], populate=False)


def test_http_toxics_through_the_client(client: FaultClient, echo: TCPServer) -> None:
    client.create_proxy("h", echo.addr)
    attrs = {"status": 429, "rpc_error_code": -32005, "rpc_error_data": {"backoff_seconds": 3}}
    made = client.add_toxic("h", "http_error", name="omnidrill-h", attributes=attrs)
    assert made["type"] == "http_error" and made["attributes"]["rpc_error_data"] == {
        "backoff_seconds": 3
    }
    updated = client.update_toxic("h", "omnidrill-h", attributes={"methods": ["eth_call"]})
    assert updated["attributes"]["methods"] == ["eth_call"]
    assert updated["attributes"]["status"] == 429, "omitted attributes keep their values"
    with pytest.raises(FaultRequestRejected) as caught:
        client.add_toxic("h", "http_replace", attributes={"status": 700})
    assert caught.value.status == 400 and "status must be between 200 and 599" in str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    client.remove_toxic("h", "omnidrill-h")
    assert client.toxics("h") == []
