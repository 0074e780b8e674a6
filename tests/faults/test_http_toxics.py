"""HTTP toxics (omnidrill's extension of the Toxiproxy API) on real HTTP through our proxy.

The upstream is a real keep-alive HTTP/1.1 JSON-RPC server that records every body it gets, so
each test sees from the upstream's side whether a request was forwarded, and how.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .helpers import (
    RpcServer,
    ServerThread,
    TCPServer,
    connect,
    make_proxy,
    recv_exactly,
    recv_until_eof,
    rpc,
)

INFURA_429 = {
    "status": 429,
    "rpc_error_code": -32005,
    "rpc_error_message": "project ID request rate exceeded",
    "rpc_error_data": {"backoff_seconds": 30.0, "current_rps": 13.3, "allowed_rps": 10.0},
}


def add(api: httpx.Client, type_: str, proxy: str = "p", **body: object) -> httpx.Response:
    return api.post(f"/proxies/{proxy}/toxics", json={"type": type_, **body})


def added(api: httpx.Client, type_: str, proxy: str = "p", **body: object) -> dict:
    r = add(api, type_, proxy, **body)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def via(api: httpx.Client, rpc_upstream: RpcServer) -> httpx.Client:
    """A keep-alive HTTP client to the upstream through proxy `p` (one connection, reused)."""
    port = make_proxy(api, rpc_upstream.addr)
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=5, limits=httpx.Limits(max_connections=1)
    )
    yield client
    client.close()


def test_http_error_answers_on_an_open_keepalive_connection_without_forwarding(
    api: httpx.Client, via: httpx.Client, rpc_upstream: RpcServer
) -> None:
    assert via.post("/", json=rpc("eth_blockNumber")).json()["result"] == "ok:eth_blockNumber"
    toxic = added(api, "http_error", attributes={"status": 429, "headers": {"Retry-After": "7"}})
    assert toxic["name"] == "http_error_downstream" and toxic["attributes"]["status"] == 429
    r = via.post("/", json=rpc("eth_blockNumber", 2))  # the same (idle) connection
    assert r.status_code == 429 and r.headers["retry-after"] == "7" and r.content == b""
    assert rpc_upstream.calls() == ["eth_blockNumber"], "the failed request was not forwarded"
    assert api.delete("/proxies/p/toxics/http_error_downstream").status_code == 204
    assert via.post("/", json=rpc("eth_getBalance", 3)).json()["id"] == 3
    assert rpc_upstream.calls() == ["eth_blockNumber", "eth_getBalance"]


def test_rpc_error_echoes_the_id_with_infura_shape(
    api: httpx.Client, via: httpx.Client, rpc_upstream: RpcServer
) -> None:
    added(api, "http_error", attributes=INFURA_429)
    r = via.post("/", json=rpc("eth_call", "abc"))
    assert r.status_code == 429 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "jsonrpc": "2.0",
        "id": "abc",
        "error": {
            "code": -32005,
            "message": "project ID request rate exceeded",
            "data": {"backoff_seconds": 30.0, "current_rps": 13.3, "allowed_rps": 10.0},
        },
    }
    assert rpc_upstream.calls() == []
    added(api, "http_error", name="plain", attributes={"rpc_error_code": -32000})
    api.delete("/proxies/p/toxics/http_error_downstream")
    r = via.post("/", json=rpc("eth_call", 9))
    assert r.status_code == 200  # a JSON-RPC error alone comes in a 200, as providers send it
    assert r.json()["error"] == {"code": -32000, "message": "server error"}


def test_methods_pick_calls_and_others_pass_untouched(
    api: httpx.Client, via: httpx.Client, rpc_upstream: RpcServer
) -> None:
    added(
        api,
        "http_error",
        attributes={"status": 503, "methods": ["eth_sendRawTransaction"]},
    )
    assert via.post("/", json=rpc("eth_blockNumber")).status_code == 200
    assert via.post("/", json=rpc("eth_sendRawTransaction")).status_code == 503
    assert via.post("/", content=b"not json").json() == {"echo": "not json"}
    assert via.get("/x").text == "hello chunked world"  # not JSON-RPC: never matches methods
    assert rpc_upstream.calls() == ["eth_blockNumber"]


def test_batches_are_answered_per_call_in_order(
    api: httpx.Client, via: httpx.Client, rpc_upstream: RpcServer
) -> None:
    added(
        api,
        "http_error",
        attributes={"rpc_error_code": -32005, "methods": ["eth_sendRawTransaction"]},
    )
    batch = [
        rpc("eth_blockNumber", 1),
        rpc("eth_sendRawTransaction", 2),
        {"jsonrpc": "2.0", "method": "eth_sendRawTransaction", "params": []},  # notification
        rpc("eth_getBalance", 3),
    ]
    answers = via.post("/", json=batch).json()
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[0]["result"] == "ok:eth_blockNumber"
    assert answers[1]["error"]["code"] == -32005
    assert answers[2]["result"] == "ok:eth_getBalance"
    # only the calls the toxic did not answer reached the upstream
    assert json.loads(rpc_upstream.bodies[-1]) == [batch[0], batch[3]]
    everything = [rpc("eth_sendRawTransaction", 7), rpc("eth_sendRawTransaction", 8)]
    r = via.post("/", json=everything)
    assert [a["error"]["code"] for a in r.json()] == [-32005, -32005]
    assert len(rpc_upstream.bodies) == 1, "a batch answered whole is not forwarded"


def test_http_replace_forwards_then_replaces_what_it_names(
    api: httpx.Client, via: httpx.Client, rpc_upstream: RpcServer
) -> None:
    added(api, "http_replace", attributes={"status": 503, "body": '{"oops": true}'})
    r = via.post("/", json=rpc("eth_sendRawTransaction"))
    assert rpc_upstream.calls() == ["eth_sendRawTransaction"], "forwarded first"
    assert r.status_code == 503 and r.json() == {"oops": True}
    assert r.headers["x-upstream"] == "yes", "headers it does not name are the upstream's"
    api.patch(
        "/proxies/p/toxics/http_replace_downstream",
        json={"attributes": {"status": 0, "body": "", "headers": {"Retry-After": "2"}}},
    )
    r = via.post("/", json=rpc("eth_blockNumber", 5))
    assert r.status_code == 200 and r.json()["result"] == "ok:eth_blockNumber"
    assert r.headers["retry-after"] == "2"
    api.patch(
        "/proxies/p/toxics/http_replace_downstream",
        json={"attributes": {"headers": {}, "rpc_error_code": -32000, "methods": ["b"]}},
    )
    answers = via.post("/", json=[rpc("a", 1), rpc("b", 2)]).json()
    assert answers == [
        {"jsonrpc": "2.0", "id": 1, "result": "ok:a"},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32000, "message": "server error"}},
    ]
    assert rpc_upstream.calls()[-2:] == ["a", "b"], "http_replace forwards the whole batch"


def test_pipelined_requests_keep_their_order(api: httpx.Client, rpc_upstream: RpcServer) -> None:
    port = make_proxy(api, rpc_upstream.addr)
    added(api, "http_error", attributes={"status": 503, "methods": ["fail"]})

    def request(method: str, id_: int) -> bytes:
        body = json.dumps(rpc(method, id_)).encode()
        head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    with connect(port) as s:
        s.sendall(request("one", 1) + request("fail", 2) + request("three", 3))
        s.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = recv_until_eof(s)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]
    assert statuses == [200, 503, 200, 200]
    assert raw.index(b'"id": 1') < raw.index(b"503") < raw.index(b'"id": 3')
    assert raw.endswith(b"0\r\n\r\n"), "the chunked answer passes whole"
    assert rpc_upstream.calls() == ["one", "three"]


def test_local_answer_honours_connection_close_and_head(
    api: httpx.Client, rpc_upstream: RpcServer
) -> None:
    port = make_proxy(api, rpc_upstream.addr)
    added(api, "http_error", attributes={"status": 502, "body": "bad gateway"})
    with connect(port) as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        raw = recv_until_eof(s)  # the proxy closes after the answer it was asked to close on
    first, second = raw.split(b"HTTP/1.1 502", 2)[1:]
    assert b"Content-Length: 11" in first and not first.endswith(b"bad gateway"), "HEAD: no body"
    assert second.endswith(b"\r\n\r\nbad gateway") and b"Connection: close" in second
    assert rpc_upstream.bodies == []


def test_toxicity_is_rolled_per_connection_as_toxiproxy_does(
    api: httpx.Client, rpc_upstream: RpcServer
) -> None:
    port = make_proxy(api, rpc_upstream.addr)
    added(api, "http_error", toxicity=0.5, attributes={"status": 503})
    outcomes = []
    for _ in range(40):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            seen = {c.post("/", json=rpc("m")).status_code for _ in range(3)}
        assert len(seen) == 1, "one connection: the same roll for every request"
        outcomes.append(seen.pop())
    assert 5 <= outcomes.count(503) <= 35 and set(outcomes) == {200, 503}
    r = api.patch("/proxies/p/toxics/http_error_downstream", json={"toxicity": 0})
    assert r.status_code == 200
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
        assert all(c.post("/", json=rpc("m")).status_code == 200 for _ in range(5))


@pytest.mark.parametrize("open_first", [False, True], ids=["new connection", "open connection"])
def test_tcp_toxics_still_apply_to_answers_made_here(
    api: httpx.Client, via: httpx.Client, open_first: bool
) -> None:
    if open_first:  # the HTTP toxic then joins links that already have TCP toxics
        assert via.post("/", json=rpc("m")).status_code == 200
    added(api, "latency", attributes={"latency": 200})
    added(api, "latency", stream="upstream", attributes={"latency": 100})
    added(api, "http_error", attributes={"status": 503})
    t0 = time.monotonic()
    assert via.post("/", json=rpc("m")).status_code == 503
    assert time.monotonic() - t0 >= 0.295, "up the upstream chain, down the downstream one"


def test_not_http_passes_through_untouched(api: httpx.Client, echo: TCPServer) -> None:
    port = make_proxy(api, echo.addr, name="raw")
    added(api, "http_error", proxy="raw", attributes={"status": 503})
    with connect(port) as s:
        payload = b"\x00\x01 this is not HTTP\r\n\r\n" * 100
        s.sendall(payload)
        assert recv_exactly(s, len(payload)) == payload


def test_only_proxies_with_http_toxics_leave_the_splice_relay(
    api: httpx.Client, toxi_server: ServerThread, rpc_upstream: RpcServer
) -> None:
    fast = make_proxy(api, rpc_upstream.addr, name="fast")
    slow = make_proxy(api, rpc_upstream.addr, name="slow")
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=5) for p in (fast, slow)]
    try:
        for c in clients:
            assert c.post("/", json=rpc("m")).status_code == 200
        added(api, "http_error", proxy="slow", attributes={"status": 500})
        assert [c.post("/", json=rpc("m")).status_code for c in clients] == [200, 500]

        def state() -> dict[str, list[tuple[bool, bool]]]:
            procs = toxi_server.server.collection.proxies
            return {
                name: [(c.codec is not None, c.links[0].relay is not None) for c in p.connections]
                for name, p in procs.items()
            }

        shown = toxi_server.run(state)
        assert shown["slow"] == [(True, False)]
        from omnidrill.faults.server import splice

        if splice.available(toxi_server.loop):
            assert shown["fast"] == [(False, True)], "no toxics: the kernel relays its bytes"
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize(
    ("type_", "attributes", "message"),
    [
        ("http_error", {}, "http_error: give a status, an rpc_error_code, or both"),
        ("http_error", {"status": 42}, "http_error: status must be between 200 and 599 (or 0)"),
        ("http_replace", {"methods": ["x"]}, "http_replace: give at least one of status"),
        ("http_error", {"status": 500, "body": "x", "rpc_error_code": -1}, "not both"),
        ("http_error", {"status": 500, "headers": {"Content-Length": "1"}}, "set by the proxy"),
        ("http_error", {"status": 500, "headers": {"X": "a\r\nEvil: 1"}}, "contains CR, LF"),
        ("http_error", {"status": 500, "rpc_error_message": "m"}, "need rpc_error_code"),
        (
            "http_error",
            {"status": "500"},
            "bad request body: json: cannot unmarshal string into Go struct field "
            "HTTPErrorToxic.status of type int",
        ),
        (
            "http_error",
            {"headers": {"Retry-After": 5}},
            "bad request body: json: cannot unmarshal number 5 into Go struct field "
            "HTTPErrorToxic.headers of type string",
        ),
    ],
)
def test_bad_attributes_get_toxiproxys_error_shape(
    api: httpx.Client, echo: TCPServer, type_: str, attributes: dict, message: str
) -> None:
    make_proxy(api, echo.addr)
    r = add(api, type_, attributes=attributes)
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    body = json.loads(r.text)
    assert body["status"] == 400 and message in body["error"], body
    assert api.get("/proxies/p/toxics").json() == []
    if type_ == "http_error":  # an update is checked the same way, and changes nothing
        added(api, "http_error", name="ok", attributes={"status": 503})
        r = api.patch("/proxies/p/toxics/ok", json={"attributes": attributes or {"status": 0}})
        assert r.status_code == 400
        assert api.get("/proxies/p/toxics/ok").json()["attributes"]["status"] == 503


def test_listing_shows_every_attribute(api: httpx.Client, echo: TCPServer) -> None:
    make_proxy(api, echo.addr)
    added(api, "http_replace", stream="upstream", attributes={"status": 503})
    shown = api.get("/proxies/p/toxics").json()
    assert shown == [
        {
            "attributes": {
                "status": 503,
                "headers": {},
                "body": "",
                "rpc_error_code": 0,
                "rpc_error_message": "",
                "rpc_error_data": None,
                "methods": [],
            },
            "name": "http_replace_upstream",
            "type": "http_replace",
            "stream": "upstream",
            "toxicity": 1,
        }
    ]


def test_client_socket_closed_midway_is_harmless(
    api: httpx.Client, rpc_upstream: RpcServer
) -> None:
    port = make_proxy(api, rpc_upstream.addr)
    added(api, "http_replace", attributes={"status": 503})
    with connect(port) as s:
        s.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"partial')
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
        assert c.post("/", json=rpc("m")).status_code == 503


@pytest.mark.parametrize("toxic", [False, True], ids=["no toxics", "HTTP toxic"])
def test_answers_written_in_parts_are_not_held_for_delayed_acks(
    api: httpx.Client, via: httpx.Client, toxic: bool
) -> None:
    # The upstream writes each answer's head and body apart; with Nagle on the proxy's sockets
    # the second part would wait for the client's delayed ACK (about 40 ms on Linux).
    if toxic:
        added(api, "http_error", attributes={"status": 503, "methods": ["none"]})
    took = []
    for i in range(21):
        t0 = time.perf_counter()
        assert via.post("/", json=rpc("m", i)).status_code == 200
        took.append(time.perf_counter() - t0)
    # Linux holds an ACK at least 40 ms: a median under 35 ms on a busy machine shows none held
    assert sorted(took)[10] < 0.035, f"median {sorted(took)[10] * 1000:.1f} ms"


def test_an_exchange_in_flight_when_the_toxic_arrives_passes_untouched(
    api: httpx.Client, via: httpx.Client, rpc_upstream: RpcServer
) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(via.post, "/", json=rpc("slow", 1))
        time.sleep(0.15)  # the request is upstream, its answer not yet back
        added(api, "http_error", attributes={"status": 503})
        answer = slow.result(5)
    assert answer.status_code == 200 and answer.json()["result"] == "ok:slow"
    assert via.post("/", json=rpc("next", 2)).status_code == 503, "from the next request on"
    assert rpc_upstream.calls() == ["slow"]


def test_a_client_that_never_reads_its_answers_is_paused(
    api: httpx.Client, toxi_server: ServerThread, rpc_upstream: RpcServer
) -> None:
    port = make_proxy(api, rpc_upstream.addr)
    added(api, "http_error", attributes={"status": 503, "body": "x" * 10_000})
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    with connect(port) as s:
        s.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            for _ in range(10_000):  # 1 GB of answers if every request were taken in
                s.sendall(request * 10)

        def buffered() -> int:
            (conn,) = toxi_server.server.collection.proxies["p"].connections
            return conn.client.transport.get_write_buffer_size()

        assert buffered() < 4 * 1024 * 1024, "answers held for the client stay bounded"


@pytest.mark.parametrize("upstream_toxic", [False, True], ids=["alone", "after a TCP toxic"])
def test_requests_before_the_clients_eof_are_still_judged(
    api: httpx.Client, rpc_upstream: RpcServer, upstream_toxic: bool
) -> None:
    port = make_proxy(api, rpc_upstream.addr)
    if upstream_toxic:  # requests reach the HTTP toxic through a stage that waits for room
        added(api, "latency", stream="upstream", attributes={"latency": 1})
    big = {"status": 503, "body": "x" * 100_000, "methods": ["eth_sendRawTransaction"]}
    added(api, "http_error", attributes=big)  # more answers than the proxy holds for a client
    body = json.dumps(rpc("eth_sendRawTransaction")).encode()
    one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with connect(port) as s:
        s.sendall(one * 50)
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
    time.sleep(0.2)
    assert rpc_upstream.calls() == [], "no matched request reached the upstream"


def test_an_answer_broken_off_by_the_upstream_reaches_the_client_as_it_came(
    api: httpx.Client,
) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = make_proxy(api, f"127.0.0.1:{srv.getsockname()[1]}")
    added(api, "http_replace", attributes={"status": 503, "methods": ["other"]})
    with connect(port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        upstream, _ = srv.accept()
        with upstream:
            upstream.recv(1000)
            upstream.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")  # and the upstream dies
        assert recv_until_eof(s) == b"HTTP/1.1 200 OK\r\nContent-Le"
    srv.close()
