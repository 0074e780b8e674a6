"""What every control-table store does, whatever database holds the rows."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from omnihub_ref.stores.errors import ApiError, bad_request
from omnihub_ref.stores.query import Filter, Read
from omnihub_ref.stores.schema import APPROVAL_QUEUE, Table, coerce_json
from omnihub_ref.stores.sql import Dialect, insert_sql, select_sql, update_sql

# Runs one statement inside the current transaction and returns its rows.
Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

MIGRATIONS_TABLE = "omnidrill_schema_migrations"


class Store(ABC):
    """The three control tables behind one interface; every call is one transaction."""

    backend: str
    dialect: Dialect

    # --- what a backend provides -------------------------------------------------------------

    @abstractmethod
    def _transaction(self, *, write: bool = True) -> AbstractContextManager[Execute]:
        """A transaction (commits on success, rolls back on any exception); `write=False` is
        one read-only statement, run without BEGIN/COMMIT round trips."""

    @abstractmethod
    def _decode(self, table: Table, columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        """A database row as JSON-ready values."""

    @abstractmethod
    def _expire_approvals(self, ex: Execute) -> None:
        """Mark pending approvals past expires_at as expired (lazily, before every access)."""

    def _before_insert(self, table: Table, row: dict[str, Any]) -> dict[str, Any]:
        """Defaults the database cannot give as precisely itself (runs inside the transaction)."""
        return row

    def _before_update(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        """Values the database would set itself on update (a backend without triggers for it)."""
        return values

    @abstractmethod
    def migrate(self) -> list[str]:
        """Create or upgrade the schema; returns the versions applied now (none when up to date)."""

    @abstractmethod
    def close(self) -> None: ...

    # --- the operations --------------------------------------------------------------------

    def select(self, read: Read) -> list[dict[str, Any]]:
        """Rows matching a read, as JSON-ready dicts."""
        expires = read.table is APPROVAL_QUEUE
        with self._transaction(write=expires) as ex:
            if expires:
                self._expire_approvals(ex)
            sql, params = select_sql(read, self.dialect)
            rows = ex(sql, params)
        return [self._decode(read.table, read.columns, r) for r in rows]

    def insert(
        self, table: Table, rows: Sequence[dict[str, Any]], returning: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Insert JSON objects (all or none); returns the new rows' `returning` columns."""
        if not table.insertable:
            raise _not_writable(table)
        prepared = [self._prepare(table, row, insert=True) for row in rows]
        if not prepared:
            return []
        cols = list(returning) or ["id"]
        out: list[dict[str, Any]] = []
        with self._transaction() as ex:
            for row in prepared:
                out.extend(self._insert_one(ex, table, self._before_insert(table, row), cols))
        return [self._decode(table, cols, r) for r in out] if returning else []

    def update(
        self,
        table: Table,
        values: dict[str, Any],
        filters: Sequence[Filter],
        returning: Sequence[str],
    ) -> list[dict[str, Any]]:
        """Update the rows the filters match (never all rows: filters are required)."""
        if not table.updatable:
            raise _not_writable(table)
        if not filters:
            # Supabase runs pg-safeupdate for API roles: an unfiltered PATCH is refused.
            raise bad_request(
                "21000",
                "UPDATE requires a WHERE clause",
                None,
                "add a filter such as ?id=eq.<id>",
            )
        prepared = self._prepare(table, values, insert=False)
        if not prepared:
            raise bad_request(
                "PGRST102", "Empty or invalid json", "the PATCH body sets no column", None
            )
        with self._transaction() as ex:
            # Inside the transaction, so stamped times follow the order the writes commit in.
            prepared = self._before_update(table, prepared)
            if table is APPROVAL_QUEUE:
                self._expire_approvals(ex)
            sql, params = update_sql(table, prepared, filters, self.dialect, ["id"])
            ids = [r[0] for r in ex(sql, params)]
            if not ids or not returning:
                return []
            # Read back after the statement so values that triggers set are included.
            id_col = table.column("id")
            assert id_col is not None
            read = Read(table, list(returning), [Filter(id_col, "in", ids)])
            sql, params = select_sql(read, self.dialect)
            rows = ex(sql, params)
        return [self._decode(table, list(returning), r) for r in rows]

    def _insert_one(
        self, ex: Execute, table: Table, row: dict[str, Any], cols: list[str]
    ) -> list[tuple[Any, ...]]:
        sql, params = insert_sql(table, row, self.dialect, cols)
        return ex(sql, params)

    def _prepare(self, table: Table, obj: Any, *, insert: bool) -> dict[str, Any]:
        """A JSON object checked against the table: known, writable columns of the right types."""
        if not isinstance(obj, dict):
            raise bad_request(
                "PGRST102",
                "Empty or invalid json",
                f"expected a JSON object for a row of {table.name}, got {type(obj).__name__}",
            )
        out: dict[str, Any] = {}
        for name, value in obj.items():
            col = table.column(name) if isinstance(name, str) else None
            if col is None:
                raise bad_request(
                    "PGRST204",
                    f"Could not find the '{str(name)[:60]}' column of '{table.name}' "
                    "in the schema cache",
                    None,
                    f"Columns of {table.name}: {', '.join(table.names)}",
                )
            if not col.writable:
                raise bad_request(
                    "428C9",
                    f'cannot insert a non-DEFAULT value into column "{name}"',
                    f'Column "{name}" is an identity column defined as GENERATED ALWAYS.',
                )
            out[name] = coerce_json(table, col, value)
        if insert:
            missing = [
                c.name
                for c in table.columns
                if not c.nullable and not c.has_default and c.name not in out
            ]
            if missing:
                raise bad_request(
                    "23502",
                    f'null value in column "{missing[0]}" of relation "{table.name}" '
                    "violates not-null constraint",
                    f"required columns missing: {', '.join(missing)}",
                )
        return out

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_writable(table: Table) -> ApiError:
    return ApiError(
        403,
        "42501",
        f"permission denied for table {table.name}",
        None,
        f"{table.name} is written only by the database's triggers",
    )


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
