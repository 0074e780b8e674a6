"""Toxiproxy's HTTP API over a small asyncio HTTP/1.1 server.

A hand-written server instead of Starlette/uvicorn: the API is a dozen routes, we need exact
control of status lines, headers and bodies (Go's `http.Error` quirks, mux's 404/405), and it
starts and stops inside any event loop without uvicorn's signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import string
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from omnidrill.faults.server import gojson
from omnidrill.faults.server.proxy import (
    TOXIC_NOT_FOUND,
    APIError,
    ProxyCollection,
    populate_result,
)

VERSION = "2.12.0"  # the Toxiproxy API version this server implements
MAX_BODY = 4 * 1024 * 1024
MAX_HEADER_LINES = 100
REQUEST_ID_ALPHABET = string.digits + "abcdefghijklmnopqrstuv"  # xid's base32hex


class Response:
    """Status, headers and body of one answer."""

    def __init__(
        self, status: int, body: bytes = b"", content_type: str | None = None, **headers: str
    ) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = {}
        if content_type:
            self.headers["Content-Type"] = content_type
        self.headers.update(headers)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, gojson.dumps(value), "application/json")


def error_response(message: str, status: int) -> Response:
    """Go's http.Error: the JSON error as text/plain with a trailing newline."""
    body = gojson.dumps({"error": message, "status": status}) + b"\n"
    return Response(
        status, body, "text/plain; charset=utf-8", **{"X-Content-Type-Options": "nosniff"}
    )


def _request_id() -> str:
    return "".join(secrets.choice(REQUEST_ID_ALPHABET) for _ in range(20))


class API:
    """Routes Toxiproxy's endpoints onto a ProxyCollection."""

    def __init__(self, collection: ProxyCollection) -> None:
        self.collection = collection

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Response:
        if headers.get("user-agent", "").startswith("Mozilla/"):
            return Response(
                403,
                b"User agent not allowed\n",
                "text/plain; charset=utf-8",
                **{"X-Content-Type-Options": "nosniff"},
            )
        parts = [unquote(p) for p in path.split("/")[1:]]
        try:
            return await self._route(method, parts, body)
        except APIError as exc:
            return error_response(exc.message, exc.status)

    async def _route(self, method: str, parts: list[str], body: bytes) -> Response:
        c = self.collection
        routes: dict[str, Any]
        match parts:
            case ["version"]:
                routes = {"GET": self.version}
            case ["reset"]:
                routes = {"POST": self.reset}
            case ["populate"]:
                routes = {"POST": lambda: self.populate(body)}
            case ["proxies"]:
                routes = {"GET": self.proxy_index, "POST": lambda: self.proxy_create(body)}
            case ["proxies", p] if p:
                routes = {
                    "GET": lambda: json_response(c.get(p).to_json()),
                    "POST": lambda: self.proxy_update(p, body),
                    "PATCH": lambda: self.proxy_update(p, body),
                    "DELETE": lambda: self.proxy_delete(p),
                }
            case ["proxies", p, "toxics"] if p:
                routes = {
                    "GET": lambda: json_response([w.to_json() for w in c.get(p).toxics.all()]),
                    "POST": lambda: self.toxic_create(p, body),
                }
            case ["proxies", p, "toxics", t] if p and t:
                routes = {
                    "GET": lambda: self.toxic_show(p, t),
                    "POST": lambda: self.toxic_update(p, t, body),
                    "PATCH": lambda: self.toxic_update(p, t, body),
                    "DELETE": lambda: self.toxic_delete(p, t),
                }
            case _:
                return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
        handler = routes.get(method)
        if handler is None:
            return Response(405)
        result = handler()
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def version(self) -> Response:
        return Response(
            200, f'{{"version": "{VERSION}"}}\n'.encode(), "application/json;charset=utf-8"
        )

    def proxy_index(self) -> Response:
        proxies = self.collection.proxies
        return json_response({name: proxies[name].to_json() for name in sorted(proxies)})

    async def proxy_create(self, body: bytes) -> Response:
        proxy = await self.collection.create_json(body)
        return json_response(proxy.to_json(), 201)

    async def proxy_update(self, name: str, body: bytes) -> Response:
        proxy = await self.collection.update_json(name, body)
        return json_response(proxy.to_json())

    async def proxy_delete(self, name: str) -> Response:
        await self.collection.delete(name)
        return Response(204)

    async def populate(self, body: bytes) -> Response:
        try:
            entries = gojson.loads(body)
        except gojson.GoJSONError as exc:
            raise APIError(f"bad request body: {exc}", 400) from None
        proxies, error = await self.collection.populate(entries)
        status, result = populate_result(proxies, error)
        return json_response(result, status)

    async def reset(self) -> Response:
        await self.collection.reset()
        return Response(204)

    async def toxic_create(self, proxy_name: str, body: bytes) -> Response:
        proxy = self.collection.get(proxy_name)
        async with proxy.lock:
            toxic = await proxy.toxics.add_json(body)
        return json_response(toxic.to_json())

    def toxic_show(self, proxy_name: str, toxic_name: str) -> Response:
        toxic = self.collection.get(proxy_name).toxics.find(toxic_name)
        if toxic is None:
            raise APIError(*TOXIC_NOT_FOUND)
        return json_response(toxic.to_json())

    async def toxic_update(self, proxy_name: str, toxic_name: str, body: bytes) -> Response:
        proxy = self.collection.get(proxy_name)
        async with proxy.lock:
            toxic = await proxy.toxics.update_json(toxic_name, body)
        return json_response(toxic.to_json())

    async def toxic_delete(self, proxy_name: str, toxic_name: str) -> Response:
        proxy = self.collection.get(proxy_name)
        async with proxy.lock:
            await proxy.toxics.remove(toxic_name)
        return Response(204)


class _BadRequest(Exception):
    pass


class HTTPServer:
    """A minimal HTTP/1.1 server (keep-alive, Content-Length and chunked bodies) for the API."""

    def __init__(self, api: API) -> None:
        self.api = api
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    request = await self._read_request(reader, writer)
                except _BadRequest as exc:
                    await self._write(writer, Response(400, f"400 {exc}\n".encode()), False)
                    return
                if request is None:
                    return
                method, target, version, headers, body = request
                response = await self.api.handle(method, urlsplit(target).path, headers, body)
                conn = headers.get("connection", "").lower()
                keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
                await self._write(writer, response, keep, head=method == "HEAD")
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, str, str, dict[str, str], bytes] | None:
        line = await reader.readline()
        if not line:
            return None
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            raise _BadRequest("Bad Request") from None
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest("Bad Request")
            headers[name.strip().lower()] = value.strip()
        else:
            raise _BadRequest("Request Header Fields Too Large")
        if headers.get("expect", "").lower() == "100-continue":  # curl, for larger bodies
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        else:
            length = headers.get("content-length", "0") or "0"
            if not length.isdigit() or int(length) > MAX_BODY:
                raise _BadRequest("Bad Request")
            body = await reader.readexactly(int(length))
        return method.upper(), target, version.upper(), headers, body

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size_line = (await reader.readline()).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadRequest("Bad Request") from None
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readline()
            if len(body) > MAX_BODY:
                raise _BadRequest("Bad Request")

    async def _write(
        self, writer: asyncio.StreamWriter, response: Response, keep: bool, head: bool = False
    ) -> None:
        reason = HTTPStatus(response.status).phrase
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        headers = {
            "X-Toxiproxy-Request-Id": _request_id(),
            "Date": formatdate(usegmt=True),
            **response.headers,
        }
        if response.status != 204:
            headers["Content-Length"] = str(len(response.body))
        if not keep:
            headers["Connection"] = "close"
        lines += [f"{k}: {v}" for k, v in headers.items()]
        out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if response.status != 204 and not head:
            out += response.body  # one write: one segment for small answers
        writer.write(out)
        await writer.drain()
