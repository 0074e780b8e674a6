"""HTTP toxics (an omnidrill extension of Toxiproxy's API): answer a request, or replace its answer.

`http_error` answers a matching request itself and never forwards it; `http_replace` forwards it
and replaces the parts of the answer it names (status, headers, body). Both read JSON-RPC
requests, single and batched: `methods` picks calls by method, and `rpc_error_code` answers each
picked call with a JSON-RPC error object that echoes its id. The first toxic (in the order the
API lists them) that matches a request is the one that acts on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

HTTP_TYPES = ("http_error", "http_replace")
STRUCTS = {"http_error": "HTTPErrorToxic", "http_replace": "HTTPReplaceToxic"}
# attribute -> Go type, in the struct's field order (= the order the API shows them)
ATTRIBUTES = {
    "status": "int",
    "headers": "map[string]string",
    "body": "string",
    "rpc_error_code": "int64",
    "rpc_error_message": "string",
    "rpc_error_data": "any",
    "methods": "[]string",
}
# the proxy writes these itself, so that keep-alive and pipelining stay intact
FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}
RPC_MESSAGES = {
    -32700: "Parse error",
    -32600: "Invalid Request",
    -32601: "Method not found",
    -32602: "Invalid params",
    -32603: "Internal error",
    -32005: "limit exceeded",
    -32003: "transaction rejected",
    -32002: "resource unavailable",
}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def defaults() -> dict[str, Any]:
    return {
        "status": 0,
        "headers": {},
        "body": "",
        "rpc_error_code": 0,
        "rpc_error_message": "",
        "rpc_error_data": None,
        "methods": [],
    }


def validate(toxic_type: str, a: dict[str, Any]) -> None:
    """Raise ValueError naming the attribute when a toxic could not act as asked."""
    status = a["status"]
    if status and not 200 <= status <= 599:
        raise ValueError(f"{toxic_type}: status must be between 200 and 599 (or 0), got {status}")
    code = a["rpc_error_code"]
    if code and a["body"]:
        raise ValueError(f"{toxic_type}: give body or rpc_error_code, not both")
    if not code and (a["rpc_error_message"] or a["rpc_error_data"] is not None):
        raise ValueError(f"{toxic_type}: rpc_error_message and rpc_error_data need rpc_error_code")
    if toxic_type == "http_error" and not (status or code):
        raise ValueError("http_error: give a status, an rpc_error_code, or both")
    if toxic_type == "http_replace" and not (status or code or a["body"] or a["headers"]):
        raise ValueError("http_replace: give at least one of status, headers, body, rpc_error_code")
    for name, value in a["headers"].items():
        if not _TOKEN.match(name):
            raise ValueError(f"{toxic_type}: headers: {name!r} is not a valid header name")
        if name.lower() in FRAMING_HEADERS:
            raise ValueError(
                f"{toxic_type}: headers: {name} is set by the proxy (it keeps the framing intact)"
            )
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"{toxic_type}: headers: the value of {name} contains CR, LF or NUL")
    for method in a["methods"]:
        if not method:
            raise ValueError(f"{toxic_type}: methods: an empty method name never matches")


@dataclass
class Call:
    """One JSON-RPC call of a request (one element of a batch)."""

    index: int
    method: str | None
    has_id: bool
    id: Any
    raw: Any


def calls_of(body: bytes) -> tuple[list[Call], bool] | None:
    """The JSON-RPC calls of a request body, and whether it is a batch; None if not JSON-RPC."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    items, batch = (doc, True) if isinstance(doc, list) else ([doc], False)
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if not batch and not isinstance(doc.get("method"), str):
        return None
    calls = []
    for n, item in enumerate(items):
        method = item.get("method")
        calls.append(
            Call(n, method if isinstance(method, str) else None, "id" in item, item.get("id"), item)
        )
    return calls, batch


def _matches(a: dict[str, Any], call: Call | None) -> bool:
    methods = a["methods"]
    return not methods or (call is not None and call.method in methods)


@dataclass
class Decision:
    """What the acting toxic does to one exchange."""

    type: str
    attrs: dict[str, Any]
    calls: list[Call] | None = None
    batch: bool = False
    matched: set[int] = field(default_factory=set)  # calls answered with an error object

    @property
    def per_call(self) -> bool:
        return bool(self.attrs["rpc_error_code"]) and self.calls is not None

    @property
    def forwards(self) -> bool:
        """Does the request (or part of a batch) still go to the upstream?"""
        if self.type == "http_replace":
            return True
        return self.per_call and self.batch and len(self.matched) < len(self.calls or [])

    def forward_body(self) -> bytes | None:
        """The batch without its answered calls (http_error), or None to forward it unchanged."""
        if self.type != "http_error" or not self.forwards:
            return None
        rest = [c.raw for c in self.calls or [] if c.index not in self.matched]
        return json.dumps(rest, separators=(",", ":")).encode()


def decide(toxics: list[tuple[str, dict[str, Any]]], body: bytes) -> Decision | None:
    """The first toxic (type, attributes) matching the request, and on which calls; or None."""
    parsed = calls_of(body) if body else None
    for toxic_type, a in toxics:
        if parsed is None:
            if _matches(a, None):
                return Decision(toxic_type, a)
            continue
        calls, batch = parsed
        matched = {c.index for c in calls if _matches(a, c)}
        if matched:
            return Decision(toxic_type, a, calls, batch, matched)
    return None


def _error_object(a: dict[str, Any], call: Call) -> dict[str, Any]:
    code = a["rpc_error_code"]
    error: dict[str, Any] = {
        "code": code,
        "message": a["rpc_error_message"] or RPC_MESSAGES.get(code, "server error"),
    }
    if a["rpc_error_data"] is not None:
        error["data"] = a["rpc_error_data"]
    return {"jsonrpc": "2.0", "id": call.id, "error": error}


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _content_type(body: bytes) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def _headers(
    base: list[tuple[str, str]], a: dict[str, Any], content_type: str | None
) -> list[tuple[str, str]]:
    """`base` without framing fields, the toxic's headers set over it, Content-Type if given."""
    override = {k.lower() for k in a["headers"]}
    if content_type is not None:
        override.add("content-type")
    out = [(k, v) for k, v in base if k.lower() not in FRAMING_HEADERS | override]
    if content_type is not None and "content-type" not in {k.lower() for k in a["headers"]}:
        out.append(("Content-Type", content_type))
    out += list(a["headers"].items())
    return out


def local_answer(d: Decision) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of an http_error answer that forwards nothing."""
    a = d.attrs
    if d.per_call:
        picked = [c for c in d.calls or [] if c.index in d.matched]
        if d.batch:
            errors = [_error_object(a, c) for c in picked if c.has_id]  # notifications: none
            body = _dump(errors) if errors else b""
        else:
            body = _dump(_error_object(a, picked[0]))
        return a["status"] or 200, _headers([], a, "application/json"), body
    body = a["body"].encode()
    return a["status"], _headers([], a, _content_type(body) if body else None), body


def replaced_answer(
    d: Decision, status: int, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The upstream's answer after the toxic: merged with errors (batches) or replaced."""
    a = d.attrs
    if d.per_call:
        body = _merge_batch(d, body) if d.batch else _dump(_error_object(a, (d.calls or [])[0]))
        return a["status"] or status, _headers(headers, a, "application/json"), body
    content_type = None
    if a["body"]:
        body = a["body"].encode()
        content_type = _content_type(body)
    return a["status"] or status, _headers(headers, a, content_type), body


def _merge_batch(d: Decision, upstream: bytes) -> bytes:
    """Every call of the batch in its order: the toxic's errors, the upstream's other answers."""
    try:
        answers = json.loads(upstream) if upstream else []
    except (ValueError, UnicodeDecodeError):
        answers = []
    by_id = {}
    for item in answers if isinstance(answers, list) else []:
        if isinstance(item, dict) and "id" in item:
            by_id[json.dumps(item["id"])] = item
    out = []
    for call in d.calls or []:
        if not call.has_id:
            continue  # a notification gets no answer (JSON-RPC 2.0 section 6)
        if call.index in d.matched:
            out.append(_error_object(d.attrs, call))
        elif (found := by_id.get(json.dumps(call.id))) is not None:
            out.append(found)
    return _dump(out) if out else b""
