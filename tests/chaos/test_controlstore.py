"""The REST control store against a control API that ignores PostgREST filters."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from omnidrill.chaos.controlstore import CONTROLS, PostgrestStore
from omnidrill.profile import SecretRef, development_profile, resolve

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


# --- compare-and-set, as every undo writes --------------------------------------------------

MIGRATIONS = Path(__file__).resolve().parents[2] / "src" / "omnihub_ref" / "migrations"
ROW = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def sql_store(pg_dsn: str) -> Iterator[Any]:
    """A PostgresStore on the control tables in a schema of this test's own."""
    import psycopg

    from omnidrill.chaos.controlstore import PostgresStore

    schema = f"cas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}", public')
        for f in sorted(MIGRATIONS.glob("*.sql")):
            conn.execute(f.read_text())
    profile = development_profile()
    profile.controls.kind = "postgres"
    profile.controls.dsn = SecretRef(value=f"{pg_dsn}?options=-csearch_path%3D{schema}")
    store = PostgresStore(resolve(profile))
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgres_compare_and_set_changes_only_what_it_expects(sql_store: Any) -> None:
    sql_store.patch_row(
        CONTROLS, ROW, {"omnihub_kill_switch": True, "allowed_operations": ["wallet_balance"]}
    )
    row = sql_store.get_row(CONTROLS, ROW)
    expect = {
        "omnihub_kill_switch": True,
        "allowed_operations": ["wallet_balance"],
        "updated_by": row["updated_by"],
        "reason": None,
    }
    # someone else's value in any expected field: nothing changes
    for field, theirs in (
        ("omnihub_kill_switch", False),
        ("allowed_operations", ["wallet_balance", "omnilink_agent"]),
        ("updated_by", "alice"),
        ("reason", "INCIDENT-1"),
    ):
        assert (
            sql_store.patch_row_if(
                CONTROLS, ROW, {**expect, field: theirs}, {"execution_safe_mode": True}
            )
            is None
        ), field
        assert sql_store.get_row(CONTROLS, ROW)["execution_safe_mode"] is False
    done = sql_store.patch_row_if(CONTROLS, ROW, expect, {"omnihub_kill_switch": False})
    assert done is not None and done["omnihub_kill_switch"] is False
