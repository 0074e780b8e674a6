"""One direction of a proxied connection: a source socket, a chain of toxic stages, a sink socket.

Data moves as timestamped chunks, one per read. With no toxics the source writes straight into
the sink (the fast path); with toxics each stage is a task between two channels, and stages are
added, updated and removed on live links without losing or reordering buffered data.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from omnidrill.faults.server.splice import SpliceRelay
    from omnidrill.faults.server.toxics import ToxicWrapper

# Soft limits of a channel between two stages: past either, the writer waits (backpressure).
CHANNEL_MAX_CHUNKS = 1024
CHANNEL_MAX_BYTES = 8 * 1024 * 1024

_rng = random.Random()


class Chunk:
    """Bytes read from a socket and the loop time they were read at."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes, ts: float) -> None:
        self.data = data
        self.ts = ts


class _Timeout:
    """Returned by Channel.get when its timeout passes first."""


TIMEOUT = _Timeout()
Item = Chunk | None  # None marks the end of the stream


class Outlet(Protocol):
    """What a stage writes into: a Channel, or the sink socket itself."""

    def put_nowait(self, item: Item) -> None: ...
    def full(self) -> bool: ...
    def wait_space(self) -> Awaitable[None]: ...
    def on_space(self, callback: Callable[[], None]) -> None: ...


class Sink(Outlet, Protocol):
    """The socket a link writes into."""

    def write_now(self, data: memoryview) -> bool: ...


class Channel:
    """FIFO of chunks between two stages, with soft limits that writers wait on."""

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._getter: asyncio.Future[None] | None = None
        self._space_waiters: list[asyncio.Future[None]] = []
        self._space_callbacks: list[Callable[[], None]] = []
        self.discarding = False  # the reader is gone: accept and drop everything

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Item) -> None:
        if self.discarding:
            return
        self._items.append(item)
        if item is not None:
            self._bytes += len(item.data)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def unget(self, item: Item) -> None:
        """Put an item back at the front (a stage interrupted while holding it)."""
        self._items.appendleft(item)
        if item is not None:
            self._bytes += len(item.data)

    def full(self) -> bool:
        return not self.discarding and (
            len(self._items) >= CHANNEL_MAX_CHUNKS or self._bytes >= CHANNEL_MAX_BYTES
        )

    def wait_space(self) -> Awaitable[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._space_waiters.append(fut)
        return fut

    def on_space(self, callback: Callable[[], None]) -> None:
        self._space_callbacks.append(callback)

    def _notify_space(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        callbacks, self._space_callbacks = self._space_callbacks, []
        for callback in callbacks:
            callback()

    def _pop(self) -> Item:
        item = self._items.popleft()
        if item is not None:
            self._bytes -= len(item.data)
        if (self._space_waiters or self._space_callbacks) and not self.full():
            self._notify_space()
        return item

    async def get(self, timeout: float | None = None) -> Item | _Timeout:
        """Next item; with a timeout, TIMEOUT if nothing arrives within it."""
        if self._items:
            return self._pop()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._items:
            fut = loop.create_future()
            self._getter = fut
            handle = None
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return TIMEOUT
                handle = loop.call_later(remaining, _resolve, fut)
            try:
                await fut
            finally:
                self._getter = None
                if handle is not None:
                    handle.cancel()
        return self._pop()

    def drain(self) -> list[Item]:
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        self._notify_space()
        return items

    def discard(self) -> None:
        """The reader stopped for good: drop what is queued and whatever comes later."""
        self.drain()
        self.discarding = True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Stage:
    """One toxic on one link: a task reading `inp` and writing `out`, restartable in place."""

    def __init__(self, link: Link, wrapper: ToxicWrapper, inp: Channel, out: Outlet) -> None:
        self.link = link
        self.wrapper = wrapper
        self.inp = inp
        self.out = out
        self.state: dict[str, Any] = {}  # survives restarts (limit_data's byte count)
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the toxic, or a noop when the toxicity roll fails (rolled on every start)."""
        from omnidrill.faults.server.toxics import PIPES, pipe_noop

        w = self.wrapper
        pipe = PIPES[w.type] if _rng.random() < w.toxicity else pipe_noop
        self.task = asyncio.get_running_loop().create_task(self._run(pipe, dict(w.attributes)))

    async def _run(self, pipe: Callable[..., Awaitable[None]], attrs: dict[str, Any]) -> None:
        # cancelled = interrupted: the pipe already handed back any chunk it held
        with contextlib.suppress(asyncio.CancelledError):
            await pipe(self, attrs)

    async def interrupt(self) -> bool:
        """Stop the toxic so it can be rewired; False if this stage already ended its stream."""
        if self.closed:
            return False
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        return not self.closed

    def cancel(self) -> None:
        """Stop without flushing (the connection is gone)."""
        self.closed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def recv(self, timeout: float | None = None) -> Item | _Timeout:
        return await self.inp.get(timeout)

    async def send(self, chunk: Chunk) -> None:
        out = self.out
        if out.full():
            try:
                await out.wait_space()
            except asyncio.CancelledError:
                out.put_nowait(chunk)  # never drop data on an interrupt
                raise
        out.put_nowait(chunk)

    def hand_back(self, chunk: Chunk) -> None:
        """Forward a held chunk at once (used when interrupted mid-delay)."""
        self.out.put_nowait(chunk)

    def close(self) -> None:
        """End the stream here: the sink closes once everything before the end is written."""
        if self.closed:
            return
        self.closed = True
        self.inp.discard()
        self.out.put_nowait(None)


class Source(Protocol):
    """The socket side a link reads from."""

    def pause_source(self) -> None: ...
    def resume_source(self) -> None: ...
    def start_reading(self) -> None: ...


class Filter(Protocol):
    """Reads a link's bytes before its chain (the HTTP toxics' answer side)."""

    def feed(self, data: bytes) -> None: ...
    def feed_eof(self) -> None: ...


class Link:
    """One direction (upstream: client to server; downstream: server to client) of a connection."""

    def __init__(
        self, direction: str, source: Source, sink: Sink, chain: list[ToxicWrapper]
    ) -> None:
        self.direction = direction
        self.source = source
        self.sink = sink
        self.stages: list[Stage] = []
        self.relay: SpliceRelay | None = None  # set while bytes move by splice (no toxics)
        self.filter: Filter | None = None  # HTTP toxics: reads what the source sends first
        self.eof_fed = False
        self._loop = asyncio.get_running_loop()
        out: Outlet = sink
        for wrapper in reversed(chain):
            inp = Channel()
            self.stages.insert(0, Stage(self, wrapper, inp, out))
            out = inp
        self.head: Outlet = out

    def start(self) -> None:
        """Start the stages, and reading the source (by splice when there are no toxics)."""
        for stage in self.stages:
            stage.start()
        if self.relay is not None:
            self.relay.start()
        else:
            self.source.start_reading()

    def feed(self, data: memoryview) -> bool:
        """Data read from the source socket; True if the sink kept a reference to it."""
        head = self.head
        kept = False
        if self.filter is not None:
            self.filter.feed(bytes(data))  # it pushes on what goes on
        elif head is self.sink:
            kept = self.sink.write_now(data)  # no toxics: straight through
        else:
            head.put_nowait(Chunk(bytes(data), self._loop.time()))
        if head.full():
            self.source.pause_source()
            head.on_space(self._space_available)
        return kept

    def push(self, data: bytes) -> None:
        """Bytes from the filter, into the chain (or straight to the sink)."""
        if self.head is self.sink:
            self.sink.write_now(memoryview(data))
        else:
            self.head.put_nowait(Chunk(data, self._loop.time()))

    def end(self) -> None:
        """The end of the stream, from the filter."""
        self.head.put_nowait(None)

    def set_sink(self, sink: Sink) -> None:
        """Put `sink` where the link writes (in front of the old sink)."""
        if self.stages:
            self.stages[-1].out = sink
        else:
            self.head = sink
        self.sink = sink

    def _space_available(self) -> None:
        if not self.head.full():
            self.source.resume_source()
        else:
            self.head.on_space(self._space_available)

    def feed_eof(self) -> None:
        if not self.eof_fed:
            self.eof_fed = True
            if self.filter is not None:
                self.filter.feed_eof()
            else:
                self.end()

    def detach_relay(self) -> SpliceRelay | None:
        """End the splice relay for good (toxics arrive); call `resume` once they are in place."""
        relay, self.relay = self.relay, None
        if relay is not None:
            left = relay.detach()
            if left:  # read before the change: written out first, as in-flight data
                self.sink.put_nowait(Chunk(left, self._loop.time()))
        return relay

    def resume(self, relay: SpliceRelay | None) -> None:
        """Go on after `detach_relay`: the source is read by the transport from now on."""
        if relay is None:
            return
        if relay.eof:
            self.feed_eof()
        else:
            self.source.start_reading()

    def cancel(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        for stage in self.stages:
            stage.cancel()

    def _stage_of(self, name: str) -> int | None:
        for i, stage in enumerate(self.stages):
            if stage.wrapper.name == name:
                return i
        return None

    async def add_toxic(self, wrapper: ToxicWrapper) -> None:
        """Append a toxic to the end of the chain of a live link."""
        inp = Channel()
        if not self.stages:
            relay = self.detach_relay()
            stage = Stage(self, wrapper, inp, self.sink)
            self.stages.append(stage)
            self.head = inp
            stage.start()
            self.resume(relay)
            return
        last = self.stages[-1]
        if not await last.interrupt():
            return  # the stream already ended; nothing more will flow through this link
        stage = Stage(self, wrapper, inp, last.out)
        last.out = inp
        self.stages.append(stage)
        stage.start()
        last.start()

    async def update_toxic(self, wrapper: ToxicWrapper) -> None:
        i = self._stage_of(wrapper.name)
        if i is None:
            return
        stage = self.stages[i]
        if await stage.interrupt():
            stage.wrapper = wrapper
            stage.start()

    async def remove_toxic(self, name: str, closes_connection: bool) -> None:
        """Remove a toxic, passing what it buffered on to the next stage in order."""
        i = self._stage_of(name)
        if i is None:
            return
        stage = self.stages[i]
        if not await stage.interrupt():
            del self.stages[i]  # it already ended the stream; only forget it
            return
        if closes_connection:
            stage.close()
            return
        prev = self.stages[i - 1] if i > 0 else None
        if prev is not None:
            await prev.interrupt()
        for item in stage.inp.drain():
            stage.out.put_nowait(item)
        if prev is not None:
            prev.out = stage.out
        else:
            self.head = stage.out
        del self.stages[i]
        if prev is not None and not prev.closed:
            prev.start()
        # the source may be paused on the old head; let it re-check against the new one
        self._space_available()
