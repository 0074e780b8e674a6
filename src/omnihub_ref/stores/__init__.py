"""Storage of the control tables: SQLite (embedded default) or Postgres, one interface."""

from __future__ import annotations

from pathlib import Path

from omnidrill.errors import UsageError
from omnihub_ref.stores.base import Store
from omnihub_ref.stores.errors import ApiError, StoreUnavailable

__all__ = ["ApiError", "Store", "StoreUnavailable", "open_store"]


def open_store(
    database_url: str | None,
    sqlite_path: Path | str,
    *,
    pg_schema: str = "public",
    migrate: bool = True,
) -> Store:
    """Postgres when `database_url` is given, else the SQLite file; the schema is migrated."""
    store: Store
    if database_url:
        if not database_url.startswith(("postgres://", "postgresql://")):
            raise UsageError("DATABASE_URL must start with postgresql:// (or postgres://)")
        from omnihub_ref.stores.postgres_store import PostgresStore

        try:
            store = PostgresStore(database_url, schema=pg_schema)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        from omnihub_ref.stores.sqlite_store import SqliteStore

        store = SqliteStore(sqlite_path)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
