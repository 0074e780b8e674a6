"""The control tables in Postgres, with the Supabase-style migrations of ../migrations/."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.types.json import Jsonb

from omnidrill.secrets import scrub
from omnihub_ref.stores.base import MIGRATIONS_TABLE, Execute, Store
from omnihub_ref.stores.errors import ApiError, StoreUnavailable
from omnihub_ref.stores.schema import Column, Kind, Table, iso, number_to_json
from omnihub_ref.stores.sql import Dialect

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIGRATION_FILE = re.compile(r"(\d{14})_([a-z0-9_]+)\.sql")
_CONNECT_TIMEOUT_S = 3
_STATEMENT_TIMEOUT_MS = 5000
_ACQUIRE_TIMEOUT_S = 5.0
# A connection idle this long is checked before use: the server may have restarted meanwhile.
_VALIDATE_AFTER_IDLE_S = 5.0
# The role of the service-role key (Supabase's name); it bypasses row-level security.
SERVICE_ROLE = "service_role"

_CASTS = {
    Kind.UUID: "uuid",
    Kind.TEXT: "text",
    Kind.BOOL: "boolean",
    Kind.NUMERIC: "numeric",
    Kind.BIGINT: "bigint",
    Kind.TEXT_ARRAY: "text[]",
    Kind.JSONB: "jsonb",
    Kind.TIMESTAMPTZ: "timestamptz",
}


class PostgresDialect(Dialect):
    name = "postgres"

    def param(self, col: Column, value: Any) -> tuple[str, Any]:
        if col.kind is Kind.JSONB and value is not None:
            value = Jsonb(value)
        # Explicit casts: the value's Python type never decides the comparison's type.
        return f"%s::{_CASTS[col.kind]}", value


def from_postgres(value: Any) -> Any:
    """A value psycopg returned, as JSON-ready Python."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return number_to_json(value)
    return value


def migration_files() -> list[tuple[str, str, str]]:
    """(version, name, sql) of every shipped migration, oldest first."""
    folder = resources.files("omnihub_ref").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = _MIGRATION_FILE.fullmatch(entry.name)
        if m:
            found.append((m[1], m[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


def _alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


class _Pool:
    """A few reusable connections; a broken one is dropped, never handed out again."""

    def __init__(self, dsn: str, schema: str, max_size: int, role: str | None) -> None:
        self._dsn = dsn
        self._schema = schema
        self._max = max_size
        self._role = role
        self._idle: list[tuple[psycopg.Connection, float]] = []  # (connection, idle since)
        self._size = 0
        self._cond = threading.Condition()
        self._closed = False

    def _connect(self) -> psycopg.Connection:
        conn = self.connect()
        if self._role:
            try:
                conn.execute(pgsql.SQL("SET ROLE {}").format(pgsql.Identifier(self._role)))
            except psycopg.Error as exc:
                conn.close()
                raise _map_error(exc) from None
        return conn

    def connect(self) -> psycopg.Connection:
        """A new connection as the DSN's own user (the schema's owner), outside the pool."""
        try:
            conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=_CONNECT_TIMEOUT_S,
                application_name=f"omnidrill-control:{self._schema}",
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(scrub(f"cannot connect to Postgres: {exc}")[:300]) from None
        try:
            conn.execute(
                pgsql.SQL(
                    "SET search_path TO {}; SET TIME ZONE 'UTC'; SET statement_timeout = {}"
                ).format(pgsql.Identifier(self._schema), pgsql.Literal(_STATEMENT_TIMEOUT_MS))
            )
        except psycopg.Error as exc:
            conn.close()
            raise _map_error(exc) from None
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        conn = self._acquire()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            self._release(conn, reuse=ok or not conn.broken)

    def _acquire(self) -> psycopg.Connection:
        deadline = time.monotonic() + _ACQUIRE_TIMEOUT_S
        while True:
            conn, since = self._take(deadline)
            if conn is None:
                break  # a slot is reserved for a new connection
            # Checked outside the lock: a round trip must not hold up other threads.
            if time.monotonic() - since <= _VALIDATE_AFTER_IDLE_S or _alive(conn):
                return conn
            self._release(conn, reuse=False)
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise

    def _take(self, deadline: float) -> tuple[psycopg.Connection | None, float]:
        """An idle connection, or (None, 0) with a slot reserved for opening a new one."""
        with self._cond:
            while True:
                if self._closed:
                    raise StoreUnavailable("the store is closed")
                while self._idle:
                    conn, since = self._idle.pop()
                    if not conn.closed and not conn.broken:
                        return conn, since
                    self._size -= 1
                if self._size < self._max:
                    self._size += 1
                    return None, 0.0
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ApiError(
                        504,
                        "PGRST003",
                        "Timed out acquiring connection from connection pool.",
                        None,
                        None,
                    )
                self._cond.wait(left)

    def _release(self, conn: psycopg.Connection, *, reuse: bool) -> None:
        with self._cond:
            if reuse and not self._closed and not conn.closed and not conn.broken:
                self._idle.append((conn, time.monotonic()))
            else:
                self._size -= 1
                conn.close()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for conn, _ in self._idle:
                conn.close()
            self._size -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()


class PostgresStore(Store):
    """Rows in a Postgres schema (`public` unless told otherwise), triggers included."""

    backend = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 8,
        role: str | None = SERVICE_ROLE,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must be a lower-case SQL identifier, got {schema!r}")
        self.schema = schema
        self.dialect = PostgresDialect()
        # Requests run as the API role, so the grants and row-level security of the tables
        # decide what they may do, as they do behind Supabase's PostgREST.
        self._pool = _Pool(dsn, schema, pool_size, role)

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"  # never the DSN

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Execute]:
        with self._pool.connection() as conn:

            def ex(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                cur = conn.execute(sql, list(params))  # type: ignore[call-overload]
                return cur.fetchall() if cur.description else []

            try:
                if not write:
                    yield ex  # autocommit: one statement, one round trip
                    return
                with conn.transaction():
                    yield ex
            except psycopg.Error as exc:
                raise _map_error(exc) from None

    def _decode(self, table: Table, columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        return {name: from_postgres(v) for name, v in zip(columns, row, strict=True)}

    def _expire_approvals(self, ex: Execute) -> None:
        ex(
            "UPDATE approval_queue SET status = 'expired', decided_at = expires_at "
            "WHERE status = 'pending' AND expires_at <= clock_timestamp()",
            [],
        )

    def migrate(self) -> list[str]:
        applied: list[str] = []
        with self._pool.connect() as conn:  # as the owner: migrations create and grant
            try:
                with conn.transaction():
                    # One migrator per schema at a time, even across processes.
                    lock_key = int.from_bytes(
                        hashlib.sha256(f"omnidrill:{self.schema}".encode()).digest()[:8],
                        "big",
                        signed=True,
                    )
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
                    conn.execute(
                        pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            pgsql.Identifier(self.schema)
                        )
                    )
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
                        "version text PRIMARY KEY, name text NOT NULL, "
                        "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    done = {r[0] for r in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
                    for version, name, text in migration_files():
                        if version in done:
                            continue
                        conn.execute(text)  # type: ignore[call-overload]  # no params: many statements
                        conn.execute(
                            f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) "
                            "VALUES (%s, %s, %s)",
                            [version, name, hashlib.sha256(text.encode()).hexdigest()],
                        )
                        applied.append(version)
            except psycopg.Error as exc:
                raise _map_error(exc) from None
        return applied

    def close(self) -> None:
        self._pool.close()


def _map_error(exc: psycopg.Error) -> ApiError:
    """A database error as PostgREST answers it (its table of codes to HTTP statuses)."""
    state = exc.sqlstate or ""
    diag = exc.diag
    message = scrub(diag.message_primary or type(exc).__name__)
    details = scrub(diag.message_detail) if diag.message_detail else None
    hint = scrub(diag.message_hint) if diag.message_hint else None
    if isinstance(exc, psycopg.OperationalError) and not state:
        return StoreUnavailable(scrub(str(exc))[:300])
    if state.startswith("08") or state.startswith("57P"):  # connection lost, server shut down
        return StoreUnavailable(message)
    if state == "57014":
        return ApiError(503, state, "the database did not answer in time", message, None)
    if state in ("23505", "23503"):
        return ApiError(409, state, message, details, hint)
    if state.startswith(("22", "23", "42")) or state in ("21000", "P0001"):
        return ApiError(400, state, message, details, hint)
    if state.startswith("28"):
        return ApiError(403, state, message, details, hint)
    return ApiError(500, state or "XX000", message, details, hint)
