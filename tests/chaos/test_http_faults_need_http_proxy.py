"""A profile whose fault proxy is a real Toxiproxy cannot run P4: the drill says so and skips.

Toxiproxy 2.12.0 answers an unknown toxic type with 400 `invalid toxic type` (api.go). The stand-in
here is that API's shape in front of the reference stack's own proxy: every call is passed on,
except the creation of an HTTP toxic, which it refuses exactly as Toxiproxy does.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from chaos.drillkit import Stack, run_drills, start_stack

# the types Toxiproxy 2.12.0 registers (toxics/*.go)
TOXIPROXY_TYPES = {"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer"}
TOXIPROXY_TYPES |= {"limit_data", "noop"}


class _ToxiproxyShaped(http.server.BaseHTTPRequestHandler):
    """Passes the Toxiproxy API on to `upstream`, but knows only Toxiproxy's own toxic types."""

    protocol_version = "HTTP/1.1"
    upstream = ""
    refused: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "POST" and self.path.endswith("/toxics"):
            kind = json.loads(body or b"{}").get("type", "")
            if kind not in TOXIPROXY_TYPES:
                self.refused.append(kind)
                self._answer(400, b'{"error":"invalid toxic type","status":400}\n')
                return
        r = httpx.request(
            self.command, self.upstream + self.path, content=body, headers={"User-Agent": "shim"}
        )
        self._answer(r.status_code, r.content, r.headers.get("content-type"))

    def _answer(self, status: int, body: bytes, ctype: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype or "text/plain; charset=utf-8")
        self.send_header("X-Toxiproxy-Request-Id", "shim")
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _relay


@pytest.fixture
def toxiproxy_profile(tmp_path: Path) -> Iterator[tuple[Stack, list[str]]]:
    with start_stack(tmp_path / "stack") as stack:
        handler = type("Shim", (_ToxiproxyShaped,), {"refused": []})
        handler.upstream = stack.profile["faults"]["toxiproxy_url"].rstrip("/")
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        try:
            profile = json.loads(json.dumps(stack.profile))
            profile["faults"]["toxiproxy_url"] = f"http://127.0.0.1:{srv.server_address[1]}"
            path = tmp_path / "toxiproxy-profile.yaml"
            path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
            yield Stack(path, profile, stack.tmp), handler.refused
        finally:
            srv.shutdown()
            srv.server_close()


@pytest.mark.serial
def test_p4_drill_skips_with_the_reason_against_a_real_toxiproxy(
    toxiproxy_profile: tuple[Stack, list[str]], tmp_path: Path
) -> None:
    stack, refused = toxiproxy_profile
    result = run_drills(stack, "rpc-primary-errors", report=tmp_path / "report")
    record = result.drill("rpc-primary-errors")
    assert record["verdict"] == "skipped", result.output
    assert "invalid toxic type" in record["reason"] and "CONTRACT section 8" in record["reason"]
    assert refused == ["http_error"], "the first HTTP toxic was refused, and nothing after it"
    assert result.code == 0 and result.journal["pending_undos"] == []
    assert record["clauses"]["P4"] != "passed"
    toxics = httpx.get(f"{stack.profile['faults']['toxiproxy_url']}/proxies/rpc_primary/toxics")
    assert toxics.json() == [], "nothing is left on the proxy"
    strict = run_drills(stack, "rpc-primary-errors", report=tmp_path / "strict", strict=True)
    assert strict.code == 1, "a skipped drill counts as a failure under --strict"
