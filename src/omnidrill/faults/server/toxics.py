"""Toxic types: their attributes (as Go structs declare them) and how each one treats a stream.

Each pipe runs as a Stage task. When interrupted (cancelled) it hands back any chunk it holds,
so adding, updating or removing toxics on live connections never drops data.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from omnidrill.faults.server import httptoxics
from omnidrill.faults.server.link import TIMEOUT, Chunk, Stage

_rng = random.Random()

# type -> (Go struct name, {attribute: Go type}) in the struct's field order (= JSON order)
TOXIC_TYPES: dict[str, tuple[str, dict[str, str]]] = {
    "latency": ("LatencyToxic", {"latency": "int64", "jitter": "int64"}),
    "bandwidth": ("BandwidthToxic", {"rate": "int64"}),
    "slow_close": ("SlowCloseToxic", {"delay": "int64"}),
    "timeout": ("TimeoutToxic", {"timeout": "int64"}),
    "reset_peer": ("ResetToxic", {"timeout": "int64"}),
    "slicer": ("SlicerToxic", {"average_size": "int", "size_variation": "int", "delay": "int"}),
    "limit_data": ("LimitDataToxic", {"bytes": "int64"}),
    "noop": ("NoopToxic", {}),
    # omnidrill's extension (httptoxics): a real Toxiproxy answers 400 "invalid toxic type"
    **{t: (httptoxics.STRUCTS[t], httptoxics.ATTRIBUTES) for t in httptoxics.HTTP_TYPES},
}


@dataclass
class ToxicWrapper:
    """A toxic as the API shows it, plus the direction its stream name parsed to."""

    name: str
    type: str
    stream: str
    direction: str
    toxicity: float
    attributes: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # bumped by every update: connections roll its toxicity again

    @property
    def is_http(self) -> bool:
        return self.type in httptoxics.HTTP_TYPES

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": _go_float(self.toxicity),
        }


def _go_float(value: float) -> float | int:
    """Go prints a whole float32 without a fraction (1, not 1.0)."""
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


def default_attributes(toxic_type: str) -> dict[str, Any]:
    """Omitted attributes are Go's zero values (0; empty for the HTTP toxics' strings and maps)."""
    if toxic_type in httptoxics.HTTP_TYPES:
        return httptoxics.defaults()
    return dict.fromkeys(TOXIC_TYPES[toxic_type][1], 0)


async def _next_chunk(st: Stage) -> Chunk | None:
    """The next chunk; at the end of the stream the stage is closed and None returned."""
    c = await st.recv()  # no timeout given, so never TIMEOUT
    if c is None:
        st.close()
        return None
    assert isinstance(c, Chunk)
    return c


async def _sleep_holding(st: Stage, seconds: float, held: Chunk) -> None:
    """Sleep; when interrupted, forward `held` first, so a rewired toxic loses nothing."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        st.hand_back(held)
        raise


async def pipe_noop(st: Stage, _a: dict[str, Any]) -> None:
    while (c := await _next_chunk(st)) is not None:
        await st.send(c)


async def pipe_latency(st: Stage, a: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    latency, jitter = a["latency"], a["jitter"]
    while (c := await _next_chunk(st)) is not None:
        delay = latency + (_rng.randrange(-jitter, jitter) if jitter > 0 else 0)
        # measured from the read time, so a burst of chunks is not delayed one after another
        wait = c.ts + delay / 1000 - loop.time()
        if wait > 0:
            await _sleep_holding(st, wait, c)
            c = Chunk(c.data, c.ts + wait)
        await st.send(c)


async def pipe_bandwidth(st: Stage, a: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    rate = a["rate"]  # KB/s, KB = 1000 bytes
    debt = 0.0  # seconds of sleep owed, corrected by how long each sleep really took
    while (c := await _next_chunk(st)) is not None:
        data, ts = c.data, c.ts
        if rate <= 0:
            try:  # Toxiproxy stalls the stream at rate 0
                await loop.create_future()
            except asyncio.CancelledError:
                st.hand_back(c)
                raise
        debt += len(data) / (rate * 1000)
        piece = rate * 100  # what may pass per 100 ms
        while len(data) > piece:
            await _sleep_holding(st, 0.1, Chunk(data, ts))
            head, data = data[:piece], data[piece:]
            debt -= 0.1
            await st.send(Chunk(head, ts))
        started = loop.time()
        await _sleep_holding(st, max(debt, 0.0), Chunk(data, ts))
        debt -= loop.time() - started
        await st.send(Chunk(data, ts))


async def pipe_slow_close(st: Stage, a: dict[str, Any]) -> None:
    while True:
        c = await st.recv()
        if c is None:
            try:
                await asyncio.sleep(a["delay"] / 1000)
            except asyncio.CancelledError:
                st.inp.unget(None)  # the restarted toxic sees the end of stream again
                raise
            st.close()
            return
        await st.send(c)  # type: ignore[arg-type]


async def pipe_timeout(st: Stage, a: dict[str, Any]) -> None:
    # Drops everything. Above 0 it closes after that long without data (the timer restarts on
    # every chunk); at 0 it holds the connection open for as long as the toxic exists.
    timeout = a["timeout"] / 1000 if a["timeout"] > 0 else None
    while True:
        c = await st.recv(timeout)
        if c is TIMEOUT or c is None:
            st.close()
            return


async def pipe_reset_peer(st: Stage, a: dict[str, Any]) -> None:
    # The first chunk (or end of stream) is dropped; after the timeout the stream ends, and the
    # sockets' SO_LINGER 0 (set when the link started) turns that close into a reset.
    await st.recv()
    try:
        await asyncio.sleep(a["timeout"] / 1000)
    finally:
        st.close()


def slice_bounds(size: int, average: int, variation: int) -> list[int]:
    """End offsets of the pieces a chunk is cut into: halves, offset by up to ±variation."""
    ends: list[int] = []

    def split(start: int, end: int) -> None:
        if (end - start) - average <= variation or end - start <= 1:
            ends.append(end)
            return
        mid = start + (end - start) // 2
        if variation > 0:
            mid += _rng.randrange(-variation, variation)
        mid = min(max(mid, start + 1), end - 1)
        split(start, mid)
        split(mid, end)

    if size > 0:
        split(0, size)
    return ends


async def pipe_slicer(st: Stage, a: dict[str, Any]) -> None:
    delay = a["delay"] / 1_000_000  # microseconds
    while (c := await _next_chunk(st)) is not None:
        start = 0
        for end in slice_bounds(len(c.data), a["average_size"], a["size_variation"]):
            await st.send(Chunk(c.data[start:end], c.ts))
            start = end
            if delay > 0:
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    if start < len(c.data):
                        st.hand_back(Chunk(c.data[start:], c.ts))
                    raise


async def pipe_limit_data(st: Stage, a: dict[str, Any]) -> None:
    limit = a["bytes"]
    sent = st.state.setdefault("sent", 0)  # per connection and direction, kept across restarts
    while (c := await _next_chunk(st)) is not None:
        remaining = max(limit - sent, 0)
        data = c.data if len(c.data) <= remaining else c.data[:remaining]
        if data:
            sent += len(data)
            st.state["sent"] = sent
            await st.send(Chunk(data, c.ts))
        if limit - sent <= 0:
            st.close()
            return


PIPES: dict[str, Callable[[Stage, dict[str, Any]], Awaitable[None]]] = {
    "noop": pipe_noop,
    "latency": pipe_latency,
    "bandwidth": pipe_bandwidth,
    "slow_close": pipe_slow_close,
    "timeout": pipe_timeout,
    "reset_peer": pipe_reset_peer,
    "slicer": pipe_slicer,
    "limit_data": pipe_limit_data,
}
