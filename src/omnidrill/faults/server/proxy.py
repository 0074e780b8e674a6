"""Proxies: a listener, the connections it accepted, and the toxic chains applied to them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from omnidrill.faults.server import gojson, httptoxics, splice
from omnidrill.faults.server.httpcodec import HttpCodec
from omnidrill.faults.server.link import Item, Link, _rng
from omnidrill.faults.server.toxics import TOXIC_TYPES, ToxicWrapper, default_attributes

DIAL_TIMEOUT = 30.0  # seconds to reach the upstream before the client is closed
READ_SIZE = 256 * 1024  # bytes per read, as asyncio's own default
WRITE_HIGH_WATER = 1024 * 1024  # a sink buffers this much before its source pauses
PROXY_FIELDS = {"name": "string", "listen": "string", "upstream": "string", "enabled": "bool"}
TOXIC_FIELDS = {
    "name": "string",
    "type": "string",
    "stream": "string",
    "toxicity": "float32",
}


class APIError(Exception):
    """An error with the HTTP status and message Toxiproxy answers with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def bad_body(exc: Exception) -> APIError:
    return APIError(f"bad request body: {exc}", 400)


PROXY_NOT_FOUND = ("proxy not found", 404)
TOXIC_NOT_FOUND = ("toxic not found", 404)


def split_listen(addr: str) -> tuple[str, int]:
    """Split "host:port" as Go's net.SplitHostPort does (IPv6 in brackets, empty host allowed)."""
    if addr == "":
        return "", 0  # Go's net.Listen("tcp", ""): every interface, any port
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise APIError(f"listen tcp: address {addr}: missing port in address", 500)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise APIError(f"listen tcp: address {addr}: too many colons in address", 500)
    if not port.isdigit() or int(port) > 65535:
        raise APIError(f"listen tcp: address {port}: invalid port", 500)
    return host, int(port)


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_listen(addr: str) -> tuple[int, tuple[Any, ...], str]:
    """Resolve a listen address to (family, sockaddr, "ip:port"), IPv4 first as Go does."""
    host, port = split_listen(addr)
    if host == "":
        if socket.has_ipv6:
            return socket.AF_INET6, ("::", port), join_hostport("::", port)
        return socket.AF_INET, ("0.0.0.0", port), join_hostport("0.0.0.0", port)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise APIError(f"listen tcp: lookup {host}: no such host", 500) from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr, join_hostport(sockaddr[0], sockaddr[1])


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    """No Nagle, as Go's (and so Toxiproxy's) TCP connections: a relayed write never waits for
    the peer's delayed ACK. asyncio sets it only on sockets made with proto IPPROTO_TCP, and a
    listener made with proto 0 (ours) hands out accepted sockets without it."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _set_linger_zero(transport: asyncio.BaseTransport | None) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Side(asyncio.BufferedProtocol):
    """One socket of a proxied connection: the source of one link and the sink of the other."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.link: Link | None = None  # the link this socket feeds
        self.lost = False
        self._buf: bytearray | None = None
        self._view = memoryview(b"")
        self._read_paused = False  # backpressure from the link
        self._write_paused = False
        self._space_waiters: list[asyncio.Future[None]] = []
        self._space_callbacks: list[Any] = []

    # -- protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _set_nodelay(transport)
        transport.pause_reading()  # until both links exist
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.conn.side_made(self)

    def get_buffer(self, sizehint: int) -> bytearray:
        # reads land in one reused buffer (no allocation per read); see buffer_updated
        if self._buf is None:
            self._buf = bytearray(READ_SIZE)
            self._view = memoryview(self._buf)
        return self._buf

    def buffer_updated(self, nbytes: int) -> None:
        link = self.link
        if link is not None and link.feed(self._view[:nbytes]):
            # the sink kept a part of this read in its buffer: read into a fresh one next time,
            # so that nothing still referencing this buffer can see it overwritten
            self._buf = None

    def eof_received(self) -> bool:
        if self.link is not None:
            self.link.feed_eof()
        return True  # keep the socket open for the other direction, as Toxiproxy does

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._write_paused = False
        self._notify_space()
        # relays watch this socket's fd themselves: release it before asyncio closes it
        for link in self.conn.links:
            if link.relay is not None and link.sink is self:
                link.relay.stop()
        if self.link is not None:
            if self.link.relay is not None and self.link.relay.active:
                self.link.relay.source_lost()  # ends the link once the pipe is written out
            else:
                self.link.feed_eof()
        self.conn.side_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._notify_space()

    # -- source side
    def pause_source(self) -> None:
        if not self._read_paused and self.transport is not None and not self.lost:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_source(self) -> None:
        if self._read_paused and self.transport is not None and not self.lost:
            self._read_paused = False
            self.transport.resume_reading()

    def start_reading(self) -> None:
        t = self.transport
        if t is not None and not self.lost and not t.is_closing() and not self._read_paused:
            t.resume_reading()

    # -- sink side (the Outlet protocol)
    def write_now(self, data: memoryview) -> bool:
        """Fast path (no toxics): write a read straight through; True if some of it was kept."""
        t = self.transport
        if t is None or self.lost or t.is_closing():
            return False
        t.write(data)
        return t.get_write_buffer_size() > 0

    def put_nowait(self, item: Item) -> None:
        t = self.transport
        if t is None or self.lost or t.is_closing():
            return
        if item is None:
            t.close()  # a full close once written, as Toxiproxy does; never a half-close
        else:
            t.write(item.data)

    def full(self) -> bool:
        return self._write_paused and not self.lost

    def wait_space(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.full():
            self._space_waiters.append(fut)
        else:
            fut.set_result(None)
        return fut

    def on_space(self, callback: Any) -> None:
        if self.full():
            self._space_callbacks.append(callback)
        else:
            asyncio.get_running_loop().call_soon(callback)

    def _notify_space(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        callbacks, self._space_callbacks = self._space_callbacks, []
        for callback in callbacks:
            callback()


class Connection:
    """A client accepted by a proxy, its upstream socket, and the two links between them."""

    def __init__(self, proxy: Proxy, generation: int) -> None:
        self.proxy = proxy
        self.generation = generation  # which start() of the proxy accepted us
        self.client = Side(self)
        self.upstream: Side | None = None
        self.links: list[Link] = []
        self.codec: HttpCodec | None = None  # while the proxy has (or had) HTTP toxics
        self._dial: asyncio.Task[None] | None = None
        self._done = False

    def side_made(self, side: Side) -> None:
        if side is self.client:
            if self.generation != self.proxy.generation:
                # accepted just before the listener closed; asyncio hands it over a bit later
                assert side.transport is not None
                side.transport.abort()
                return
            self.proxy.connections.add(self)
            self._dial = asyncio.get_running_loop().create_task(self._connect_upstream())

    async def _connect_upstream(self) -> None:
        try:
            await self._dial_and_link()
        finally:
            if self.client.lost and (self.upstream is None or self.upstream.lost):
                self._teardown()

    async def _dial_and_link(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = Side(self)
        try:
            host, port = split_listen(self.proxy.upstream)
            async with asyncio.timeout(DIAL_TIMEOUT):
                await loop.create_connection(lambda: upstream, host or None, port)
        except (OSError, APIError, TimeoutError):
            # the client sees the connection close, as with Toxiproxy when the upstream is down
            if self.client.transport is not None:
                self.client.transport.close()
            return
        self.upstream = upstream
        assert self.client.transport is not None and upstream.transport is not None
        if self._done or self.client.lost or self.generation != self.proxy.generation:
            upstream.transport.abort()  # the client went away, or the proxy stopped, meanwhile
            return
        toxics = self.proxy.toxics
        up = Link("upstream", self.client, upstream, toxics.tcp_chain("upstream"))
        down = Link("downstream", upstream, self.client, toxics.tcp_chain("downstream"))
        self.links = [up, down]
        if toxics.http():
            self.join_http(joined=False)
        use_splice = splice.available(loop) and self.codec is None
        self.client.link, upstream.link = up, down
        for link in self.links:
            if any(w.type == "reset_peer" for w in toxics.chains[link.direction]):
                _set_linger_zero(self.client.transport)
                _set_linger_zero(upstream.transport)
            if use_splice and not link.stages:
                link.relay = splice.SpliceRelay(link, link.source, link.sink)  # type: ignore[arg-type]
            toxics.links.add(link)
            link.start()

    def join_http(self, joined: bool = True) -> None:
        """Read this connection's exchanges for the proxy's HTTP toxics (`joined`: it is open)."""
        if self.codec is not None or len(self.links) != 2 or self._done:
            return
        up, down = self.links
        relays = [link.detach_relay() for link in self.links]
        self.codec = HttpCodec(self.proxy.toxics.http, _rng, joined)
        self.codec.attach(up, down)
        for link, relay in zip(self.links, relays, strict=True):
            link.resume(relay)

    def side_lost(self, side: Side) -> None:
        dialing = self._dial is not None and not self._dial.done()
        if dialing:
            if side is self.client:
                self._dial.cancel()  # type: ignore[union-attr]
            return  # the dial task tears down when it ends
        if self.client.lost and (self.upstream is None or self.upstream.lost):
            self._teardown()

    def _teardown(self) -> None:
        if self._done:
            return
        self._done = True
        for link in self.links:
            link.cancel()
            self.proxy.toxics.links.discard(link)
        self.proxy.connections.discard(self)

    def abort(self) -> None:
        """Close both sockets at once (proxy disabled, deleted or moved)."""
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.abort()
        if self.upstream is None:
            self._teardown()


class ToxicCollection:
    """The toxics of one proxy, per direction in insertion order, and the live links they act on.

    TCP toxics are stages of the links of their direction; HTTP toxics act on whole exchanges,
    through each connection's HttpCodec (`on_http` tells the proxy to give its open connections
    one when the first arrives).
    """

    def __init__(self) -> None:
        self.chains: dict[str, list[ToxicWrapper]] = {"upstream": [], "downstream": []}
        self.links: set[Link] = set()
        self.on_http: Callable[[], None] | None = None

    def all(self) -> list[ToxicWrapper]:
        return self.chains["upstream"] + self.chains["downstream"]

    def http(self) -> list[ToxicWrapper]:
        """The HTTP toxics, in the order the API lists them (the first that matches acts)."""
        return [w for w in self.all() if w.is_http]

    def tcp_chain(self, direction: str) -> list[ToxicWrapper]:
        return [w for w in self.chains[direction] if not w.is_http]

    def find(self, name: str) -> ToxicWrapper | None:
        return next((w for w in self.all() if w.name == name), None)

    def _links(self, direction: str) -> list[Link]:
        return [link for link in self.links if link.direction == direction]

    async def add_json(self, raw: bytes) -> ToxicWrapper:
        try:
            body = gojson.loads(raw)
            fields = gojson.decode_struct(
                body,
                TOXIC_FIELDS,
                {"name": "", "type": "", "stream": "downstream", "toxicity": 1.0},
                "toxics.ToxicWrapper",
            )
            attrs_in = _field(body, "attributes")
            if attrs_in is not None and not isinstance(attrs_in, dict):
                raise gojson.GoJSONError(
                    f"json: cannot unmarshal {gojson.json_kind(attrs_in)} into Go struct field "
                    "ToxicWrapper.attributes of type toxics.Toxic"
                )
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        direction = fields["stream"].lower()
        if direction not in ("upstream", "downstream"):
            raise APIError("stream was invalid, can be either upstream or downstream", 400)
        name = fields["name"] or f"{fields['type']}_{fields['stream']}"
        if fields["type"] not in TOXIC_TYPES:
            raise APIError("invalid toxic type", 400)
        if self.find(name) is not None:
            raise APIError("toxic already exists", 409)
        struct_name, attr_types = TOXIC_TYPES[fields["type"]]
        try:
            attributes = gojson.decode_struct(
                attrs_in, attr_types, default_attributes(fields["type"]), struct_name
            )
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        wrapper = ToxicWrapper(
            name, fields["type"], fields["stream"], direction, fields["toxicity"], attributes
        )
        _check_http(wrapper)
        self.chains[direction].append(wrapper)
        if wrapper.is_http:
            if self.on_http is not None:
                self.on_http()
        else:
            await asyncio.gather(*(link.add_toxic(wrapper) for link in self._links(direction)))
        return wrapper

    async def update_json(self, name: str, raw: bytes) -> ToxicWrapper:
        wrapper = self.find(name)
        if wrapper is None:
            raise APIError(*TOXIC_NOT_FOUND)
        struct_name, attr_types = TOXIC_TYPES[wrapper.type]
        try:
            body = gojson.loads(raw)
            fields = gojson.decode_struct(
                body, {"toxicity": "float32"}, {"toxicity": wrapper.toxicity}, "struct"
            )
            attrs_in = _field(body, "attributes")
            if attrs_in is not None and not isinstance(attrs_in, dict):
                raise gojson.GoJSONError(
                    f"json: cannot unmarshal {gojson.json_kind(attrs_in)} into Go struct field "
                    f".attributes of type toxics.{struct_name}"
                )
            # omitted attributes keep their values
            attributes = gojson.decode_struct(
                attrs_in, attr_types, dict(wrapper.attributes), struct_name
            )
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        _check_http(wrapper, attributes)
        wrapper.attributes = attributes
        wrapper.toxicity = fields["toxicity"]
        wrapper.generation += 1
        if not wrapper.is_http:
            await asyncio.gather(
                *(link.update_toxic(wrapper) for link in self._links(wrapper.direction))
            )
        return wrapper

    async def remove(self, name: str) -> None:
        wrapper = self.find(name)
        if wrapper is None:
            raise APIError(*TOXIC_NOT_FOUND)
        self.chains[wrapper.direction].remove(wrapper)
        if wrapper.is_http:
            return  # codecs read the list on every request
        closes = wrapper.type == "timeout"  # removing a timeout closes the connections it held
        await asyncio.gather(
            *(link.remove_toxic(name, closes) for link in self._links(wrapper.direction))
        )

    async def reset(self) -> None:
        for direction in ("upstream", "downstream"):
            while self.chains[direction]:
                await self.remove(self.chains[direction][0].name)


def _check_http(wrapper: ToxicWrapper, attributes: dict[str, Any] | None = None) -> None:
    """An HTTP toxic that could not act as asked is a 400, in Toxiproxy's error shape."""
    if wrapper.is_http:
        try:
            httptoxics.validate(wrapper.type, attributes or wrapper.attributes)
        except ValueError as exc:
            raise APIError(str(exc), 400) from None


def _field(body: Any, name: str) -> Any:
    """A field of a decoded object by Go's matching rules (exact, else case-insensitive)."""
    if not isinstance(body, dict):
        return None
    if name in body:
        return body[name]
    found = None
    for key, value in body.items():
        if key.lower() == name:
            found = value
    return found


class Proxy:
    """A named listener that forwards each accepted connection to `upstream` through toxics."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection()
        self.toxics.on_http = self._join_http
        self.connections: set[Connection] = set()
        self.lock = asyncio.Lock()  # serialises start/stop/update and toxic changes
        self._server: asyncio.Server | None = None
        self.generation = 0  # bumped by stop(): connections accepted before it are refused

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [w.to_json() for w in self.toxics.all()],
        }

    def _join_http(self) -> None:
        for conn in self.connections:
            conn.join_http()

    async def start(self) -> None:
        """Bind the listen address; on success `listen` becomes the bound address."""
        if self.enabled:
            return
        family, sockaddr, shown = await resolve_listen(self.listen)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and sockaddr[0] == "::":
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(sockaddr)
            sock.listen(512)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            if exc.errno == errno.EADDRINUSE:
                reason = "address already in use"
            raise APIError(f"listen tcp {shown}: bind: {reason}", 500) from None
        bound = sock.getsockname()
        loop = asyncio.get_running_loop()
        generation = self.generation
        self._server = await loop.create_server(
            lambda: Connection(self, generation).client, sock=sock
        )
        self.listen = join_hostport(bound[0], bound[1])
        self.enabled = True

    async def stop(self) -> None:
        """Close the listener and every open connection; toxics are kept."""
        if not self.enabled:
            return
        self.enabled = False
        self.generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)  # let the transports close their sockets

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        if listen != self.listen:
            _, _, listen = await resolve_listen(listen)
        if listen != self.listen or upstream != self.upstream:
            await self.stop()
            self.listen, self.upstream = listen, upstream
            if enabled:
                await self.start()
                return
        if enabled and not self.enabled:
            await self.start()
        elif not enabled and self.enabled:
            await self.stop()


class ProxyCollection:
    """Every proxy of a server by name."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise APIError(*PROXY_NOT_FOUND)
        return proxy

    async def create_json(self, raw: bytes) -> Proxy:
        try:
            fields = gojson.decode_struct(
                gojson.loads(raw),
                PROXY_FIELDS,
                {"name": "", "listen": "", "upstream": "", "enabled": True},
                "toxiproxy.Proxy",
            )
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        for required in ("name", "upstream"):
            if not fields[required]:
                raise APIError(f"missing required field: {required}", 400)
        async with self.lock:
            if fields["name"] in self.proxies:
                raise APIError("proxy already exists", 409)
            proxy = Proxy(fields["name"], fields["listen"], fields["upstream"])
            if fields["enabled"]:
                await proxy.start()
            self.proxies[proxy.name] = proxy
        return proxy

    async def update_json(self, name: str, raw: bytes) -> Proxy:
        proxy = self.get(name)
        try:
            fields = gojson.decode_struct(
                gojson.loads(raw),
                PROXY_FIELDS,
                {"listen": proxy.listen, "upstream": proxy.upstream, "enabled": proxy.enabled},
                "toxiproxy.Proxy",
            )
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        async with proxy.lock:
            await proxy.update(fields["listen"], fields["upstream"], fields["enabled"])
        return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            proxy = self.get(name)
            async with proxy.lock:
                await proxy.stop()
            del self.proxies[name]

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic; nothing is deleted."""
        for proxy in list(self.proxies.values()):
            async with proxy.lock:
                await proxy.start()
                await proxy.toxics.reset()

    async def populate(self, entries: Any) -> tuple[list[Proxy], APIError | None]:
        """Create or replace the listed proxies in order; stop at the first failure."""
        if not isinstance(entries, list) and entries is not None:
            raise bad_body(
                gojson.GoJSONError(
                    f"json: cannot unmarshal {gojson.json_kind(entries)} into Go value of type "
                    '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'
                )
            )
        wanted: list[dict[str, Any]] = []
        try:
            for entry in entries or []:
                wanted.append(
                    gojson.decode_struct(
                        entry,
                        PROXY_FIELDS,
                        {"name": "", "listen": "", "upstream": "", "enabled": True},
                        "toxiproxy.Proxy",
                    )
                )
        except gojson.GoJSONError as exc:
            raise bad_body(exc) from None
        for i, fields in enumerate(wanted, start=1):
            for required in ("name", "upstream"):
                if not fields[required]:
                    raise APIError(f"missing required field: {required} at proxy {i}", 400)
        done: list[Proxy] = []
        async with self.lock:
            for fields in wanted:
                try:
                    done.append(await self._add_or_replace(fields))
                except APIError as exc:
                    return done, exc
        return done, None

    async def _add_or_replace(self, fields: dict[str, Any]) -> Proxy:
        existing = self.proxies.get(fields["name"])
        if existing is not None:
            _, _, listen = await resolve_listen(fields["listen"])
            if listen == existing.listen and fields["upstream"] == existing.upstream:
                return existing  # kept as it is: toxics and enabled state included
            async with existing.lock:
                await existing.stop()
            del self.proxies[existing.name]
        proxy = Proxy(fields["name"], fields["listen"], fields["upstream"])
        if fields["enabled"]:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def close(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.stop()


def populate_result(proxies: list[Proxy], error: APIError | None) -> tuple[int, dict[str, Any]]:
    """Status and body of POST /populate (error fields first, proxies null when none)."""
    body: dict[str, Any] = {}
    if error is not None:
        body = {"error": error.message, "status": error.status}
    body["proxies"] = [p.to_json() for p in proxies] or None
    return (error.status if error is not None else 201), body
