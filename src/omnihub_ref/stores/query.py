"""Reads and writes of the control tables, parsed from PostgREST's query-string grammar."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from omnihub_ref.stores.errors import ApiError, bad_request
from omnihub_ref.stores.schema import TABLES, Column, Kind, Table, coerce_text

# Query parameters that are not column filters (PostgREST reserves these names).
RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})
OPERATORS = frozenset({"eq", "neq", "lt", "lte", "gt", "gte", "is", "in"})
_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
_MAX_LIMIT = 100_000


@dataclass(frozen=True)
class Filter:
    """`column op value`, negated by PostgREST's `not.` prefix; `in` holds a list of values."""

    column: Column
    op: str
    value: Any
    negate: bool = False


@dataclass(frozen=True)
class Order:
    column: str
    desc: bool = False
    nulls_first: bool | None = None  # None: Postgres' default (last when ascending)


@dataclass
class Read:
    table: Table
    columns: list[str]
    filters: list[Filter] = field(default_factory=list)
    order: list[Order] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


def find_table(name: str) -> Table:
    table = TABLES.get(name)
    if table is None:
        raise ApiError(
            404,
            "PGRST205",
            f"Could not find the table 'public.{name[:60]}' in the schema cache",
            None,
            f"The control API serves {', '.join(sorted(TABLES))}",
        )
    return table


def find_column(table: Table, name: str) -> Column:
    col = table.column(name)
    if col is None:
        raise bad_request(
            "42703",
            f"column {table.name}.{name[:60]} does not exist",
            None,
            f"Columns of {table.name}: {', '.join(table.names)}",
        )
    return col


def parse_select(table: Table, text: str | None) -> list[str]:
    """`*` or a comma-separated list of column names (no embedding, aliases or casts)."""
    if text is None or text.strip() in ("", "*"):
        return table.names
    names: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        if item == "*":
            names.extend(n for n in table.names if n not in names)
            continue
        if not _IDENT.fullmatch(item):
            raise bad_request(
                "PGRST100",
                f'failed to parse select parameter ("{text[:80]}")',
                f"unexpected {item[:40]!r}",
                "select takes * or column names separated by commas",
            )
        find_column(table, item)
        if item not in names:
            names.append(item)
    return names


def parse_filter(table: Table, key: str, text: str) -> Filter:
    """One `column=op.value` query parameter."""
    if key in ("or", "and", "not.or", "not.and"):
        raise bad_request(
            "PGRST100",
            f"failed to parse logic tree ({key}={text[:60]})",
            None,
            "this control API supports only filters joined by AND (one parameter per filter)",
        )
    if not _IDENT.fullmatch(key):
        raise bad_request("PGRST100", f"failed to parse filter ({key[:60]}={text[:60]})")
    col = find_column(table, key)
    negate = False
    rest = text
    if rest.startswith("not."):
        negate, rest = True, rest[4:]
    op, sep, arg = rest.partition(".")
    if not sep or op not in OPERATORS:
        raise bad_request(
            "PGRST100",
            f"failed to parse filter ({text[:80]})",
            f'unexpected operator "{op[:20]}"' if sep else "expected operator.value",
            f"operators: {', '.join(sorted(OPERATORS))}, optionally prefixed with not.",
        )
    if op == "is":
        return Filter(col, op, _parse_is(table, col, arg), negate)
    if op == "in":
        return Filter(col, op, [coerce_text(table, col, v) for v in _parse_list(text, arg)], negate)
    return Filter(col, op, coerce_text(table, col, arg), negate)


def _parse_is(table: Table, col: Column, arg: str) -> bool | None:
    low = arg.lower()
    if low in ("null", "unknown"):
        return None
    if low in ("true", "false"):
        if col.kind is not Kind.BOOL:
            raise bad_request(
                "42804", f"argument of IS {low.upper()} must be type boolean, not {col.kind.value}"
            )
        return low == "true"
    raise bad_request(
        "PGRST100", f"failed to parse filter (is.{arg[:40]})", None, "is takes null, true or false"
    )


def _parse_list(text: str, arg: str) -> list[str]:
    """`(a,b,"c,d")` into its items; double quotes protect commas."""
    if len(arg) < 2 or arg[0] != "(" or arg[-1] != ")":
        raise bad_request(
            "PGRST100", f"failed to parse filter ({text[:80]})", None, 'in takes a list: in.(a,"b")'
        )
    items: list[str] = []
    buf: list[str] = []
    quoted = False
    inner = arg[1:-1]
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\\" and quoted and i + 1 < len(inner):
            i += 1
            buf.append(inner[i])
        elif ch == "," and not quoted:
            items.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if quoted:
        raise bad_request("PGRST100", f"failed to parse filter ({text[:80]})", "unclosed quote")
    if inner:
        items.append("".join(buf))
    return items


def parse_order(table: Table, text: str) -> list[Order]:
    """`col[.asc|.desc][.nullsfirst|.nullslast]`, comma-separated."""
    orders: list[Order] = []
    for raw in text.split(","):
        parts = raw.strip().split(".")
        name, mods = parts[0], parts[1:]
        if not _IDENT.fullmatch(name) or len(mods) > 2:
            raise bad_request(
                "PGRST100",
                f"failed to parse order ({text[:80]})",
                None,
                "order takes col.asc or col.desc, optionally .nullsfirst or .nullslast",
            )
        find_column(table, name)
        desc, nulls_first = False, None
        for mod in mods:
            if mod in ("asc", "desc"):
                desc = mod == "desc"
            elif mod in ("nullsfirst", "nullslast"):
                nulls_first = mod == "nullsfirst"
            else:
                raise bad_request(
                    "PGRST100",
                    f"failed to parse order ({text[:80]})",
                    f'unexpected "{mod[:20]}"',
                    "order takes col.asc or col.desc, optionally .nullsfirst or .nullslast",
                )
        orders.append(Order(name, desc, nulls_first))
    return orders


def parse_count(name: str, text: str) -> int:
    """A non-negative integer `limit` or `offset`."""
    value = text.strip()
    if not value.isdigit() or int(value) > _MAX_LIMIT:
        raise bad_request(
            "PGRST100",
            f'failed to parse {name} parameter ("{text[:40]}")',
            None,
            f"{name} takes a whole number from 0 to {_MAX_LIMIT}",
        )
    return int(value)


def parse_filters(table: Table, params: Iterable[tuple[str, str]]) -> list[Filter]:
    return [parse_filter(table, k, v) for k, v in params if k not in RESERVED]


def parse_read(table: Table, params: list[tuple[str, str]]) -> Read:
    """A GET's query string into a Read; the first of a repeated select/order/limit wins."""
    single: dict[str, str] = {}
    for k, v in params:
        if k in RESERVED:
            single.setdefault(k, v)
    read = Read(table, parse_select(table, single.get("select")), parse_filters(table, params))
    if "order" in single:
        read.order = parse_order(table, single["order"])
    if "limit" in single:
        read.limit = parse_count("limit", single["limit"])
    if "offset" in single:
        read.offset = parse_count("offset", single["offset"])
    return read
