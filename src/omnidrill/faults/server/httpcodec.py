"""HTTP toxics on one connection: its requests are read where they leave for the upstream, its
answers where they come back, and exchanges are kept in order (keep-alive, pipelining).

The codec sits at the upstream's end of both links, as the upstream server would: TCP toxics on
the links still apply to requests before the codec sees them and to every answer after it,
its own answers included. A connection that stops looking like HTTP/1.1 (or switches protocol)
is passed through untouched from then on. Joining a connection that is already open, the codec
starts at the next request it recognises; what was in flight passes through untouched.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from omnidrill.faults.server import httptoxics, httpwire
from omnidrill.faults.server.link import Chunk, Item

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from omnidrill.faults.server.link import Link, Sink
    from omnidrill.faults.server.toxics import ToxicWrapper

MAX_BODY = 8 * 1024 * 1024  # a message longer than this passes through untouched


class Exchange:
    """One request on its way, and what its answer must become."""

    __slots__ = ("answer", "close", "decision", "kind", "method", "opaque_after")

    def __init__(
        self,
        kind: str,
        method: bytes,
        answer: bytes = b"",
        close: bool = False,
        decision: httptoxics.Decision | None = None,
        opaque_after: bool = False,
    ) -> None:
        self.kind = kind  # pass | local (answered here) | replace (the upstream's answer changes)
        self.method = method
        self.answer = answer
        self.close = close
        self.decision = decision
        self.opaque_after = opaque_after  # Upgrade / CONNECT: raw bytes after this exchange


class HttpCodec:
    """The HTTP toxics of a proxy, applied to the exchanges of one connection."""

    def __init__(self, toxics: Callable[[], list[ToxicWrapper]], rng: Any, joined: bool) -> None:
        self._toxics = toxics
        self._rng = rng
        self._rolls: dict[str, tuple[ToxicWrapper, int, bool]] = {}
        self.queue: deque[Exchange] = deque()
        self.opaque = False
        self.requests: RequestSide | None = None
        self.answers: AnswerSide | None = None
        self.down: Link | None = None
        self._joined = joined  # joined an open connection: find the next request first

    def attach(self, up: Link, down: Link) -> None:
        """Read the requests of `up` before its sink, the answers of `down` before its chain."""
        self.requests = RequestSide(self, up.sink, synced=not self._joined)
        self.answers = AnswerSide(self, down, synced=not self._joined)
        self.down = down
        up.set_sink(self.requests)
        down.filter = self.answers

    def active(self) -> list[tuple[str, dict[str, Any]]]:
        """The HTTP toxics acting on this connection: toxicity rolled when each starts on it."""
        out = []
        for w in self._toxics():
            seen = self._rolls.get(w.name)
            if seen is None or seen[0] is not w or seen[1] != w.generation:
                seen = (w, w.generation, self._rng.random() < w.toxicity)
                self._rolls[w.name] = seen
            if seen[2]:
                out.append((w.type, w.attributes))
        return out

    def give_up(self) -> None:
        """Not HTTP we can follow: everything passes through untouched from here on."""
        self.opaque = True
        self.queue.clear()
        if self.requests is not None:
            self.requests.flush_raw()
        if self.answers is not None:
            self.answers.flush_raw()


class RequestSide:
    """The sink of the upstream link: reads requests, forwards them or has them answered here."""

    def __init__(self, codec: HttpCodec, sink: Sink, synced: bool) -> None:
        self.codec = codec
        self.sink = sink
        self.synced = synced
        self.buf = bytearray()
        self._head: httpwire.Head | None = None
        self._body: httpwire.Body | None = None
        self._raw = bytearray()  # the current request as it came, while it is held
        self._streaming = False  # the current request passes on as it arrives
        self._opaque = False
        self._waiting = False  # for room among the answers (see _step)
        self._eof = False

    # -- the Sink protocol
    def write_now(self, data: memoryview) -> bool:
        self._feed(bytes(data))
        return False

    def put_nowait(self, item: Item) -> None:
        if item is None:
            # every complete request is still judged (a matched one is never forwarded); only
            # an unfinished one goes on as it came
            self._eof = True
            self._feed(b"")
            self.flush_raw()
            self.sink.put_nowait(None)
        else:
            self._feed(item.data)

    def full(self) -> bool:
        # answers made here go down the other link: a client that sends and never reads is
        # paused like one whose requests the upstream does not take
        return self.sink.full() or self._answers_full()

    def _answers_full(self) -> bool:
        down = self.codec.down
        return down is not None and down.head.full()

    def wait_space(self) -> Awaitable[None]:
        if self.sink.full() or not self._answers_full():
            return self.sink.wait_space()
        assert self.codec.down is not None
        return self.codec.down.head.wait_space()

    def on_space(self, callback: Callable[[], None]) -> None:
        if self.sink.full() or not self._answers_full():
            self.sink.on_space(callback)
        else:
            assert self.codec.down is not None
            self.codec.down.head.on_space(callback)

    def _resume(self) -> None:
        self._waiting = False
        self._feed(b"")

    # -- reading requests
    def _out(self, data: bytes | bytearray) -> None:
        if data:
            self.sink.put_nowait(Chunk(bytes(data), 0.0))

    def flush_raw(self) -> None:
        """Send on whatever is held, as it came (the end of the stream, or giving up)."""
        if self._head is not None and not self._streaming:
            self._out(self._head.raw + self._raw)
        self._head, self._body, self._raw = None, None, bytearray()
        self._out(self.buf)
        self.buf.clear()

    def _feed(self, data: bytes) -> None:
        self.buf += data
        try:
            while self._step():
                pass
        except httpwire.WireError:
            self.codec.give_up()

    def _step(self) -> bool:
        """Move one piece of the current request along; False when more bytes are needed."""
        if self.codec.opaque or (self._opaque and self._body is None):
            self._out(self.buf)
            self.buf.clear()
            return False
        if self._body is not None:
            return self._body_step()
        if self._answers_full() and not self._eof:
            # the client is not reading its answers: the next request waits (and, through
            # full(), so does the link's reading from the client)
            if not self._waiting:
                self._waiting = True
                assert self.codec.down is not None
                self.codec.down.head.on_space(self._resume)
            return False
        if not self.synced:
            if not httpwire.looks_like_request(self.buf):
                self._out(self.buf)  # the rest of a request sent before the codec joined
                self.buf.clear()
                return False
            self.synced = True
        head = httpwire.parse_head(self.buf, request=True)
        if head is None:
            return False
        upgrade = head.method == b"CONNECT" or head.get("upgrade") is not None
        if upgrade or "100-continue" in head.tokens("expect"):
            # the client waits for the upstream before it sends a body: never held here
            self._queue(Exchange("pass", head.method, opaque_after=upgrade))
            self._out(head.raw)
            self._head, self._body, self._streaming = head, httpwire.request_body(head, False), True
            self._opaque = upgrade  # after it, another protocol: the answer side follows suit
            return True
        self._head, self._body, self._streaming = head, httpwire.request_body(head, True), False
        return True

    def _body_step(self) -> bool:
        body = self._body
        assert body is not None and self._head is not None
        raw = body.consume(self.buf)
        if self._streaming:
            self._out(raw)
        else:
            self._raw += raw
            if len(self._raw) > MAX_BODY:  # too long to read: it passes through untouched
                self._queue(Exchange("pass", self._head.method))
                self._out(self._head.raw + self._raw)
                self._raw = bytearray()
                body.keep = False
                self._streaming = True
        if not body.done:
            return False
        if not self._streaming:
            self._decide(self._head, bytes(body.data), self._head.raw + self._raw)
        self._head, self._body, self._raw = None, None, bytearray()
        return True

    def _decide(self, head: httpwire.Head, body: bytes, raw: bytes) -> None:
        decision = httptoxics.decide(self.codec.active(), body)
        if decision is None:
            self._queue(Exchange("pass", head.method))
            self._out(raw)
            return
        head_only = head.method == b"HEAD"
        if not decision.forwards:
            status, headers, content = httptoxics.local_answer(decision)
            close = not head.keep_alive()
            if close:
                headers.append(("Connection", "close"))
            answer = httpwire.render(status, headers, content, head_only)
            self._queue(Exchange("local", head.method, answer, close=close))
            return
        self._queue(Exchange("replace", head.method, decision=decision))
        reduced = decision.forward_body()
        self._out(raw if reduced is None else _with_body(head, reduced))

    def _queue(self, exchange: Exchange) -> None:
        self.codec.queue.append(exchange)
        if self.codec.answers is not None:
            self.codec.answers.pump()


def _with_body(head: httpwire.Head, body: bytes) -> bytes:
    """The request with a new body: framing fields replaced by a Content-Length."""
    drop = {"content-length", "transfer-encoding"}
    lines = [head.first] + [
        f"{k}: {v}".encode("latin-1") for k, v in head.headers if k.lower() not in drop
    ]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class AnswerSide:
    """The filter at the start of the downstream link: answers leave in the order asked."""

    def __init__(self, codec: HttpCodec, link: Link, synced: bool) -> None:
        self.codec = codec
        self.link = link
        self.synced = synced
        self.buf = bytearray()
        self._cur: Exchange | None = None
        self._head: httpwire.Head | None = None
        self._body: httpwire.Body | None = None
        self._raw = bytearray()
        self._eof = False
        self._ended = False

    def feed(self, data: bytes) -> None:
        if self._ended:
            return
        self.buf += data
        self.pump()

    def feed_eof(self) -> None:
        self._eof = True
        self.pump()
        if not self._ended:
            self.flush_raw()  # an answer the upstream broke off: what came of it, as it came
            self._end()

    def flush_raw(self) -> None:
        if self._head is not None and self._cur is not None and self._cur.kind != "pass":
            self._push(self._head.raw + self._raw)
        self._cur, self._head, self._body, self._raw = None, None, None, bytearray()
        self._push(self.buf)
        self.buf.clear()

    def _push(self, data: bytes | bytearray) -> None:
        if data and not self._ended:
            self.link.push(bytes(data))

    def _end(self) -> None:
        self._ended = True
        self.link.end()

    def pump(self) -> None:
        """Send on every answer that is ready, in order."""
        try:
            while not self._ended and self._step():
                pass
        except httpwire.WireError:
            self.codec.give_up()

    def _step(self) -> bool:
        if self.codec.opaque:
            self._push(self.buf)
            self.buf.clear()
            return False
        queue = self.codec.queue
        if self._cur is None:
            if queue and queue[0].kind == "local":
                ex = queue.popleft()
                self._push(ex.answer)
                if ex.close:
                    self._end()
                return True
            if queue:
                self._cur = queue.popleft()
                return True
            self._push(self.buf)  # unasked-for bytes (e.g. a 408 before a close): as they are
            self.buf.clear()
            return False
        if self._body is None:
            return self._head_step(self._cur)
        return self._body_step(self._cur, self._body)

    def _head_step(self, cur: Exchange) -> bool:
        if not self.buf:
            if self._eof:
                self._cur = None  # the upstream closed without answering
            return False
        if not self.synced and not self.buf.startswith(b"HTTP/"[: len(self.buf)]):
            self._push(self.buf)  # the rest of an answer that began before the codec joined
            self.buf.clear()
            return False
        head = httpwire.parse_head(self.buf, request=False)
        if head is None:
            return False
        self.synced = True
        status = httpwire.status_of(head)
        if status == 101 or cur.opaque_after:
            self._push(head.raw)
            self.codec.opaque = True
            return True
        if status < 200:
            self._push(head.raw)  # an interim answer (100 Continue): the final one follows
            return True
        replace = cur.kind == "replace"
        self._head = head
        self._body = httpwire.answer_body(head, cur.method, keep=replace)
        if not replace:
            self._push(head.raw)
        return True

    def _body_step(self, cur: Exchange, body: httpwire.Body) -> bool:
        raw = body.consume(self.buf)
        if cur.kind == "pass":
            self._push(raw)
        else:
            self._raw += raw
            if len(self._raw) > MAX_BODY:  # too long to rewrite: it passes through untouched
                assert self._head is not None
                self._push(self._head.raw + self._raw)
                self._raw = bytearray()
                body.keep = False
                cur.kind = "pass"
        if body.kind == "close" and self._eof:
            body.done = True
        if not body.done:
            return False
        if cur.kind == "replace":
            self._push(self._replaced(cur, body))
        self._cur, self._head, self._body, self._raw = None, None, None, bytearray()
        return True

    def _replaced(self, cur: Exchange, body: httpwire.Body) -> bytes:
        head = self._head
        assert head is not None and cur.decision is not None
        status, headers, content = httptoxics.replaced_answer(
            cur.decision, httpwire.status_of(head), head.headers, bytes(body.data)
        )
        if not head.keep_alive() or body.kind == "close":
            headers.append(("Connection", "close"))
        return httpwire.render(status, headers, content, cur.method == b"HEAD")
