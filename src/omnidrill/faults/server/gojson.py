"""Request decoding and response encoding with Go `encoding/json` rules, as Toxiproxy applies them.

Toxiproxy decodes bodies into Go structs: unknown fields are ignored, `null` leaves a field
unchanged, keys match case-insensitively, a wrong type is an error, and only the first JSON
value of the body is read. Clients depend on all of that, so we reproduce it here.
"""

from __future__ import annotations

import json
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38


class GoJSONError(ValueError):
    """A body Go's decoder would reject; the message mimics Go's."""


class _Number(float):
    """A JSON number written with a fraction or exponent; keeps its literal for messages."""

    literal: str

    def __new__(cls, literal: str) -> _Number:
        obj = super().__new__(cls, literal)
        obj.literal = literal
        return obj


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_float=_Number, parse_constant=_reject_constant)


def loads(raw: bytes) -> Any:
    """Decode the first JSON value of a body, as `json.NewDecoder(body).Decode` does."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GoJSONError(f"invalid UTF-8 at offset {exc.start}") from None
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        raise GoJSONError("EOF")
    try:
        value, _end = _DECODER.raw_decode(stripped)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(stripped):
            raise GoJSONError("unexpected EOF") from None
        char = stripped[exc.pos]
        raise GoJSONError(
            f"invalid character {char!r} at offset {exc.pos + 1}: {exc.msg.lower()}"
        ) from None
    return value


def json_kind(value: Any) -> str:
    """How Go names a JSON value in an UnmarshalTypeError."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number):
        return f"number {value.literal}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: Any, where: str, go_type: str) -> GoJSONError:
    return GoJSONError(f"json: cannot unmarshal {json_kind(value)} into {where} of type {go_type}")


def convert(value: Any, go_type: str, where: str) -> Any:
    """Check one non-null value against a Go field type ("string", "bool", "int64", "float32",
    "[]string", "map[string]string", "any")."""
    if go_type == "string":
        if isinstance(value, str):
            return value
    elif go_type == "bool":
        if isinstance(value, bool):
            return value
    elif go_type in ("int64", "int"):
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                raise _type_error(value, where, go_type)
            return value
    elif go_type == "any":
        return value
    elif go_type == "[]string":
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str):
                    raise _type_error(item, where, "string")
            return list(value)
    elif go_type == "map[string]string":
        if isinstance(value, dict):
            for item in value.values():
                if item is not None and not isinstance(item, str):
                    raise _type_error(item, where, "string")
            return {k: v for k, v in value.items() if v is not None}
    elif go_type == "float32":
        if isinstance(value, int | float) and not isinstance(value, bool):
            if abs(float(value)) > FLOAT32_MAX:
                raise _type_error(value, where, go_type)
            return float(value)
    else:  # pragma: no cover - a programming error in a field table
        raise AssertionError(f"unknown Go type {go_type}")
    raise _type_error(value, where, go_type)


def decode_struct(
    obj: Any, fields: dict[str, str], into: dict[str, Any], struct: str
) -> dict[str, Any]:
    """Decode a JSON object into `into` (the defaults), Go style; returns `into`.

    `fields` maps each JSON field name to its Go type. A null body or field keeps the default.
    """
    if obj is None:
        return into
    if not isinstance(obj, dict):
        raise GoJSONError(f"json: cannot unmarshal {json_kind(obj)} into Go value of type {struct}")
    folded = {name.lower(): name for name in fields}
    for key, value in obj.items():
        name = key if key in fields else folded.get(key.lower())
        if name is None or value is None:
            continue
        into[name] = convert(value, fields[name], f"Go struct field {struct}.{name}")
    return into


def dumps(value: Any) -> bytes:
    """Encode like Go's json.Marshal: compact, UTF-8, with <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode("utf-8")
