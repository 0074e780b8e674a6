"""What the Datadog clients and sentry-sdk send, decoded: series, distributions, DogStatsD
lines and Sentry envelopes. A payload that is not what the wire format says is a BadPayload
naming the field and what was expected."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 5 * 1024 * 1024  # Datadog's limit on a decompressed v2 series payload
V2_TYPES = {0: "unspecified", 1: "count", 2: "rate", 3: "gauge"}
V1_TYPES = {"gauge", "count", "rate"}
STATSD_TYPES = {
    "c": "count",
    "g": "gauge",
    "ms": "histogram",
    "h": "histogram",
    "d": "distribution",
}


class BadPayload(ValueError):
    """A body that is not what its endpoint takes; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Point:
    """One submitted point: a float, or every sample of a distribution at that time."""

    metric: str
    type: str
    tags: tuple[str, ...]
    ts: float
    value: float | tuple[float, ...]


def decompress(body: bytes, encoding: str) -> bytes:
    """Undo Content-Encoding (gzip, deflate, br, identity); refuse what would be too large."""
    enc = encoding.strip().lower()
    try:
        if enc in ("", "identity"):
            out = body
        elif enc == "gzip":
            out = _bounded(zlib.decompressobj(16 + zlib.MAX_WBITS), body)
        elif enc == "deflate":
            # RFC 9110's deflate is zlib-wrapped; some clients send raw deflate
            try:
                out = _bounded(zlib.decompressobj(), body)
            except zlib.error:
                out = _bounded(zlib.decompressobj(-zlib.MAX_WBITS), body)
        elif enc == "br":
            try:
                import brotli
            except ImportError:
                raise BadPayload("Content-Encoding br needs the brotli package", 415) from None
            out = brotli.decompress(body)
        else:
            raise BadPayload(f"Content-Encoding {encoding!r}: expected gzip, deflate or br", 415)
    except (zlib.error, EOFError) as exc:
        raise BadPayload(f"body is not valid {enc} data ({exc})") from None
    if len(out) > MAX_BODY_BYTES:
        raise BadPayload(f"payload is over {MAX_BODY_BYTES} bytes once decompressed", 413)
    return out


def _bounded(d: Any, body: bytes) -> bytes:
    out = d.decompress(body, MAX_BODY_BYTES + 1)
    if d.unconsumed_tail:  # more than the limit was left to inflate
        raise BadPayload(f"payload is over {MAX_BODY_BYTES} bytes once decompressed", 413)
    return bytes(out)


def parse_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload(f"{what}: body is not JSON ({exc})") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadPayload(f"{where}: expected a finite number, found {value!r}")
    return float(value)


def _tags(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise BadPayload(f"{where}: expected a list of strings, found {raw!r}")
    return list(raw)


def _series(doc: Any, what: str) -> Iterator[tuple[str, str, dict[str, Any], list[Any]]]:
    """(where, metric name, series, its points) for each series of a payload, checked."""
    if not isinstance(doc, dict) or not isinstance(doc.get("series"), list):
        raise BadPayload(f"{what}: expected an object with a `series` list")
    for i, s in enumerate(doc["series"]):
        where = f"series[{i}]"
        if not isinstance(s, dict):
            raise BadPayload(f"{where}: expected an object, found {s!r}")
        name = s.get("metric")
        if not isinstance(name, str) or not name:
            raise BadPayload(f"{where}.metric: expected a metric name, found {name!r}")
        points = s.get("points")
        if not isinstance(points, list):
            raise BadPayload(f"{where}.points: expected a list, found {points!r}")
        yield where, name, s, points


def v2_series(doc: Any) -> list[Point]:
    """POST /api/v2/series (MetricsApi.submit_metrics): integer-second points, typed 0-3."""
    out: list[Point] = []
    for where, name, s, points in _series(doc, "/api/v2/series"):
        kind = s.get("type", 0)
        if kind not in V2_TYPES or isinstance(kind, bool):
            raise BadPayload(f"{where}.type: expected 0, 1, 2 or 3, found {kind!r}")
        tags = _tags(s.get("tags"), f"{where}.tags")
        for j, res in enumerate(s.get("resources") or []):
            if not isinstance(res, dict) or not isinstance(res.get("name"), str):
                raise BadPayload(f"{where}.resources[{j}]: expected {{name, type}}")
            if res.get("type") == "host":
                tags.append(f"host:{res['name']}")
        for j, p in enumerate(points):
            pw = f"{where}.points[{j}]"
            if not isinstance(p, dict):
                raise BadPayload(f"{pw}: expected {{timestamp, value}}, found {p!r}")
            ts = p.get("timestamp")
            if isinstance(ts, bool) or not isinstance(ts, int):
                raise BadPayload(f"{pw}.timestamp: expected integer seconds, found {ts!r}")
            value = _number(p.get("value"), f"{pw}.value")
            out.append(Point(name, V2_TYPES[kind], tuple(tags), float(ts), value))
    return out


def _host_tags(s: dict[str, Any], where: str) -> list[str]:
    tags = _tags(s.get("tags"), f"{where}.tags")
    host = s.get("host")
    if host is not None and not isinstance(host, str):
        raise BadPayload(f"{where}.host: expected a string, found {host!r}")
    return [*tags, f"host:{host}"] if host else tags


def v1_series(doc: Any) -> list[Point]:
    """POST /api/v1/series: points as [timestamp, value] pairs, type a word."""
    out: list[Point] = []
    for where, name, s, points in _series(doc, "/api/v1/series"):
        kind = s.get("type") or "gauge"
        if kind not in V1_TYPES:
            raise BadPayload(f"{where}.type: expected gauge, count or rate, found {kind!r}")
        tags = tuple(_host_tags(s, where))
        for j, p in enumerate(points):
            pw = f"{where}.points[{j}]"
            if not isinstance(p, list | tuple) or len(p) != 2:
                raise BadPayload(f"{pw}: expected [timestamp, value], found {p!r}")
            ts = _number(p[0], f"{pw}[0] (timestamp)")
            out.append(Point(name, kind, tags, float(int(ts)), _number(p[1], f"{pw}[1] (value)")))
    return out


def distribution_points(doc: Any) -> list[Point]:
    """POST /api/v1/distribution_points: [timestamp, [sample, ...]] per point."""
    out: list[Point] = []
    for where, name, s, points in _series(doc, "/api/v1/distribution_points"):
        tags = tuple(_host_tags(s, where))
        for j, p in enumerate(points):
            pw = f"{where}.points[{j}]"
            if not isinstance(p, list | tuple) or len(p) != 2 or not isinstance(p[1], list):
                raise BadPayload(f"{pw}: expected [timestamp, [values]], found {p!r}")
            ts = _number(p[0], f"{pw}[0] (timestamp)")
            values = tuple(_number(v, f"{pw}[1][{k}]") for k, v in enumerate(p[1]))
            out.append(Point(name, "distribution", tags, float(int(ts)), values))
    return out


_STATSD_NAME = re.compile(r"^[A-Za-z][\w.\-]*$")


def statsd_lines(datagram: bytes, now: float) -> tuple[list[Point], list[str]]:
    """DogStatsD `name:value|type|@rate|#tags|T<ts>` lines; (points, problems per bad line).

    Events (`_e{`) and service checks (`_sc|`) are not metrics and are passed over; sets (`s`)
    are not kept (their value is a member, not a number).
    """
    points: list[Point] = []
    problems: list[str] = []
    text = datagram.decode("utf-8", errors="replace")
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith(("_e{", "_sc|")):
            continue
        try:
            points += _statsd_line(line, now)
        except BadPayload as exc:
            problems.append(f"line {n} {line[:80]!r}: {exc}")
    return points, problems


def _statsd_line(line: str, now: float) -> list[Point]:
    head, _, rest = line.partition("|")
    name, sep, values = head.partition(":")
    if not sep or not _STATSD_NAME.match(name):
        raise BadPayload("expected name:value|type")
    fields = rest.split("|")
    kind = fields[0]
    if kind == "s":
        return []
    if kind not in STATSD_TYPES:
        raise BadPayload(f"type {kind!r}: expected c, g, ms, h, d or s")
    rate, tags, ts = 1.0, (), float(int(now))
    for f in fields[1:]:
        if f.startswith("@"):
            rate = _number(_float(f[1:], "sample rate"), "sample rate")
            if not 0 < rate <= 1:
                raise BadPayload(f"sample rate {f[1:]}: expected a number in (0, 1]")
        elif f.startswith("#"):
            tags = tuple(t for t in f[1:].split(",") if t)
        elif f.startswith("T"):
            ts = float(int(_float(f[1:], "timestamp")))
        # c: (container id) and unknown fields are ignored, as the Agent ignores them
    out = []
    for raw in values.split(":"):  # protocol 1.1: several values in one line
        value = _float(raw, "value")
        if kind == "c":
            value /= rate
        out.append(Point(name, STATSD_TYPES[kind], tags, ts, value))
    return out


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadPayload(f"{what} {text!r}: expected a number") from None
    if not math.isfinite(value):
        raise BadPayload(f"{what} {text!r}: expected a finite number")
    return value


@dataclass(frozen=True)
class Envelope:
    """A Sentry envelope's header and its `event` items (payload JSON)."""

    header: dict[str, Any]
    events: list[dict[str, Any]]
    item_types: list[str]


def sentry_envelope(body: bytes) -> Envelope:
    """Split an envelope: a header line, then per item a header line and its payload
    (`length` bytes when the item header gives it, else up to the next newline)."""
    first, _, rest = body.partition(b"\n")
    header = _json_line(first, "envelope header")
    events: list[dict[str, Any]] = []
    types: list[str] = []
    pos = 0
    n = 0
    while pos < len(rest):
        end = rest.find(b"\n", pos)
        line = rest[pos:] if end < 0 else rest[pos:end]
        pos = len(rest) if end < 0 else end + 1
        if not line.strip():
            continue
        n += 1
        item = _json_line(line, f"item {n} header")
        length = item.get("length")
        if length is not None:
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise BadPayload(f"item {n} header: length must be a byte count, found {length!r}")
            payload = rest[pos : pos + length]
            if len(payload) < length:
                raise BadPayload(f"item {n}: {length} bytes announced, {len(payload)} present")
            pos += length
            if rest[pos : pos + 1] == b"\n":
                pos += 1
        else:
            end = rest.find(b"\n", pos)
            payload = rest[pos:] if end < 0 else rest[pos:end]
            pos = len(rest) if end < 0 else end + 1
        kind = str(item.get("type", ""))
        types.append(kind)
        if kind == "event":
            event = _json_line(payload, f"item {n} (event) payload")
            events.append(event)
    return Envelope(header, events, types)


def _json_line(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload(f"{what}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadPayload(f"{what}: expected a JSON object")
    return doc


def event_tags(event: dict[str, Any]) -> dict[str, str]:
    """An event's tags, given as a dict or as a list of [key, value] pairs."""
    raw = event.get("tags")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    if isinstance(raw, list):
        for pair in raw:
            if isinstance(pair, list | tuple) and len(pair) == 2:
                out[str(pair[0])] = str(pair[1])
    return out
