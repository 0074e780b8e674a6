"""Storage of the control tables in PostgreSQL, behind one interface."""

from __future__ import annotations

from omnidrill.errors import UsageError
from omnihub_ref.stores.base import Store
from omnihub_ref.stores.errors import ApiError, StoreUnavailable

__all__ = ["ApiError", "Store", "StoreUnavailable", "open_store"]


def open_store(database_url: str, *, pg_schema: str = "public", migrate: bool = True) -> Store:
    """The control tables in the database at `database_url`, migrated unless told not to."""
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise UsageError("DATABASE_URL must start with postgresql:// (or postgres://)")
    from omnihub_ref.stores.postgres_store import PostgresStore

    try:
        store: Store = PostgresStore(database_url, schema=pg_schema)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
