"""A local stand-in for a Slack incoming webhook: a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Sink:
    """Records every POST; answers like Slack does (200 `ok`, or the given refusal)."""

    def __init__(self, status: int = 200, body: str = "ok") -> None:
        self.status = status
        self.body = body
        self.posts: list[dict[str, Any]] = []
        self.url = ""


@contextmanager
def webhook_sink(status: int = 200, body: str = "ok") -> Iterator[Sink]:
    sink = Sink(status, body)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            sink.posts.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "json": json.loads(raw),
                }
            )
            data = sink.body.encode()
            self.send_response(sink.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_port}/services/T000/B000/secretpart1234"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
