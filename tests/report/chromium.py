"""Headless Debian chromium driven over the DevTools protocol on a pipe (no port, no websocket).

`--remote-debugging-pipe` makes chromium read CDP commands from fd 3 and write to fd 4, each
message a JSON document ended by a NUL byte.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facilities import missing

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--remote-debugging-pipe",
    # Nothing may leave the machine even if the page asked: every host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1280,2000",
]


def chromium_binary() -> str:
    """Path of chromium; skips outside CI and fails under CI=true when it is missing."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    missing("chromium (apt-get install -y chromium, as .ci/run does)")
    raise AssertionError("unreachable")


@dataclass
class PageLog:
    """What a page did while loading: console errors, exceptions, every request it made."""

    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        out = [f"console.{c['type']}: {c['text']}" for c in self.console if c["type"] == "error"]
        out += [f"exception: {e}" for e in self.exceptions]
        out += [
            f"log {e['source']}: {e['text']}" for e in self.log_entries if e["level"] == "error"
        ]
        return out


class Browser:
    """One chromium process and one page session on it."""

    def __init__(self, proc: subprocess.Popen[bytes], to_chrome: int, from_chrome: int) -> None:
        self.proc = proc
        self._out = os.fdopen(to_chrome, "wb", buffering=0)
        self._in = os.fdopen(from_chrome, "rb", buffering=0)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session: str | None = None

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self._events.append(msg)
                    self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, *, timeout: float = 30) -> dict:
        with self._lock:
            self._next_id += 1
            mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"chromium did not answer {method} within {timeout}s")
                self._cond.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self._events if name is None or e["method"] == name]

    def wait_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self._events:
                    if e["method"] == name:
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {name} within {timeout}s")
                self._cond.wait(left)

    def open_page(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        with self._cond:
            self._events.clear()

    def load(self, url: str, timeout: float = 30) -> PageLog:
        """Navigate, wait for the load event and a quiet moment, and report what happened."""
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired", timeout)
        time.sleep(0.5)  # late console messages and requests
        log = PageLog()
        for e in self.events():
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                log.console.append({"type": p["type"], "text": text})
            elif e["method"] == "Runtime.exceptionThrown":
                log.exceptions.append(json.dumps(p["exceptionDetails"])[:500])
            elif e["method"] == "Log.entryAdded":
                log.log_entries.append(p["entry"])
            elif e["method"] == "Network.requestWillBeSent":
                log.requests.append(p["request"]["url"])
        return log

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression!r} raised {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone: terminate below
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()
        self._in.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    """A fresh headless chromium with its own profile folder, closed afterwards."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="omnidrill-chromium-") as profile:
        # chromium reads commands on its fd 3 and writes on its fd 4; bash puts them there
        # (dash takes one-digit fds only)
        cmd_r, cmd_w = os.pipe()
        ev_r, ev_w = os.pipe()
        # copies above 9, so that putting them on 3 and 4 never overwrites one another
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(ev_w, fcntl.F_DUPFD, 10)
        for fd in (cmd_r, ev_w):
            os.close(fd)
        args = [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        wire = f'exec "$@" 3<&{hi_r} 4>&{hi_w} {hi_r}<&- {hi_w}>&-'
        proc = subprocess.Popen(
            ["bash", "-c", wire, "bash", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(hi_r, hi_w),
        )
        os.close(hi_r)
        os.close(hi_w)
        browser = Browser(proc, cmd_w, ev_r)
        try:
            browser.open_page()
            yield browser
        finally:
            browser.close()
