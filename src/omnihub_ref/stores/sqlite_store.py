"""The control tables in one SQLite file: the embedded default of the reference stack."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from omnihub_ref.stores.base import MIGRATIONS_TABLE, Execute, Store, json_text
from omnihub_ref.stores.errors import ApiError, StoreUnavailable, bad_request
from omnihub_ref.stores.schema import (
    EMERGENCY_CONTROLS,
    Column,
    Kind,
    Table,
    iso,
    number_to_json,
    utc_now,
)
from omnihub_ref.stores.sql import Dialect

SCHEMA_VERSION = "20261125000001"
_BUSY_TIMEOUT_S = 5.0


class SqliteDialect(Dialect):
    name = "sqlite"
    no_limit = " LIMIT -1"

    def param(self, col: Column, value: Any) -> tuple[str, Any]:
        return "?", to_sqlite(col.kind, value)


def to_sqlite(kind: Kind, value: Any) -> Any:
    """A Python value as SQLite stores it for a column of this kind."""
    if value is None:
        return None
    if kind is Kind.BOOL:
        return 1 if value else 0
    if kind in (Kind.NUMERIC, Kind.BIGINT):
        return number_to_json(value) if isinstance(value, Decimal) else value
    if kind in (Kind.TEXT_ARRAY, Kind.JSONB):
        return json_text(value)
    if kind is Kind.TIMESTAMPTZ:
        return iso(value)
    return str(value)


def from_sqlite(kind: Kind, value: Any) -> Any:
    """A stored SQLite value as JSON-ready Python."""
    if value is None:
        return None
    if kind is Kind.BOOL:
        return bool(value)
    if kind in (Kind.TEXT_ARRAY, Kind.JSONB):
        return json.loads(value)
    if kind is Kind.NUMERIC:
        return number_to_json(value)
    return value


class SqliteStore(Store):
    """One connection, serialised by a lock: SQLite writes one at a time anyway."""

    backend = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.dialect = SqliteDialect()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,  # explicit BEGIN below
                check_same_thread=False,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open SQLite file {self.path}: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Execute]:
        with self._lock:
            conn = self._conn

            def ex(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                try:
                    return conn.execute(sql, tuple(params)).fetchall()
                except sqlite3.Error as exc:
                    raise _map_error(exc) from None

            if not write:
                yield ex  # one statement in autocommit mode is its own transaction
                return
            try:
                # IMMEDIATE takes the write lock up front, so two writers never interleave.
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _map_error(exc) from None
            try:
                yield ex
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise _map_error(exc) from None

    def _decode(self, table: Table, columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in zip(columns, row, strict=True):
            col = table.column(name)
            assert col is not None
            out[name] = from_sqlite(col.kind, value)
        return out

    def _expire_approvals(self, ex: Execute) -> None:
        ex(
            "UPDATE approval_queue SET status = 'expired', decided_at = expires_at "
            "WHERE status = 'pending' AND expires_at <= ?",
            [iso(utc_now())],
        )

    def _before_insert(self, table: Table, row: dict[str, Any]) -> dict[str, Any]:
        # SQLite's clock has milliseconds; stamp microseconds so rows inserted close together
        # still order by created_at, as they do in Postgres.
        if table.column("created_at") is not None and "created_at" not in row:
            return {**row, "created_at": utc_now()}
        return row

    def _before_update(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        # Postgres' BEFORE UPDATE trigger does this there; SQLite triggers cannot change NEW.
        if table is EMERGENCY_CONTROLS:
            return {**values, "updated_at": utc_now()}
        return values

    def migrate(self) -> list[str]:
        script = resources.files("omnihub_ref.stores").joinpath("sqlite_schema.sql")
        sql = script.read_text(encoding="utf-8")
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version TEXT PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                done = conn.execute(
                    f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = ?", (SCHEMA_VERSION,)
                ).fetchone()
                if done:
                    conn.execute("COMMIT")
                    return []
                # executescript() would commit first; run the statements inside our transaction.
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, ?)",
                    (SCHEMA_VERSION, "control_tables", iso(utc_now())),
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreUnavailable(f"cannot apply the SQLite schema: {exc}") from None
        return [SCHEMA_VERSION]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _split_sql(script: str) -> list[str]:
    """Statements of a script, keeping CREATE TRIGGER ... END; bodies whole."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buf.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


def _map_error(exc: sqlite3.Error) -> ApiError:
    """SQLite's errors as the PostgreSQL codes PostgREST would have answered."""
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        if "only a pending approval" in text:
            return bad_request("23514", "only a pending approval can change status")
        if text.startswith("UNIQUE constraint failed"):
            return ApiError(
                409, "23505", "duplicate key value violates unique constraint", text, None
            )
        if text.startswith("NOT NULL constraint failed"):
            return bad_request("23502", "null value violates not-null constraint", text)
        if text.startswith("CHECK constraint failed"):
            return bad_request("23514", "new row violates check constraint", text)
        return bad_request("23000", "integrity constraint violation", text)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return StoreUnavailable("the SQLite database stayed locked for 5 s")
    return ApiError(500, "XX000", "internal database error", type(exc).__name__, None)
