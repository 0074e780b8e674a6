"""Body validation of the functions (CONTRACT section 1): one clear message per mistake."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from omnidrill import ethtx
from omnihub_ref.stores.schema import json_type

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
MAX_TEXT = 1000


class BadRequest(Exception):
    """The request is malformed; the message says where and what was expected."""


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, read no further than max_bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(f"request body too large: {declared} bytes, at most {max_bytes} accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BadRequest(f"request body too large: more than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8 text; expected a JSON object") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object, got a JSON {json_type(body)}")
    return body


def _check_fields(
    body: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join([*required, *optional])
        raise BadRequest(f"unexpected field {unknown[0][:40]!r}; allowed fields: {allowed}")
    missing = [f for f in required if f not in body]
    if missing:
        raise BadRequest(f"missing field {missing[0]!r}")


def _text(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise BadRequest(f"field {name!r} must be a string, got {json_type(value)}")
    if not value.strip():
        raise BadRequest(f"field {name!r} must not be empty")
    if len(value) > MAX_TEXT:
        raise BadRequest(f"field {name!r} is too long: {len(value)} characters, at most {MAX_TEXT}")
    return value


def validate_agent(body: dict[str, Any]) -> dict[str, Any]:
    _check_fields(body, ("user_id", "intent"), ())
    return {"user_id": _text(body, "user_id"), "intent": _text(body, "intent")}


def validate_balance(body: dict[str, Any]) -> dict[str, Any]:
    _check_fields(body, ("address",), ())
    if not isinstance(body["address"], str):
        raise BadRequest(f"field 'address' must be a string, got {json_type(body['address'])}")
    try:
        ethtx.check_address(body["address"])
    except ValueError as exc:
        raise BadRequest(f"field {exc}") from None
    return {"address": body["address"]}


def validate_trade(body: dict[str, Any]) -> dict[str, Any]:
    _check_fields(body, ("user_id", "amount_usd", "raw_tx"), ("approval_id",))
    user_id = _text(body, "user_id")
    amount = body["amount_usd"]
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise BadRequest(f"field 'amount_usd' must be a number, got {json_type(amount)}")
    if not math.isfinite(amount) or amount <= 0:
        raise BadRequest(f"field 'amount_usd' must be a positive number, got {amount!r}")
    try:
        tx_hash = ethtx.tx_hash(body["raw_tx"])
    except ValueError as exc:
        raise BadRequest(f"field {exc}") from None
    out: dict[str, Any] = {
        "user_id": user_id,
        "amount_usd": amount,
        "raw_tx": body["raw_tx"],
        "tx_hash": tx_hash,
        "approval_id": None,
    }
    if "approval_id" in body:
        aid = body["approval_id"]
        if not isinstance(aid, str) or not _UUID.fullmatch(aid):
            shown = repr(aid[:40]) if isinstance(aid, str) else json_type(aid)
            raise BadRequest(f"field 'approval_id' must be a UUID, got {shown}")
        out["approval_id"] = aid.lower()
    return out


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, checked: 1-255 visible ASCII characters."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("header Idempotency-Key must be 1-255 visible ASCII characters")
    return key
