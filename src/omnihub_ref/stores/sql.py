"""SQL text for reads and writes of the control tables (PostgreSQL, through a Dialect)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omnihub_ref.stores.query import Filter, Order, Read
from omnihub_ref.stores.schema import Column, Table

_COMPARE = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


class Dialect:
    """How one database spells a parameter; identifiers are checked against the schema first."""

    no_limit = ""  # what an OFFSET without a LIMIT needs in front of it

    def param(self, col: Column, value: Any) -> tuple[str, Any]:
        raise NotImplementedError

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'


def where(filters: Sequence[Filter], d: Dialect) -> tuple[str, list[Any]]:
    """` WHERE a AND b` (or "") and its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    for f in filters:
        col = d.quote(f.column.name)
        if f.op == "is":
            word = {None: "NULL", True: "TRUE", False: "FALSE"}[f.value]
            expr = f"{col} IS {word}"
        elif f.op == "in":
            if not f.value:
                expr = "FALSE"
            else:
                holes = []
                for v in f.value:
                    hole, val = d.param(f.column, v)
                    holes.append(hole)
                    params.append(val)
                expr = f"{col} IN ({', '.join(holes)})"
        else:
            hole, val = d.param(f.column, f.value)
            params.append(val)
            expr = f"{col} {_COMPARE[f.op]} {hole}"
        parts.append(f"NOT ({expr})" if f.negate else expr)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def order_by(table: Table, orders: Sequence[Order], d: Dialect) -> str:
    if not orders and not table.tiebreak:
        return ""
    items = []
    for o in orders:
        nulls_first = o.desc if o.nulls_first is None else o.nulls_first  # Postgres' default
        direction = "DESC" if o.desc else "ASC"
        items.append(f"{d.quote(o.column)} {direction} NULLS {'FIRST' if nulls_first else 'LAST'}")
    if table.tiebreak and all(o.column != table.tiebreak for o in orders):
        last_desc = orders[-1].desc if orders else False
        items.append(f"{d.quote(table.tiebreak)} {'DESC' if last_desc else 'ASC'}")
    return " ORDER BY " + ", ".join(items)


def select_sql(read: Read, d: Dialect, columns: Sequence[str] | None = None) -> tuple[str, list]:
    cols = ", ".join(d.quote(c) for c in (columns or read.columns))
    where_sql, params = where(read.filters, d)
    sql = f"SELECT {cols} FROM {d.quote(read.table.name)}{where_sql}"
    sql += order_by(read.table, read.order, d)
    if read.limit is not None:
        sql += f" LIMIT {int(read.limit)}"
    elif read.offset:
        sql += d.no_limit
    if read.offset:
        sql += f" OFFSET {int(read.offset)}"
    return sql, params


def insert_sql(
    table: Table, row: dict[str, Any], d: Dialect, returning: Sequence[str]
) -> tuple[str, list]:
    names = list(row)
    holes, params = [], []
    for name in names:
        hole, val = d.param(table.column(name), row[name])  # type: ignore[arg-type]
        holes.append(hole)
        params.append(val)
    if names:
        cols = ", ".join(d.quote(n) for n in names)
        sql = f"INSERT INTO {d.quote(table.name)} ({cols}) VALUES ({', '.join(holes)})"
    else:
        sql = f"INSERT INTO {d.quote(table.name)} DEFAULT VALUES"
    return sql + " RETURNING " + ", ".join(d.quote(c) for c in returning), params


def update_sql(
    table: Table,
    values: dict[str, Any],
    filters: Sequence[Filter],
    d: Dialect,
    returning: Sequence[str],
) -> tuple[str, list]:
    sets, params = [], []
    for name, value in values.items():
        hole, val = d.param(table.column(name), value)  # type: ignore[arg-type]
        sets.append(f"{d.quote(name)} = {hole}")
        params.append(val)
    where_sql, where_params = where(filters, d)
    sql = f"UPDATE {d.quote(table.name)} SET {', '.join(sets)}{where_sql}"
    sql += " RETURNING " + ", ".join(d.quote(c) for c in returning)
    return sql, params + where_params
