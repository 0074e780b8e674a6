"""One child process per part of the stack: start, wait until ready, watch, stop.

Every child gets a parent-death signal (prctl PR_SET_PDEATHSIG), so none outlives the
supervisor, even when the supervisor is killed with SIGKILL; each child runs in a process
group of its own, so a Ctrl-C in the terminal reaches the supervisor alone, which then stops
the children in reverse order of start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from omnidrill import secrets

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.05
STOP_GRACE_S = 8.0


@dataclass(frozen=True)
class ReadyPipe:
    """Ready when the child writes a line to the fd named by OMNIHUB_READY_FD (omnihub_ref.part)."""


@dataclass(frozen=True)
class LogLine:
    """Ready when the child's output has a line matching `pattern` (servers that announce it)."""

    pattern: str


Ready = ReadyPipe | LogLine


@dataclass
class Part:
    """How to run one part: its command, how it says it is ready, how to stop it."""

    name: str
    argv: list[str]
    ready: Ready
    stdin: bytes = b""  # written, then closed: the part's settings, secrets included
    env: Mapping[str, str] = field(default_factory=dict)
    listen: socket.socket | None = None  # inherited as OMNIHUB_LISTEN_FD
    user: tuple[int, int] | None = None  # (uid, gid) to run as
    stop_signal: int = signal.SIGTERM
    ready_timeout_s: float = 30.0


class PartFailed(Exception):
    """A part did not start, or stopped on its own; the message names it and quotes its log."""


@dataclass
class Child:
    part: Part
    proc: subprocess.Popen[bytes]
    log_path: Path
    started_at: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def describe_exit(self) -> str:
        code = self.proc.returncode
        if code is None:
            return "is running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with code {code}"


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, scrubbed of every secret."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return secrets.scrub("\n".join(tail)) or "(no output)"


def _child_setup(parent_pid: int, death_signal: int) -> None:
    """Runs in the child between fork and exec: die with the parent, whatever kills it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class Supervisor:
    """Starts parts as children and keeps track of them; `stop_all` ends every one."""

    def __init__(self, log_dir: Path, say: Callable[[str], None] | None = None) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self._say = say or (lambda text: None)
        self._born = time.monotonic()

    async def start(self, part: Part, settings: Awaitable[bytes] | None = None) -> Child:
        """Spawn `part` and return once it is ready; PartFailed (after stopping it) if not.

        With `settings`, the part is spawned at once (so it loads its code meanwhile) and its
        standard input is what `settings` gives, once it is known; else `part.stdin`.
        """
        child, ready_fd = self._spawn(part)
        try:
            _write_and_close(child.proc, part.stdin if settings is None else await settings)
            await self._wait_ready(child, ready_fd)
        except BaseException:
            await self._stop_child(child)
            raise
        finally:
            if ready_fd is not None:
                os.close(ready_fd)
        now = time.monotonic()
        self._say(
            f"{part.name} ready (pid {child.pid}) in {now - child.started_at:.2f} s, "
            f"{now - self._born:.2f} s into the start"
        )
        return child

    def say(self, text: str) -> None:
        """A line of the start-up story, timed from the supervisor's birth."""
        self._say(f"{text}, {time.monotonic() - self._born:.2f} s into the start")

    def _spawn(self, part: Part) -> tuple[Child, int | None]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{part.name}.log"
        env = {**os.environ, **part.env, "OMNIHUB_PART": part.name}
        pass_fds: list[int] = []
        ready_r = ready_w = None
        if isinstance(part.ready, ReadyPipe):
            ready_r, ready_w = os.pipe()
            env["OMNIHUB_READY_FD"] = str(ready_w)
            pass_fds.append(ready_w)
        if part.listen is not None:
            env["OMNIHUB_LISTEN_FD"] = str(part.listen.fileno())
            pass_fds.append(part.listen.fileno())
        parent = os.getpid()
        # Postgres shuts down fast on SIGINT; SIGTERM would wait for every client to leave.
        death = part.stop_signal
        try:
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    part.argv,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=pass_fds,
                    process_group=0,
                    user=part.user[0] if part.user else None,
                    group=part.user[1] if part.user else None,
                    extra_groups=[] if part.user else None,
                    preexec_fn=lambda: _child_setup(parent, death),
                )
        except OSError as exc:
            if ready_r is not None:
                os.close(ready_r)
            raise PartFailed(f"{part.name} could not be started: {exc}") from None
        finally:
            if ready_w is not None:
                os.close(ready_w)
            if part.listen is not None:
                part.listen.close()  # the child holds it now
        child = Child(part, proc, log_path, time.monotonic())
        self.children.append(child)
        return child, ready_r

    async def _wait_ready(self, child: Child, ready_fd: int | None) -> None:
        part = child.part
        deadline = time.monotonic() + part.ready_timeout_s
        pattern = re.compile(part.ready.pattern) if isinstance(part.ready, LogLine) else None
        if ready_fd is not None:
            os.set_blocking(ready_fd, False)
        seen = 0
        while True:
            if ready_fd is not None:
                with contextlib.suppress(BlockingIOError):
                    if os.read(ready_fd, 256):
                        return
            if pattern is not None:
                text, seen = _read_new(child.log_path, seen)
                if text and pattern.search(text):
                    return
            if child.proc.poll() is not None:
                raise PartFailed(
                    f"{part.name} {child.describe_exit()} before it was ready; its output:\n"
                    + log_tail(child.log_path)
                )
            if time.monotonic() > deadline:
                raise PartFailed(
                    f"{part.name} was not ready after {part.ready_timeout_s:.0f} s; its output:\n"
                    + log_tail(child.log_path)
                )
            await asyncio.sleep(_POLL_S)

    async def wait_for_exit(self) -> Child:
        """The first child that stops on its own (the supervisor did not ask it to)."""
        while True:
            for child in self.children:
                if child.proc.poll() is not None:
                    return child
            await asyncio.sleep(_POLL_S * 2)

    async def stop_all(self) -> None:
        """Stop every child at once; each gets STOP_GRACE_S, then SIGKILL."""
        await asyncio.gather(*(self._stop_child(c) for c in list(self.children)))

    async def _stop_child(self, child: Child) -> None:
        proc = child.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(child.part.stop_signal)
            deadline = time.monotonic() + STOP_GRACE_S
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(_POLL_S)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.to_thread(proc.wait)
        if child in self.children:
            self.children.remove(child)


def _write_and_close(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it died already: _wait_ready says how


def _read_new(path: Path, offset: int) -> tuple[str, int]:
    """Text appended to a log since `offset` (from the start of the last whole line)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return "", offset
    cut = data.rfind(b"\n") + 1
    return data[:cut].decode("utf-8", "replace"), offset + cut
