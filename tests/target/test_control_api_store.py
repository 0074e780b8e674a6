"""Stores and migrations: idempotent, concurrent-safe, triggers for direct writers, clean errors."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg import sql

from omnidrill.errors import UsageError
from omnidrill.netutil import free_port
from omnihub_ref.control_api import create_control_app
from omnihub_ref.serving import serve_in_thread
from omnihub_ref.stores import open_store
from omnihub_ref.stores.postgres_store import PostgresStore, migration_files
from omnihub_ref.stores.query import parse_filters, parse_read
from omnihub_ref.stores.schema import AUDIT_LOGS, CONTROLS_ROW_ID, EMERGENCY_CONTROLS

SERVICE = "service-role-key-for-store-tests"
ANON = "anon-key-for-store-tests"


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema name of this test's own, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _flip(store, reason: str) -> None:
    filters = parse_filters(EMERGENCY_CONTROLS, [("id", f"eq.{CONTROLS_ROW_ID}")])
    store.update(EMERGENCY_CONTROLS, {"omnihub_kill_switch": True, "reason": reason}, filters, [])


def _controls(store) -> list[dict]:
    return store.select(parse_read(EMERGENCY_CONTROLS, []))


def test_shipped_migrations_are_named_like_supabase_ones() -> None:
    files = migration_files()
    assert [v for v, _, _ in files] == sorted(v for v, _, _ in files)
    assert {n for _, n, _ in files} == {"control_tables", "control_triggers", "api_roles"}


@pytest.mark.postgres
def test_postgres_migrations_apply_once_and_keep_data(pg_dsn: str, pg_schema: str) -> None:
    first = open_store(pg_dsn, pg_schema=pg_schema)
    try:
        assert first.migrate() == []  # open_store already applied everything
        _flip(first, "kept")
    finally:
        first.close()
    second = open_store(pg_dsn, pg_schema=pg_schema)
    try:
        (row,) = _controls(second)
        assert row["reason"] == "kept" and row["omnihub_kill_switch"] is True
    finally:
        second.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        versions = [r[0] for r in conn.execute("SELECT version FROM omnidrill_schema_migrations")]
        assert sorted(versions) == [v for v, _, _ in migration_files()]
        # Re-running the SQL files by hand is harmless too.
        for _, _, text in migration_files():
            conn.execute(text)
        assert conn.execute("SELECT count(*) FROM emergency_controls").fetchone() == (1,)
        assert conn.execute("SELECT reason FROM emergency_controls").fetchone() == ("kept",)


@pytest.mark.postgres
def test_concurrent_migrations_of_one_schema_do_not_collide(pg_dsn: str, pg_schema: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            open_store(pg_dsn, pg_schema=pg_schema).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with open_store(pg_dsn, pg_schema=pg_schema) as store:
        assert len(_controls(store)) == 1


@pytest.mark.postgres
def test_triggers_audit_direct_sql_writers(pg_dsn: str, pg_schema: str) -> None:
    """An operator flipping the row with plain SQL (the direct-Postgres path) is audited too."""
    with open_store(pg_dsn, pg_schema=pg_schema) as store:
        before = _controls(store)[0]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
            conn.execute(
                "UPDATE emergency_controls SET execution_safe_mode = true, reason = 'psql'"
            )
        (entry,) = store.select(parse_read(AUDIT_LOGS, []))
        assert entry["metadata"]["old"]["execution_safe_mode"] is False
        assert entry["metadata"]["new"]["execution_safe_mode"] is True
        assert entry["metadata"]["new"]["reason"] == "psql"
        after = _controls(store)[0]
        assert after["updated_at"] > before["updated_at"]


def test_open_store_rejects_bad_settings() -> None:
    with pytest.raises(UsageError, match="postgresql://"):
        open_store("mysql://x")
    with pytest.raises(UsageError, match="schema"):
        open_store("postgresql://127.0.0.1/x", pg_schema="Bad-Name")


def test_database_down_is_503_without_leaking_the_dsn() -> None:
    password = "hunter2-very-secret"
    dsn = f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/nothing"
    store = PostgresStore(dsn, schema="public")
    assert password not in repr(store)
    app = create_control_app(store, anon_key=ANON, service_role_key=SERVICE)
    try:
        with serve_in_thread(app) as srv:
            resp = httpx.get(
                f"{srv.url}/rest/v1/emergency_controls",
                headers={"apikey": SERVICE, "Authorization": f"Bearer {SERVICE}"},
                timeout=15,
            )
    finally:
        store.close()
    assert resp.status_code == 503
    assert resp.json()["code"] == "PGRST001"
    assert password not in resp.text and "Traceback" not in resp.text


def test_control_app_refuses_unusable_keys() -> None:
    with PostgresStore("postgresql://127.0.0.1:1/never-connected") as store:
        with pytest.raises(ValueError, match="differ"):
            create_control_app(store, anon_key="same-key", service_role_key="same-key")
        with pytest.raises(ValueError, match="both"):
            create_control_app(store, anon_key="", service_role_key="x-key")


@pytest.mark.postgres
def test_connections_killed_while_idle_are_replaced(
    pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a database restart (here: its backends terminated) the next request still works."""
    from omnihub_ref.stores import postgres_store

    monkeypatch.setattr(postgres_store, "_VALIDATE_AFTER_IDLE_S", 0.0)
    with open_store(pg_dsn, pg_schema=pg_schema) as store:
        assert len(_controls(store)) == 1
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [f"omnidrill-control:{pg_schema}"],
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        assert len(_controls(store)) == 1
        _flip(store, "after restart")
        assert _controls(store)[0]["reason"] == "after restart"


@pytest.mark.postgres
def test_row_level_security_admits_the_service_role_only(pg_dsn: str, pg_schema: str) -> None:
    """The database itself refuses the anon role, and would show it no row (RLS, no policy)."""
    open_store(pg_dsn, pg_schema=pg_schema).close()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        conn.execute("SET ROLE service_role")
        assert conn.execute("SELECT count(*) FROM emergency_controls").fetchone() == (1,)
        conn.execute("RESET ROLE")
        conn.commit()
        for table in ("emergency_controls", "approval_queue", "audit_logs"):
            conn.execute("SET ROLE anon")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            conn.rollback()
        # granted a read by mistake, anon would still see nothing: no policy admits it
        conn.execute("GRANT SELECT ON emergency_controls TO anon")
        conn.execute("SET ROLE anon")
        assert conn.execute("SELECT count(*) FROM emergency_controls").fetchone() == (0,)
        conn.rollback()
