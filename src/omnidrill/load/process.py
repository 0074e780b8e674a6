"""Starting and steering the Locust child processes (local, master + N workers, or one side of a
run across machines). The harness talks to them over stdin only."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Literal

from omnidrill.errors import Inconclusive
from omnidrill.load.stats import LoadStats, StatsReader
from omnidrill.netutil import free_port

Role = Literal["local", "master", "worker"]
DEFAULT_MASTER_PORT = 5557


class LoadProcess:
    """One load run's child processes; `phase()` and `stop()` steer it while it runs."""

    def __init__(
        self,
        plan: dict[str, Any],
        out_dir: Path,
        *,
        workers: int = 0,
        role: Role = "local",
        master_host: str = "127.0.0.1",
        master_port: int | None = None,
        expect_workers: int | None = None,
        raw: bool = False,
    ) -> None:
        if workers and role != "local":
            raise ValueError(
                "workers=N runs master and workers here; it excludes role master/worker"
            )
        self.plan, self.out_dir, self.workers, self.role = plan, out_dir, workers, role
        self.master_host = master_host
        self.master_port = master_port
        self.expect_workers = expect_workers
        self.raw = raw
        self.stats_path = out_dir / "load-stats.jsonl"
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self.reader = StatsReader(self.stats_path)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> LoadProcess:
        # how many workers share the identity pool (worker_slots: see worker.build_user_classes)
        self.plan["worker_slots"] = max(1, self.workers or self.expect_workers or 1)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stats_path.unlink(missing_ok=True)
        for old in self.out_dir.glob("load-raw*.csv"):
            old.unlink()
        if self.role == "worker":
            port = self.master_port or DEFAULT_MASTER_PORT
            self._spawn("worker", ["--mode", "worker", *self._master_args(port), *self._raw(0)])
            return self
        if self.role == "master":
            port = self.master_port or DEFAULT_MASTER_PORT
            expect = self.expect_workers or 1
            self._spawn("master", self._master_cmd(port, expect, bind="*"))
            return self
        if self.workers:
            port = self.master_port or free_port()
            self._spawn("master", self._master_cmd(port, self.workers, bind="127.0.0.1"))
            for i in range(self.workers):
                args = [
                    "--mode",
                    "worker",
                    "--master-host",
                    "127.0.0.1",
                    "--master-port",
                    str(port),
                ]
                self._spawn(f"worker{i}", [*args, *self._raw(i)])
            return self
        self._spawn("local", ["--mode", "local", "--out", str(self.stats_path), *self._raw(0)])
        return self

    def _master_cmd(self, port: int, expect: int, bind: str) -> list[str]:
        return [
            "--mode",
            "master",
            "--out",
            str(self.stats_path),
            "--master-port",
            str(port),
            "--master-bind-host",
            bind,
            "--expect-workers",
            str(expect),
        ]

    def _master_args(self, port: int) -> list[str]:
        return ["--master-host", self.master_host, "--master-port", str(port)]

    def _raw(self, i: int) -> list[str]:
        return ["--raw", str(self.out_dir / f"load-raw-{i}.csv")] if self.raw else []

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.out_dir / f"locust-{name}.log").open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "omnidrill.load.worker", *args],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdin is not None
        # The plan carries keys: it goes over the pipe, never to disk.
        proc.stdin.write(json.dumps(self.plan).encode() + b"\n")
        proc.stdin.flush()
        self.procs.append(proc)

    @property
    def controller(self) -> subprocess.Popen[bytes]:
        return self.procs[0]

    def _send(self, line: str) -> None:
        stdin = self.controller.stdin
        if stdin is None or stdin.closed or self.controller.poll() is not None:
            return
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def wait_started(self, timeout: float = 60.0) -> None:
        """Block until the load has started (workers connected), or raise Inconclusive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.reader.poll()
            if st.started_at is not None:
                return
            if st.errors or self.controller.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise Inconclusive(
            "the load process did not start: "
            + ("; ".join(self.reader.stats.errors) or self.log_tail())
        )

    def phase(self, name: str) -> None:
        """Requests started from now on count in phase `name`."""
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"a phase name is one word, found {name!r}")
        self._send(f"phase {name}")

    def stop(self) -> None:
        self._send("stop")

    def wait(self, timeout: float) -> LoadStats:
        """Wait for every child to end (killing them past timeout) and return the stats."""
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.kill()
                self.reader.stats.errors.append(
                    f"the load process did not end within {timeout:.0f}s and was killed"
                )
                break
        self._close()
        return self.reader.poll()

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        for p in self.procs:
            if p.stdin and not p.stdin.closed:
                with contextlib.suppress(OSError):
                    p.stdin.close()
        for log in self._logs:
            log.close()
        self._logs = []

    def exit_codes(self) -> list[int | None]:
        return [p.poll() for p in self.procs]

    def log_tail(self, lines: int = 15) -> str:
        texts = []
        for log in sorted(self.out_dir.glob("locust-*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            texts.append(f"{log.name}: " + " | ".join(tail))
        return "\n".join(texts) or "(no log)"
