"""The REST control store against a control API that ignores PostgREST filters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from omnidrill.chaos.controlstore import PostgrestStore
from omnidrill.profile import development_profile, resolve

ROWS = [
    {"id": "a1", "user_id": "alice", "status": "pending"},
    {"id": "b1", "user_id": "bob", "status": "pending"},
    "not a row",
]


class _IgnoresFilters(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # every row, whatever the query string asks for
        body = json.dumps(ROWS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def store() -> Iterator[PostgrestStore]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _IgnoresFilters)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    profile = development_profile()
    profile.controls.url = f"http://127.0.0.1:{server.server_address[1]}/rest/v1"
    s = PostgrestStore(resolve(profile))
    try:
        yield s
    finally:
        s.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_find_rows_keeps_only_the_rows_asked_for(store: PostgrestStore) -> None:
    assert store.find_rows("approval_queue", "user_id", "alice") == [ROWS[0]]
    assert store.find_rows("approval_queue", "user_id", "carol") == []
