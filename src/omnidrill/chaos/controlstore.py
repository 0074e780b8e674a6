"""Operator access to the control tables: PostgREST with the service-role key, or direct SQL."""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

import httpx

from omnidrill import secrets
from omnidrill.errors import Inconclusive
from omnidrill.profile import Resolved

CONTROLS = "emergency_controls"
APPROVALS = "approval_queue"
AUDIT = "audit_logs"
_WRITABLE = {
    CONTROLS: {
        "omnihub_kill_switch",
        "execution_safe_mode",
        "operator_takeover",
        "allowed_operations",
        "reason",
        "updated_by",
    },
    APPROVALS: {"status", "reason", "decided_by"},
}


class ControlStoreError(Inconclusive):
    """The control tables could not be read or written: no verdict can be given."""


class ControlStore(Protocol):
    def get_row(self, table: str, row_id: str) -> dict[str, Any] | None: ...

    def patch_row(self, table: str, row_id: str, values: dict[str, Any]) -> dict[str, Any]: ...

    def patch_row_if(
        self, table: str, row_id: str, expect: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Compare-and-set: change the row only while it holds `expect`; None when it did not."""
        ...

    def audit_rows(self, limit: int = 100) -> list[dict[str, Any]]: ...

    def find_rows(self, table: str, column: str, value: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class PostgrestStore:
    """As an operator would with supabase-js: the REST surface and the service-role key."""

    def __init__(self, resolved: Resolved) -> None:
        p = resolved.profile
        self.base = (p.controls.url or "").rstrip("/")
        key = resolved.service_role_key
        self._headers = {"apikey": key, "Authorization": f"Bearer {key}", **resolved.headers}
        self._http = httpx.Client(verify=p.verify_tls, timeout=5.0)

    def _call(self, method: str, table: str, params: dict[str, str], body: Any = None) -> Any:
        headers = dict(self._headers)
        if method == "PATCH":
            headers["Prefer"] = "return=representation"
        url = f"{self.base}/{table}"
        try:
            resp = self._http.request(method, url, params=params, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ControlStoreError(
                secrets.scrub(f"control tables unreachable at {url}: {type(exc).__name__}: {exc}")
            ) from None
        if resp.status_code >= 300:
            raise ControlStoreError(
                secrets.scrub(
                    f"{method} {url} answered {resp.status_code}: {resp.text[:200]}"
                    " (the service-role key must be able to read and write it)"
                )
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ControlStoreError(f"{method} {url} answered a body that is not JSON") from None

    def get_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        rows = self._call("GET", table, {"id": f"eq.{row_id}", "select": "*"})
        if not isinstance(rows, list) or len(rows) > 1:
            raise ControlStoreError(f"{table} id={row_id}: expected at most one row, got {rows!r}")
        return rows[0] if rows else None

    def patch_row(self, table: str, row_id: str, values: dict[str, Any]) -> dict[str, Any]:
        _check_writable(table, values)
        rows = self._call("PATCH", table, {"id": f"eq.{row_id}"}, values)
        if isinstance(rows, list) and len(rows) == 1:
            return rows[0]
        row = self.get_row(table, row_id)
        if row is None:
            raise ControlStoreError(f"{table} id={row_id}: no such row to change")
        return row

    def patch_row_if(
        self, table: str, row_id: str, expect: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        # PostgREST filters the PATCH on the expected values, so a row changed since it was read
        # is not touched. Arrays are left out of the filter (the reference control API, like
        # many, cannot compare them): callers compare them on the row they just read.
        _check_writable(table, values)
        params = {"id": f"eq.{row_id}"}
        params.update({k: f for k, v in expect.items() if (f := _filter(v)) is not None})
        rows = self._call("PATCH", table, params, values)
        if isinstance(rows, list):
            return rows[0] if len(rows) == 1 and isinstance(rows[0], dict) else None
        # No representation (a target that ignores Prefer): the row says whether it took.
        row = self.get_row(table, row_id)
        if row is not None and all(row.get(k) == v for k, v in values.items()):
            return row
        return None

    def audit_rows(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._call(
            "GET",
            AUDIT,
            {
                "resource_type": "eq.emergency_controls",
                "order": "created_at.desc",
                "limit": str(limit),
            },
        )
        return rows if isinstance(rows, list) else []

    def find_rows(self, table: str, column: str, value: str) -> list[dict[str, Any]]:
        rows = self._call("GET", table, {column: f"eq.{value}", "select": "*"})
        # Filtered here too: a control API that ignores the filter must not hand back other rows.
        if not isinstance(rows, list):
            return []
        return [r for r in rows if isinstance(r, dict) and r.get(column) == value]

    def close(self) -> None:
        self._http.close()


class PostgresStore:
    """Direct SQL on the control tables (profile `controls.kind: postgres`)."""

    def __init__(self, resolved: Resolved) -> None:
        self._dsn = resolved.secret("controls.dsn")
        self._lock = threading.Lock()
        self._conn: Any = None

    def _connection(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self._dsn, autocommit=True, connect_timeout=5, row_factory=dict_row
                )
            except psycopg.Error as exc:
                raise ControlStoreError(
                    secrets.scrub(f"control database unreachable: {exc}")
                ) from None
        return self._conn

    def _query(self, sql: Any, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        import psycopg

        with self._lock:
            try:
                cur = self._connection().execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                self._conn = None
                raise ControlStoreError(secrets.scrub(f"control database error: {exc}")) from None
        return [_jsonable(r) for r in rows]

    def get_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        from psycopg import sql

        q = sql.SQL("SELECT * FROM {} WHERE id = %s").format(sql.Identifier(table))
        rows = self._query(q, (row_id,))
        return rows[0] if rows else None

    def patch_row(self, table: str, row_id: str, values: dict[str, Any]) -> dict[str, Any]:
        from psycopg import sql

        _check_writable(table, values)
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values)
        q = sql.SQL("UPDATE {} SET {} WHERE id = %s RETURNING *").format(
            sql.Identifier(table), sets
        )
        rows = self._query(q, (*values.values(), row_id))
        if not rows:
            raise ControlStoreError(f"{table} id={row_id}: no such row to change")
        return rows[0]

    def patch_row_if(
        self, table: str, row_id: str, expect: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        from psycopg import sql
        from psycopg.types.json import Jsonb

        _check_writable(table, values)
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values)
        conds = [sql.SQL("id = %s")] + [
            sql.SQL("{} IS NOT DISTINCT FROM %s").format(sql.Identifier(k)) for k in expect
        ]
        q = sql.SQL("UPDATE {} SET {} WHERE {} RETURNING *").format(
            sql.Identifier(table), sets, sql.SQL(" AND ").join(conds)
        )
        wanted = [Jsonb(v) if isinstance(v, dict) else v for v in expect.values()]
        rows = self._query(q, (*values.values(), row_id, *wanted))
        return rows[0] if rows else None

    def audit_rows(self, limit: int = 100) -> list[dict[str, Any]]:
        from psycopg import sql

        q = sql.SQL(
            "SELECT * FROM {} WHERE resource_type = 'emergency_controls' "
            "ORDER BY created_at DESC LIMIT %s"
        ).format(sql.Identifier(AUDIT))
        return self._query(q, (limit,))

    def find_rows(self, table: str, column: str, value: str) -> list[dict[str, Any]]:
        from psycopg import sql

        q = sql.SQL("SELECT * FROM {} WHERE {} = %s").format(
            sql.Identifier(table), sql.Identifier(column)
        )
        return self._query(q, (value,))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _check_writable(table: str, values: dict[str, Any]) -> None:
    bad = set(values) - _WRITABLE.get(table, set())
    if bad:
        raise ValueError(f"omnidrill never writes {sorted(bad)} of {table}")


def _filter(value: Any) -> str | None:
    """A PostgREST filter that matches exactly `value`, or None where none is portable."""
    if value is None or isinstance(value, bool):
        return f"is.{'null' if value is None else str(value).lower()}"
    if isinstance(value, str | int | float):
        return f"eq.{value}"
    return None


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=str))


def open_store(resolved: Resolved) -> ControlStore:
    if resolved.profile.controls.kind == "postgres":
        return PostgresStore(resolved)
    return PostgrestStore(resolved)
