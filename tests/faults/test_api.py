"""The HTTP API through raw HTTP: status codes, bodies and decoding rules of Toxiproxy 2.12."""

from __future__ import annotations

import json
import socket

import httpx

from facilities import missing
from omnidrill.netutil import free_port

from .helpers import ServerThread, connect, make_proxy


def _err(r: httpx.Response) -> str:
    return r.json()["error"]


def test_version_request_id_and_browser_refusal(api: httpx.Client) -> None:
    r = api.get("/version")
    assert r.status_code == 200
    assert r.content == b'{"version": "2.12.0"}\n'
    assert r.headers["content-type"] == "application/json;charset=utf-8"
    first = r.headers["x-toxiproxy-request-id"]
    assert len(first) == 20
    assert api.get("/version").headers["x-toxiproxy-request-id"] != first
    r = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert r.status_code == 403
    assert r.text == "User agent not allowed\n"


def test_unknown_paths_and_methods(api: httpx.Client) -> None:
    r = api.get("/nope")
    assert (r.status_code, r.text) == (404, "404 page not found\n")
    assert api.put("/proxies").status_code == 405
    assert api.delete("/version").status_code == 405


def test_proxy_lifecycle(api: httpx.Client, echo) -> None:
    assert api.get("/proxies").json() == {}
    r = api.post("/proxies", json={"name": "a", "upstream": echo.addr, "listen": "127.0.0.1:0"})
    assert r.status_code == 201
    proxy = r.json()
    assert list(proxy) == ["name", "listen", "upstream", "enabled", "toxics"]
    host, port = proxy["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert proxy["enabled"] is True and proxy["toxics"] == []
    assert api.get("/proxies").json() == {"a": proxy}
    assert api.get("/proxies/a").json() == proxy
    with connect(int(port)) as s:
        s.sendall(b"ping")
        assert s.recv(10) == b"ping"
    r = api.delete("/proxies/a")
    assert (r.status_code, r.content) == (204, b"")
    r = api.get("/proxies/a")
    assert r.status_code == 404
    assert r.json() == {"error": "proxy not found", "status": 404}
    assert r.headers["content-type"] == "text/plain; charset=utf-8"  # Go's http.Error
    assert r.text.endswith("}\n")
    assert api.delete("/proxies/a").status_code == 404


def test_create_errors_and_server_keeps_serving(api: httpx.Client, echo) -> None:
    make_proxy(api, echo.addr, "dup")
    r = api.post("/proxies", json={"name": "dup", "upstream": echo.addr})
    assert (r.status_code, _err(r)) == (409, "proxy already exists")
    r = api.post("/proxies", json={"upstream": echo.addr})
    assert (r.status_code, _err(r)) == (400, "missing required field: name")
    r = api.post("/proxies", json={"name": "x"})
    assert (r.status_code, _err(r)) == (400, "missing required field: upstream")
    r = api.post("/proxies", content=b"")
    assert (r.status_code, _err(r)) == (400, "bad request body: EOF")
    r = api.post("/proxies", content=b"{not json")
    assert r.status_code == 400 and _err(r).startswith("bad request body: invalid character")
    r = api.post("/proxies", json={"name": "x", "upstream": echo.addr, "enabled": "yes"})
    assert r.status_code == 400
    assert _err(r) == (
        "bad request body: json: cannot unmarshal string into Go struct field "
        "toxiproxy.Proxy.enabled of type bool"
    )
    # listen address in use: a 500 with the bind error, and nothing is created
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = api.post(
            "/proxies", json={"name": "busy", "upstream": echo.addr, "listen": f"127.0.0.1:{port}"}
        )
        assert r.status_code == 500
        assert _err(r) == f"listen tcp 127.0.0.1:{port}: bind: address already in use"
    assert api.get("/proxies/busy").status_code == 404
    assert api.get("/version").status_code == 200
    assert sorted(api.get("/proxies").json()) == ["dup"]


def test_go_json_decoding_rules(api: httpx.Client, echo) -> None:
    # case-insensitive keys, null = absent (Ruby sends "listen": null), unknown fields ignored
    # (the Go client sends "toxics"), and only the first JSON value of the body is read
    body = (
        b'{"NAME": "ci", "Upstream": "' + echo.addr.encode() + b'", "listen": null,'
        b' "LISTEN": "127.0.0.1:0", "toxics": [1, 2], "whatever": {"x": 1}} trailing'
    )
    r = api.post("/proxies", content=body)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "ci" and r.json()["enabled"] is True
    r = api.post("/proxies/ci/toxics", json={"TYPE": "latency", "Attributes": {"LATENCY": 5}})
    assert r.status_code == 200
    assert r.json()["attributes"] == {"latency": 5, "jitter": 0}
    for bad, kind in ((1.5, "number 1.5"), ("100", "string"), (True, "bool"), ([1], "array")):
        r = api.post("/proxies/ci/toxics", json={"type": "bandwidth", "attributes": {"rate": bad}})
        assert r.status_code == 400, bad
        assert f"cannot unmarshal {kind} into" in _err(r) and "of type int64" in _err(r)
    r = api.post("/proxies/ci/toxics", json={"type": "latency", "toxicity": "1"})
    assert r.status_code == 400 and "of type float32" in _err(r)


def test_patch_and_deprecated_post_update(api: httpx.Client, echo) -> None:
    port = make_proxy(api, echo.addr, "u")
    api.post("/proxies/u/toxics", json={"type": "latency", "attributes": {"latency": 1}})
    r = api.patch("/proxies/u", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert r.json()["listen"] == f"127.0.0.1:{port}" and len(r.json()["toxics"]) == 1
    r = api.post("/proxies/u", json={"enabled": True})  # deprecated, still works
    assert r.status_code == 200 and r.json()["enabled"] is True
    assert r.json()["listen"] == f"127.0.0.1:{port}"  # the ephemeral port is kept
    r = api.patch("/proxies/u", json={"name": "ignored", "upstream": "127.0.0.1:1"})
    assert r.json()["name"] == "u" and r.json()["upstream"] == "127.0.0.1:1"
    r = api.patch("/proxies/u", json={"listen": "localhost:0"})
    assert r.status_code == 200
    assert r.json()["listen"].startswith("127.0.0.1:") and r.json()["listen"] != f"127.0.0.1:{port}"
    r = api.patch("/proxies/nope", json={"enabled": False})
    assert (r.status_code, _err(r)) == (404, "proxy not found")
    r = api.patch("/proxies/u", json={"enabled": 1})
    assert r.status_code == 400


def test_toxic_create_defaults_update_and_delete(api: httpx.Client, echo) -> None:
    make_proxy(api, echo.addr, "t")
    r = api.post("/proxies/t/toxics", json={"type": "latency"})
    assert r.status_code == 200  # 200, not 201
    assert r.json() == {
        "attributes": {"latency": 0, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    r = api.post("/proxies/t/toxics", json={"type": "slicer", "stream": "UPSTREAM", "name": "s"})
    assert r.json()["stream"] == "UPSTREAM"
    assert r.json()["attributes"] == {"average_size": 0, "size_variation": 0, "delay": 0}
    r = api.post("/proxies/t/toxics", json={"type": "noop", "stream": "upstream"})
    assert r.status_code == 200 and r.json()["name"] == "noop_upstream"
    names = [t["name"] for t in api.get("/proxies/t/toxics").json()]
    assert names == ["s", "noop_upstream", "latency_downstream"]  # upstream chain first
    # name is unique across both streams
    r = api.post("/proxies/t/toxics", json={"type": "bandwidth", "name": "s"})
    assert (r.status_code, _err(r)) == (409, "toxic already exists")
    r = api.post("/proxies/t/toxics", json={"type": "latency", "stream": "sideways"})
    assert (r.status_code, _err(r)) == (
        400,
        "stream was invalid, can be either upstream or downstream",
    )
    for bad_type in ("nope", "down", ""):
        r = api.post("/proxies/t/toxics", json={"type": bad_type, "name": "z"})
        assert (r.status_code, _err(r)) == (400, "invalid toxic type")
    r = api.post("/proxies/missing/toxics", json={"type": "latency"})
    assert (r.status_code, _err(r)) == (404, "proxy not found")
    # update: attributes merged, toxicity kept unless given
    r = api.patch(
        "/proxies/t/toxics/latency_downstream",
        json={"attributes": {"latency": 100, "jitter": 10}, "toxicity": 0.5},
    )
    assert r.status_code == 200
    assert r.json()["attributes"] == {"latency": 100, "jitter": 10} and r.json()["toxicity"] == 0.5
    r = api.patch("/proxies/t/toxics/latency_downstream", json={"attributes": {"jitter": 3}})
    assert r.json()["attributes"] == {"latency": 100, "jitter": 3} and r.json()["toxicity"] == 0.5
    r = api.post("/proxies/t/toxics/latency_downstream", json={"toxicity": 1})  # POST works too
    assert r.json()["toxicity"] == 1 and r.json()["attributes"]["latency"] == 100
    r = api.patch("/proxies/t/toxics/latency_downstream", json={"attributes": {"latency": "x"}})
    assert r.status_code == 400
    assert api.get("/proxies/t/toxics/latency_downstream").json()["attributes"]["latency"] == 100
    r = api.get("/proxies/t/toxics/nope")
    assert (r.status_code, _err(r)) == (404, "toxic not found")
    r = api.patch("/proxies/t/toxics/nope", json={})
    assert (r.status_code, _err(r)) == (404, "toxic not found")
    assert api.delete("/proxies/t/toxics/s").status_code == 204
    r = api.delete("/proxies/t/toxics/s")
    assert (r.status_code, _err(r)) == (404, "toxic not found")
    shown = api.get("/proxies/t").json()["toxics"]
    assert [t["name"] for t in shown] == ["noop_upstream", "latency_downstream"]


def test_reset_enables_and_clears_toxics(api: httpx.Client, echo) -> None:
    port = make_proxy(api, echo.addr, "r")
    api.post("/proxies/r/toxics", json={"type": "latency"})
    api.patch("/proxies/r", json={"enabled": False})
    r = api.post("/reset")
    assert (r.status_code, r.content) == (204, b"")
    shown = api.get("/proxies/r").json()
    assert shown["enabled"] is True and shown["toxics"] == []
    assert shown["listen"] == f"127.0.0.1:{port}"
    with connect(port) as s:
        s.sendall(b"back")
        assert s.recv(10) == b"back"


def test_populate(api: httpx.Client, echo, toxi_server: ServerThread) -> None:
    fixed = free_port()
    listen = f"localhost:{fixed}"
    r = api.post(
        "/populate",
        json=[
            {"name": "one", "upstream": echo.addr, "listen": listen},
            {"name": "two", "upstream": echo.addr, "listen": "127.0.0.1:0", "enabled": False},
        ],
    )
    assert r.status_code == 201, r.text
    proxies = r.json()["proxies"]
    assert [p["name"] for p in proxies] == ["one", "two"]
    assert proxies[0]["listen"] == f"127.0.0.1:{fixed}" and proxies[0]["enabled"] is True
    assert proxies[1]["enabled"] is False
    # the same entry again keeps the proxy as it is: toxics and disabled state included
    api.post("/proxies/one/toxics", json={"type": "latency"})
    api.patch("/proxies/one", json={"enabled": False})
    r = api.post("/populate", json=[{"name": "one", "upstream": echo.addr, "listen": listen}])
    assert r.status_code == 201
    kept = r.json()["proxies"][0]
    assert kept["enabled"] is False and [t["name"] for t in kept["toxics"]] == [
        "latency_downstream"
    ]
    # a different upstream replaces it (toxics lost, enabled by default); unlisted are kept
    r = api.post("/populate", json=[{"name": "one", "upstream": "127.0.0.1:9", "listen": listen}])
    replaced = r.json()["proxies"][0]
    assert replaced["toxics"] == [] and replaced["enabled"] is True
    assert sorted(api.get("/proxies").json()) == ["one", "two"]
    # validation first: nothing is applied when an entry is invalid
    r = api.post(
        "/populate",
        json=[{"name": "three", "upstream": echo.addr}, {"upstream": echo.addr}],
    )
    assert (r.status_code, _err(r)) == (400, "missing required field: name at proxy 2")
    assert "three" not in api.get("/proxies").json()
    # a bind failure mid-list keeps what came before and reports it with the error
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        r = api.post(
            "/populate",
            json=[
                {"name": "four", "upstream": echo.addr, "listen": "127.0.0.1:0"},
                {"name": "five", "upstream": echo.addr, "listen": f"127.0.0.1:{busy}"},
            ],
        )
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == f"listen tcp 127.0.0.1:{busy}: bind: address already in use"
    assert body["status"] == 500 and [p["name"] for p in body["proxies"]] == ["four"]
    assert "four" in api.get("/proxies").json() and "five" not in api.get("/proxies").json()
    r = api.post("/populate", json=[])
    assert (r.status_code, r.json()) == (201, {"proxies": None})
    r = api.post("/populate", json={"name": "x"})
    assert r.status_code == 400 and _err(r).startswith("bad request body: json: cannot unmarshal")
    # and the Python entry point behaves the same
    shown = toxi_server.call(
        toxi_server.server.populate(
            [{"name": "six", "upstream": echo.addr, "listen": "127.0.0.1:0"}]
        )
    )
    assert shown[0]["name"] == "six" and shown[0]["enabled"] is True


def test_update_to_the_same_address_by_hostname_keeps_connections(api: httpx.Client, echo) -> None:
    port = make_proxy(api, echo.addr, "h")
    with connect(port) as s:
        s.sendall(b"1")
        assert s.recv(10) == b"1"
        r = api.patch("/proxies/h", json={"listen": f"localhost:{port}"})
        assert r.status_code == 200 and r.json()["listen"] == f"127.0.0.1:{port}"
        s.sendall(b"2")
        assert s.recv(10) == b"2"  # not restarted: the open connection still works
        r = api.patch("/proxies/h", json={"listen": "127.0.0.1"})
        assert (r.status_code, _err(r)) == (
            500,
            "listen tcp: address 127.0.0.1: missing port in address",
        )


def test_ipv6_listen(api: httpx.Client, echo) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        missing("the IPv6 loopback ::1")
    r = api.post("/proxies", json={"name": "v6", "upstream": echo.addr, "listen": "[::1]:0"})
    assert r.status_code == 201, r.text
    listen = r.json()["listen"]
    assert listen.startswith("[::1]:")
    port = int(listen.rsplit(":", 1)[1])
    with socket.create_connection(("::1", port), timeout=5) as s:
        s.sendall(b"six")
        assert s.recv(10) == b"six"


def _read_response(s: socket.socket) -> tuple[bytes, bytes]:
    """Status line + headers, and the body by Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += s.recv(4096)
    return head, body


def test_raw_http_expect_continue_chunked_and_keep_alive(toxi_server: ServerThread, echo) -> None:
    body = json.dumps({"name": "raw", "upstream": echo.addr, "listen": "127.0.0.1:0"}).encode()
    with socket.create_connection(("127.0.0.1", toxi_server.server.port), timeout=5) as s:
        s.sendall(
            b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert s.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        head, answer = _read_response(s)
        assert head.startswith(b"HTTP/1.1 201 Created\r\n")
        assert json.loads(answer)["name"] == "raw"
        # the same connection again (keep-alive), with a chunked body
        chunk = b'{"type": "noop"}'
        s.sendall(
            b"POST /proxies/raw/toxics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk)
        )
        head, answer = _read_response(s)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert json.loads(answer)["name"] == "noop_downstream"
