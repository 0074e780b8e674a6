"""The control tables over HTTP: the subset of PostgREST that Supabase serves under /rest/v1/.

Keys follow Supabase: `apikey` and `Authorization: Bearer` carry the same key; only the
service-role key reaches these tables (the anon key gets 401, as row-level security with no
policies answers an anonymous role).

Supported: GET/HEAD with `select=*|col,...`, filters `col=[not.]op.value` (eq, neq, lt, lte,
gt, gte, is.null|true|false, in.(a,"b,c")), `order=col[.asc|.desc][.nullsfirst|.nullslast],...`,
`limit`, `offset`; POST (object or array) and PATCH (filters required), with
`Prefer: return=representation`; `Accept: application/vnd.pgrst.object+json`. Errors have
PostgREST's body `{"code", "details", "hint", "message"}` and statuses.
"""

from __future__ import annotations

import hmac
import json
import logging
import traceback
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnidrill import secrets
from omnihub_ref.stores import Store
from omnihub_ref.stores.errors import ApiError, bad_request
from omnihub_ref.stores.query import find_table, parse_filters, parse_read, parse_select
from omnihub_ref.stores.schema import Table

log = logging.getLogger("omnihub_ref.control_api")

DEFAULT_MAX_BODY_BYTES = 64 * 1024
# A body larger than this is not even drained; the connection is closed after the answer.
_DRAIN_LIMIT = 16 * 1024 * 1024
_JSON = "application/json; charset=utf-8"
_SINGLE_OBJECT = "application/vnd.pgrst.object+json"
SERVICE_ROLE = "service_role"
ANON = "anon"


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def error_response(err: ApiError) -> Response:
    body = secrets.scrub_obj(err.body())
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return Response(_json_bytes(body), status_code=err.status, media_type=_JSON, headers=headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class ControlApi:
    """Request handling of the control API over one store."""

    def __init__(
        self, store: Store, *, anon_key: str, service_role_key: str, max_body_bytes: int
    ) -> None:
        if not anon_key or not service_role_key:
            raise ValueError("the control API needs both an anon key and a service-role key")
        if anon_key == service_role_key:
            raise ValueError("the anon key and the service-role key must differ")
        if max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be at least 1024, got {max_body_bytes}")
        secrets.register(anon_key, service_role_key)
        self.store = store
        self._keys = {
            ANON: anon_key.encode(),
            SERVICE_ROLE: service_role_key.encode(),
        }
        self._max_body = max_body_bytes

    # --- auth ---------------------------------------------------------------------------------

    def role(self, request: Request) -> str:
        """The role the keys grant, or a 401 saying what is wrong (never echoing a key)."""
        apikey = request.headers.get("apikey")
        auth = request.headers.get("authorization")
        if not apikey:
            raise ApiError(
                401,
                "PGRST301",
                "No API key found in request",
                "No `apikey` request header was found.",
                "Send the key in the apikey header and as Authorization: Bearer <key>.",
            )
        presented = apikey.encode("utf-8", "replace")
        role = next(
            (r for r, k in self._keys.items() if hmac.compare_digest(presented, k)),
            None,
        )
        if role is None:
            raise ApiError(401, "PGRST301", "Invalid API key", None, "Double check your key.")
        scheme, _, token = (auth or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "PGRST301",
                "Missing Authorization: Bearer token",
                None,
                "Send the same key as Authorization: Bearer <key>.",
            )
        if not hmac.compare_digest(token.strip().encode("utf-8", "replace"), presented):
            raise ApiError(
                401,
                "PGRST301",
                "The Authorization bearer token does not match the apikey header",
                None,
                "Send the same key in both headers.",
            )
        return role

    # --- request handling -------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        try:
            role = self.role(request)
            table = find_table(request.path_params["table"])
            if role != SERVICE_ROLE:
                raise ApiError(
                    401,
                    "42501",
                    f"permission denied for table {table.name}",
                    None,
                    "The control tables are reachable with the service-role key only.",
                )
            method = request.method
            if method in ("GET", "HEAD"):
                return await self._get(request, table, head=method == "HEAD")
            if method == "POST":
                return await self._post(request, table)
            if method == "PATCH":
                return await self._patch(request, table)
            raise ApiError(
                405,
                "PGRST117",
                f"Unsupported HTTP method: {method}",
                None,
                "The control API supports GET, HEAD, POST and PATCH.",
            )
        except ApiError as err:
            return error_response(err)
        except Exception:
            # Logged scrubbed for the operator; the client learns nothing about internals.
            log.error("control API request failed: %s", secrets.scrub(traceback.format_exc()))
            return error_response(ApiError(500, "XX000", "internal error", None, None))

    async def _get(self, request: Request, table: Table, *, head: bool) -> Response:
        read = parse_read(table, request.query_params.multi_items())
        rows = await run_in_threadpool(self.store.select, read)
        headers = {
            "Content-Range": f"{read.offset}-{read.offset + len(rows) - 1}/*" if rows else "*/*"
        }
        body = self._shape(request, rows)
        return Response(b"" if head else body, status_code=200, media_type=_JSON, headers=headers)

    async def _post(self, request: Request, table: Table) -> Response:
        payload = await self._json_body(request)
        rows = payload if isinstance(payload, list) else [payload]
        if isinstance(payload, list):
            _check_same_keys(rows)
        returning = self._returning(request, table)
        if returning and len(rows) != 1:
            self._shape(request, rows)  # a single object asked for: refuse before inserting
        created = await run_in_threadpool(self.store.insert, table, rows, returning)
        if not returning:
            return Response(status_code=201)
        return Response(self._shape(request, created), status_code=201, media_type=_JSON)

    async def _patch(self, request: Request, table: Table) -> Response:
        filters = parse_filters(table, request.query_params.multi_items())
        payload = await self._json_body(request)
        if not isinstance(payload, dict):
            raise bad_request(
                "PGRST102",
                "Empty or invalid json",
                f"PATCH takes one JSON object of columns to set, got {type(payload).__name__}",
            )
        returning = self._returning(request, table)
        updated = await run_in_threadpool(self.store.update, table, payload, filters, returning)
        if not returning:
            return Response(status_code=204)
        return Response(self._shape(request, updated), status_code=200, media_type=_JSON)

    # --- helpers ------------------------------------------------------------------------------

    def _returning(self, request: Request, table: Table) -> list[str]:
        """Columns to answer with: `select=` under `Prefer: return=representation`, else none."""
        prefer = {}
        for part in request.headers.get("prefer", "").split(","):
            key, _, value = part.strip().partition("=")
            prefer[key.strip().lower()] = value.strip().lower()
        if prefer.get("return") != "representation":
            return []
        select = next((v for k, v in request.query_params.multi_items() if k == "select"), None)
        return parse_select(table, select)

    def _shape(self, request: Request, rows: list[dict[str, Any]]) -> bytes:
        """An array, or one object when the client asked for application/vnd.pgrst.object+json."""
        if _SINGLE_OBJECT in request.headers.get("accept", ""):
            if len(rows) != 1:
                raise ApiError(
                    406,
                    "PGRST116",
                    "JSON object requested, multiple (or no) rows returned",
                    f"The result contains {len(rows)} rows",
                    None,
                )
            return _json_bytes(rows[0])
        return _json_bytes(rows)

    async def _json_body(self, request: Request) -> Any:
        ctype = request.headers.get("content-type")
        if ctype:
            media = ctype.split(";", 1)[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                raise ApiError(
                    415,
                    "PGRST107",
                    f"Content-Type not acceptable: {media[:60]}",
                    None,
                    "Send the body as application/json.",
                )
        body = await self._read_body(request)
        if not body.strip():
            raise bad_request("PGRST102", "Empty or invalid json", "the request body is empty")
        try:
            return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise bad_request(
                "PGRST102", "Empty or invalid json", "the body is not valid UTF-8"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise bad_request("PGRST102", "Empty or invalid json", str(exc)[:200]) from None

    async def _read_body(self, request: Request) -> bytes:
        """The body; a 400 above max_body_bytes (read to the end, so the answer lands)."""
        declared = request.headers.get("content-length", "")
        too_big = declared.isdigit() and int(declared) > self._max_body
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                too_big = True
            if too_big:
                if size > _DRAIN_LIMIT:
                    break
                continue
            chunks.append(chunk)
        if too_big:
            raise bad_request(
                "PGRST102",
                f"Request body too large: more than {self._max_body} bytes",
                f"received {size} bytes" + ("" if size <= _DRAIN_LIMIT else " or more"),
                "Rows of the control tables are small; send one change at a time.",
            )
        return b"".join(chunks)


def _check_same_keys(rows: list[Any]) -> None:
    """A bulk insert's objects must all name the same columns, as PostgREST requires."""
    if not rows:
        return
    if not all(isinstance(r, dict) for r in rows):
        raise bad_request(
            "PGRST102", "Empty or invalid json", "a POST array must hold JSON objects only"
        )
    first = set(rows[0])
    if any(set(r) != first for r in rows[1:]):
        raise bad_request("PGRST102", "All object keys must match", None, None)


async def _not_found(request: Request) -> Response:
    return error_response(
        ApiError(
            404,
            "PGRST125",
            f"Invalid path specified in request URL: {request.url.path[:80]}",
            None,
            "The control API serves /rest/v1/<table>.",
        )
    )


def create_control_app(
    store: Store,
    *,
    anon_key: str,
    service_role_key: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """A Starlette app serving the control tables of `store` under /rest/v1/.

    The caller owns the store (opens it, migrates it, closes it after the server stops).
    """
    api = ControlApi(
        store, anon_key=anon_key, service_role_key=service_role_key, max_body_bytes=max_body_bytes
    )
    methods = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"]
    routes = [
        Route("/rest/v1/{table}", api.handle, methods=methods),
        Route("/{path:path}", _not_found, methods=methods),
    ]
    app = Starlette(routes=routes)
    app.state.control_api = api
    app.state.store = store
    return app


__all__ = ["ControlApi", "create_control_app", "error_response"]
