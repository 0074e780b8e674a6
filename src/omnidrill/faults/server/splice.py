"""Zero-copy relay for links without toxics: socket -> pipe -> socket with Linux splice(2).

Relaying through Python costs two copies per byte (kernel to user and back); on a small machine
that halves bulk throughput. While a link has no toxics, its bytes move with splice instead and
never enter the process. The first toxic added to the link ends the relay for good: what is in
the pipe is written out, and the link continues on the ordinary (transport) path.

It watches the sockets with the selector loop's internal `_add_reader`/`_add_writer`, because
the public ones refuse sockets owned by transports; where those are missing (another loop
implementation, not Linux) relays are simply not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omnidrill.faults.server.link import Link
    from omnidrill.faults.server.proxy import Side

PIPE_SIZE = 1024 * 1024
MAX_ROUNDS = 16  # pipe-fulls moved per readiness event at most
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_DISABLED = os.environ.get("OMNIDRILL_FAULTPROXY_SPLICE", "1") == "0"


def available(loop: asyncio.AbstractEventLoop) -> bool:
    return (
        not _DISABLED
        and hasattr(os, "splice")
        and isinstance(loop, asyncio.SelectorEventLoop)
        and hasattr(loop, "_add_reader")
    )


class SpliceRelay:
    """Moves one link's bytes from its source socket to its sink socket inside the kernel."""

    def __init__(self, link: Link, source: Side, sink: Side) -> None:
        self.link = link
        self.source = source
        self.sink = sink
        self._loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        self._src = _fd(source)
        self._dst = _fd(sink)
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # a bigger pipe means fewer calls
            fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._capacity = fcntl.fcntl(self._w, fcntl.F_GETPIPE_SZ)
        self.pending = 0  # bytes in the pipe, read but not yet written
        self.eof = False  # the source ended (or failed)
        self.active = False
        self._reading = False
        self._writing = False

    def start(self) -> None:
        self.active = True
        self._want_read(True)

    # -- readiness callbacks
    def _on_readable(self) -> None:
        # move as much as is there per wake-up (bounded, so other connections get their turn):
        # on a busy machine every extra trip through the event loop costs a scheduling delay
        for _ in range(MAX_ROUNDS):
            try:
                n = os.splice(self._src, self._w, self._capacity - self.pending, flags=_FLAGS)
            except BlockingIOError:
                return
            except OSError:
                n = 0  # a reset or other read error ends the stream, as a read error does in Go
            if n == 0:
                self.eof = True
                self._want_read(False)
            self.pending += n
            self._flush()
            if self.pending or not self._reading:
                return

    def _flush(self) -> None:
        while self.pending:
            try:
                n = os.splice(self._r, self._dst, self.pending, flags=_FLAGS)
            except BlockingIOError:
                break
            except OSError:
                self._sink_failed()
                return
            self.pending -= n
        if self.pending:  # the sink is full: wait until it drains, and stop reading meanwhile
            self._want_read(False)
            self._want_write(True)
            return
        self._want_write(False)
        if self.eof:
            self.stop()
            self.link.feed_eof()  # the sink closes, as at the end of any link
        else:
            self._want_read(True)

    def _sink_failed(self) -> None:
        self.stop()
        self.sink.put_nowait(None)

    # -- registration
    def _want_read(self, on: bool) -> None:
        if on and not self._reading and not self.eof and self.active:
            self._loop._add_reader(self._src, self._on_readable)  # type: ignore[attr-defined]
            self._reading = True
        elif not on and self._reading:
            self._loop._remove_reader(self._src)  # type: ignore[attr-defined]
            self._reading = False

    def _want_write(self, on: bool) -> None:
        if on and not self._writing and self.active:
            self._loop._add_writer(self._dst, self._flush)  # type: ignore[attr-defined]
            self._writing = True
        elif not on and self._writing:
            self._loop._remove_writer(self._dst)  # type: ignore[attr-defined]
            self._writing = False

    # -- ending
    def source_lost(self) -> None:
        """The source socket is about to close: stop reading it, but deliver what was read."""
        self._want_read(False)
        self.eof = True
        if self.active and not self.pending:
            self._flush()

    def stop(self) -> None:
        """Unregister and close the pipe (data still in it is dropped)."""
        if not self.active and self._r < 0:
            return
        self._want_read(False)
        self._want_write(False)
        self.active = False
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)
        self._r = self._w = -1

    def detach(self) -> bytes:
        """End the relay for a link that gets toxics: returns what was read but not yet written."""
        self._want_read(False)
        self._want_write(False)
        left = bytearray()
        while len(left) < self.pending:
            try:
                data = os.read(self._r, self.pending - len(left))
            except BlockingIOError:
                break
            if not data:
                break
            left += data
        self.pending = 0
        self.stop()
        return bytes(left)


def _fd(side: Side) -> int:
    assert side.transport is not None
    return int(side.transport.get_extra_info("socket").fileno())
