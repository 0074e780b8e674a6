"""HTTP/1.1 framing for the HTTP toxics: where a request or an answer starts and where it ends.

Only what a proxy needs to keep keep-alive and pipelined exchanges in step (RFC 9112 section 6:
Content-Length, chunked, or until close); bodies are decoded only when a toxic must read them.
"""

from __future__ import annotations

import re

MAX_HEAD = 64 * 1024  # a head longer than this is not HTTP we take apart: the link passes through
_REQUEST_LINE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP/1\.[01]$")
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] [0-9]{3}(?: .*)?$")
_LINE_START = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}(?: |$)")


class WireError(Exception):
    """Bytes that are not the HTTP/1.1 message expected here."""


class Head:
    """The start line and header fields of a request or an answer, and their raw bytes."""

    __slots__ = ("first", "headers", "raw")

    def __init__(self, first: bytes, headers: list[tuple[str, str]], raw: bytes) -> None:
        self.first = first
        self.headers = headers
        self.raw = raw

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of every field called `name`, lower-cased."""
        name = name.lower()
        return {
            t.strip().lower() for k, v in self.headers if k.lower() == name for t in v.split(",")
        } - {""}

    @property
    def version(self) -> bytes:
        if self.first.startswith(b"HTTP/"):  # a status line; a method cannot contain "/"
            return self.first.split(b" ", 1)[0]
        return self.first.rsplit(b" ", 1)[-1]

    @property
    def method(self) -> bytes:
        return self.first.split(b" ", 1)[0]

    def keep_alive(self) -> bool:
        """Whether the connection stays open after this message (HTTP/1.1 unless told otherwise)."""
        conn = self.tokens("connection")
        if self.version == b"HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def looks_like_request(buf: bytes | bytearray) -> bool:
    """Could `buf` be the start of a request (used when joining a connection mid-stream)?"""
    line = bytes(buf[: buf.find(b"\r\n")]) if b"\r\n" in buf else bytes(buf[:64])
    if b"\r\n" in buf:
        return bool(_REQUEST_LINE.match(line))
    return bool(_LINE_START.match(line))


def parse_head(buf: bytearray, request: bool) -> Head | None:
    """Take a complete head off the front of `buf`; None when more bytes are needed."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise WireError("head too long")
        if buf and not (looks_like_request(buf) if request else b"HTTP/".startswith(buf[:5])):
            raise WireError("not an HTTP/1.1 start line")
        return None
    raw = bytes(buf[: end + 4])
    lines = raw[:end].split(b"\r\n")
    first = lines[0]
    if not (_REQUEST_LINE if request else _STATUS_LINE).match(first):
        raise WireError(f"not an HTTP/1.1 start line: {first[:60]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise WireError(f"bad header line {line[:60]!r}")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    del buf[: end + 4]
    return Head(first, headers, raw)


def status_of(head: Head) -> int:
    return int(head.first.split(b" ", 2)[1])


class Body:
    """One message body read off a stream: by Content-Length, chunked, or until the stream ends."""

    def __init__(self, kind: str, length: int = 0, keep: bool = False) -> None:
        self.kind = kind  # none | length | chunked | close
        self.remaining = length
        self.keep = keep  # decode into `data` (for a toxic that reads the body)
        self.data = bytearray()
        self.done = kind == "none" or (kind == "length" and length == 0)
        self._state = "size"  # chunked: size | data | crlf | trailer

    def consume(self, buf: bytearray) -> bytes:
        """Take the bytes of this body off the front of `buf`; returns them as they came."""
        if self.done:
            return b""
        if self.kind == "length":
            n = min(self.remaining, len(buf))
            raw = bytes(buf[:n])
            del buf[:n]
            self.remaining -= n
            self.done = self.remaining == 0
            if self.keep:
                self.data += raw
            return raw
        if self.kind == "close":
            raw = bytes(buf)
            buf.clear()
            if self.keep:
                self.data += raw
            return raw
        return self._chunked(buf)

    def _chunked(self, buf: bytearray) -> bytes:
        pos = 0
        while not self.done:
            if self._state == "size" or self._state == "trailer":
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > MAX_HEAD:
                        raise WireError("chunk size line too long")
                    break
                line = bytes(buf[pos:eol])
                pos = eol + 2
                if self._state == "trailer":
                    self.done = line == b""
                    continue
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise WireError(f"bad chunk size {line[:40]!r}") from None
                self.remaining = size
                self._state = "data" if size else "trailer"
            elif self._state == "data":
                n = min(self.remaining, len(buf) - pos)
                if n == 0:
                    break
                if self.keep:
                    self.data += buf[pos : pos + n]
                pos += n
                self.remaining -= n
                if self.remaining == 0:
                    self._state = "crlf"
            else:  # crlf after a chunk's data
                if len(buf) - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise WireError("chunk data not followed by CRLF")
                pos += 2
                self._state = "size"
        raw = bytes(buf[:pos])
        del buf[:pos]
        return raw


def request_body(head: Head, keep: bool) -> Body:
    """How a request's body is framed (RFC 9112 section 6.3: no length means no body)."""
    if "chunked" in head.tokens("transfer-encoding"):
        return Body("chunked", keep=keep)
    return Body("length", _length(head), keep=keep)


def answer_body(head: Head, request_method: bytes, keep: bool) -> Body:
    """How an answer's body is framed, given the method of the request it answers."""
    status = status_of(head)
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return Body("none")
    if "chunked" in head.tokens("transfer-encoding"):
        return Body("chunked", keep=keep)
    if head.get("content-length") is not None:
        return Body("length", _length(head), keep=keep)
    return Body("close", keep=keep)


def _length(head: Head) -> int:
    value = head.get("content-length")
    if value is None:
        return 0
    if not value.isdigit():
        raise WireError(f"bad Content-Length {value[:20]!r}")
    return int(value)


def render(status: int, headers: list[tuple[str, str]], body: bytes, head_only: bool) -> bytes:
    """An HTTP/1.1 answer with a Content-Length (no body bytes for HEAD, 204 and 304)."""
    from http import HTTPStatus

    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if status not in (204, 304):
        lines.append(f"Content-Length: {len(body)}")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head_only or status in (204, 304):
        return out
    return out + body
