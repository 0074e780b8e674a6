"""The control tables: their columns and types, and strict conversion of values into them."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from omnihub_ref.stores.errors import ApiError, bad_request

CONTROLS_ROW_ID = "00000000-0000-0000-0000-000000000001"
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")
RISK_LEVELS = ("low", "medium", "high", "critical")
AUDIT_ACTION = "emergency_control_updated"


class Kind(StrEnum):
    """Column types, named as Postgres names them."""

    UUID = "uuid"
    TEXT = "text"
    BOOL = "boolean"
    NUMERIC = "numeric"
    BIGINT = "bigint"
    TEXT_ARRAY = "text[]"
    JSONB = "jsonb"
    TIMESTAMPTZ = "timestamptz"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = True
    has_default: bool = False  # may be left out of an insert
    writable: bool = True  # generated columns are not
    choices: tuple[str, ...] = ()  # the CHECK constraint, where there is one
    minimum: int | None = None  # a CHECK (col >= minimum), where there is one


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    insertable: bool = True
    updatable: bool = True
    tiebreak: str | None = None  # appended to ORDER BY so equal timestamps keep insert order

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


EMERGENCY_CONTROLS = Table(
    "emergency_controls",
    (
        Column("id", Kind.UUID, nullable=False, has_default=True),
        Column("omnihub_kill_switch", Kind.BOOL, nullable=False, has_default=True),
        Column("execution_safe_mode", Kind.BOOL, nullable=False, has_default=True),
        Column("operator_takeover", Kind.BOOL, nullable=False, has_default=True),
        Column("allowed_operations", Kind.TEXT_ARRAY, nullable=False, has_default=True),
        Column("updated_at", Kind.TIMESTAMPTZ, nullable=False, has_default=True),
        Column("updated_by", Kind.TEXT),
        Column("reason", Kind.TEXT),
    ),
)

APPROVAL_QUEUE = Table(
    "approval_queue",
    (
        Column("id", Kind.UUID, nullable=False, has_default=True),
        Column("user_id", Kind.TEXT, nullable=False),
        Column("action", Kind.TEXT, nullable=False),
        Column("amount_usd", Kind.NUMERIC, nullable=False, minimum=0),
        Column("risk_level", Kind.TEXT, nullable=False, choices=RISK_LEVELS),
        Column("status", Kind.TEXT, nullable=False, has_default=True, choices=APPROVAL_STATUSES),
        Column("request", Kind.JSONB, nullable=False, has_default=True),
        Column("expires_at", Kind.TIMESTAMPTZ, nullable=False, has_default=True),
        Column("created_at", Kind.TIMESTAMPTZ, nullable=False, has_default=True),
        Column("decided_at", Kind.TIMESTAMPTZ),
        Column("decided_by", Kind.TEXT),
        Column("executed_at", Kind.TIMESTAMPTZ),
        Column("result", Kind.JSONB),
        Column("reason", Kind.TEXT),
    ),
)

AUDIT_LOGS = Table(
    "audit_logs",
    (
        Column("id", Kind.UUID, nullable=False, has_default=True),
        Column("seq", Kind.BIGINT, nullable=False, has_default=True, writable=False),
        Column("action", Kind.TEXT, nullable=False),
        Column("resource_type", Kind.TEXT, nullable=False),
        Column("resource_id", Kind.TEXT),
        Column("actor", Kind.TEXT),
        Column("metadata", Kind.JSONB, nullable=False, has_default=True),
        Column("created_at", Kind.TIMESTAMPTZ, nullable=False, has_default=True),
    ),
    # Audit rows are written by the trigger only, so the trail cannot be forged over the API.
    insertable=False,
    updatable=False,
    tiebreak="seq",
)

TABLES: dict[str, Table] = {t.name: t for t in (EMERGENCY_CONTROLS, APPROVAL_QUEUE, AUDIT_LOGS)}


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """Timestamps as PostgREST shows timestamptz in UTC, always with microseconds (fixed width)."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (null, boolean, number, string, array, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(table: Table, col: Column, value: Any, expected: str) -> ApiError:
    shown = json.dumps(value)[:40] if not isinstance(value, dict | list) else json_type(value)
    return bad_request(
        "22P02",
        f'column "{col.name}" of {table.name} expects {expected}, got {json_type(value)} {shown}',
    )


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 with or without offset (naive means UTC); raise ValueError otherwise."""
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        # A "+" in a query string arrives as a space once the URL is decoded.
        ts = datetime.fromisoformat(text.replace(" ", "+")) if " " in text else None
        if ts is None:
            raise
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def coerce_json(table: Table, col: Column, value: Any) -> Any:
    """A JSON body value as the column's Python value, or a 400 saying what was expected."""
    if value is None:
        if not col.nullable:
            raise bad_request(
                "23502",
                f'null value in column "{col.name}" of relation "{table.name}" '
                "violates not-null constraint",
            )
        return None
    kind = col.kind
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise _type_error(table, col, value, "a boolean (true or false)")
        return value
    if kind is Kind.TEXT:
        if not isinstance(value, str):
            raise _type_error(table, col, value, "a string")
        if "\x00" in value:
            raise _type_error(table, col, "…", "a string without NUL characters")
        _check_choices(table, col, value)
        return value
    if kind is Kind.UUID:
        if not isinstance(value, str):
            raise _type_error(table, col, value, "a UUID string")
        return _parse_uuid(col, value)
    if kind is Kind.NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(table, col, value, "a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise _type_error(table, col, value, "a finite number")
        number = Decimal(str(value))
        _check_minimum(table, col, number)
        return number
    if kind is Kind.BIGINT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(table, col, value, "an integer")
        return value
    if kind is Kind.TEXT_ARRAY:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _type_error(table, col, value, "an array of strings")
        return list(value)
    if kind is Kind.JSONB:
        return value
    if kind is Kind.TIMESTAMPTZ:
        if not isinstance(value, str):
            raise _type_error(table, col, value, "an ISO 8601 timestamp string")
        try:
            return parse_timestamp(value)
        except ValueError:
            raise _type_error(table, col, value, "an ISO 8601 timestamp string") from None
    raise AssertionError(f"unhandled kind {kind}")


def coerce_text(table: Table, col: Column, text: str) -> Any:
    """A filter value from a query string converted to the column's Python value."""
    kind = col.kind
    if kind is Kind.TEXT:
        return text
    if kind is Kind.UUID:
        return _parse_uuid(col, text)
    if kind is Kind.BOOL:
        low = text.strip().lower()
        if low in {"true", "t", "yes", "y", "on", "1"}:
            return True
        if low in {"false", "f", "no", "n", "off", "0"}:
            return False
        raise bad_request("22P02", f'invalid input syntax for type boolean: "{text[:40]}"')
    if kind in (Kind.NUMERIC, Kind.BIGINT):
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            raise bad_request(
                "22P02", f'invalid input syntax for type {kind.value}: "{text[:40]}"'
            ) from None
        if not number.is_finite():
            raise bad_request("22P02", f'invalid input syntax for type {kind.value}: "{text}"')
        return int(number) if kind is Kind.BIGINT and number == number.to_integral() else number
    if kind is Kind.TIMESTAMPTZ:
        try:
            return parse_timestamp(text)
        except ValueError:
            raise bad_request(
                "22007", f'invalid input syntax for type timestamp with time zone: "{text[:40]}"'
            ) from None
    raise bad_request(
        "42883",
        f"filters on {table.name}.{col.name} ({kind.value}) support only is.null",
    )


def _parse_uuid(col: Column, text: str) -> str:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise bad_request(
            "22P02", f'invalid input syntax for type uuid: "{text[:40]}"', f"column {col.name}"
        ) from None


def _check_choices(table: Table, col: Column, value: str) -> None:
    if col.choices and value not in col.choices:
        raise bad_request(
            "23514",
            f'new row for relation "{table.name}" violates check constraint '
            f'"{table.name}_{col.name}_check"',
            f"{col.name} must be one of {', '.join(col.choices)}; got {json.dumps(value)[:40]}",
        )


def _check_minimum(table: Table, col: Column, value: Decimal) -> None:
    if col.minimum is not None and value < col.minimum:
        raise bad_request(
            "23514",
            f'new row for relation "{table.name}" violates check constraint '
            f'"{table.name}_{col.name}_check"',
            f"{col.name} must be >= {col.minimum}; got {value}",
        )


def number_to_json(value: Decimal | float | int) -> int | float:
    """Numbers as JSON: integral values as integers, others as floats."""
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return int(value) if value == value.to_integral_value() else float(value)
