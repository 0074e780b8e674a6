"""A local Sentry envelope sink: real HTTP on 127.0.0.1, as the SDK's transport posts to it."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SentrySink:
    """Collects envelopes posted to /api/<project>/envelope/; `dsn()` is what SENTRY_DSN takes."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                enc = self.headers.get("Content-Encoding", "")
                if enc == "gzip":
                    body = gzip.decompress(body)
                elif enc == "deflate":
                    body = zlib.decompress(body)
                elif enc == "br":
                    import brotli  # the SDK uses it whenever it is installed

                    body = brotli.decompress(body)
                ok = self.path.endswith("/envelope/")
                if ok:
                    sink.raw.append(body)
                    sink.headers.append(dict(self.headers))
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id": "0"}' if ok else b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def dsn(self, key: str) -> str:
        return f"http://{key}@127.0.0.1:{self.server.server_address[1]}/1"

    def events(self) -> list[dict[str, Any]]:
        """The `event` items of every envelope."""
        out = []
        for raw in self.raw:
            lines = raw.split(b"\n")
            i = 1
            while i < len(lines):
                if not lines[i].strip():
                    i += 1
                    continue
                item_header = json.loads(lines[i])
                payload = lines[i + 1] if i + 1 < len(lines) else b""
                if item_header.get("type") == "event":
                    out.append(json.loads(payload))
                i += 2
        return out

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
