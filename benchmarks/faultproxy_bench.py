"""Fault proxy overhead, side by side with a direct connection in one run: added round-trip
latency, bulk throughput, the proxy's CPU per GB relayed, and the cost of an HTTP toxic.

Run by hand:  .venv/bin/python benchmarks/faultproxy_bench.py [--runs 7] [--mb 256] [--rounds 3000]

The proxy (`python -m omnidrill.faults.server`) and the upstream servers each run in their own
process; this process is the client. Direct and proxied measurements alternate, so load from
other processes hits both alike; each figure is the median over the runs, with its range.
Targets (issue 15): bulk through the proxy >= 0.8x direct, added p50 <= 0.1 ms for small
exchanges, no toxics. The proxy's CPU seconds per GB relayed (user + system, read from /proc)
is the figure that does not depend on the neighbours.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import httpx

CHUNK = b"\0" * (1 << 20)
_RESULT = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
HTTP_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (
        len(_RESULT),
        _RESULT,
    )
)


def _echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn, contextlib.suppress(OSError):
        while data := conn.recv(65536):
            conn.sendall(data)


def _source(conn: socket.socket) -> None:
    """Send as many bytes as the 8-byte request asks for, then close."""
    with conn, contextlib.suppress(OSError):
        want = struct.unpack("!Q", conn.recv(8, socket.MSG_WAITALL))[0]
        while want > 0:
            n = min(want, len(CHUNK))
            conn.sendall(CHUNK[:n])
            want -= n


def _http(conn: socket.socket) -> None:
    """A keep-alive HTTP/1.1 JSON-RPC stand-in: one fixed answer per request."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    with conn, contextlib.suppress(OSError, ValueError):
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
            conn.sendall(HTTP_ANSWER)


def _serve(handler, ready: mp.Queue) -> None:  # type: ignore[no-untyped-def,type-arg]
    srv = socket.create_server(("127.0.0.1", 0))
    ready.put(srv.getsockname()[1])
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def _upstreams() -> tuple[list[mp.Process], dict[str, int]]:
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    handlers = {"echo": _echo, "source": _source, "http": _http}
    procs, ports = [], {}
    for name, handler in handlers.items():
        p = ctx.Process(target=_serve, args=(handler, ready), daemon=True)
        p.start()
        procs.append(p)
        ports[name] = ready.get(timeout=20)
    return procs, ports


def _start_proxy() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "omnidrill.faults.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"the fault proxy did not start: {line!r}")
    return proc, line.rsplit("listening on ", 1)[1].strip()


def _round_trips(port: int, rounds: int, msg: bytes, answer_len: int) -> list[float]:
    """Seconds per request/answer exchange on one kept-open connection (after a warm-up)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(200):
            s.sendall(msg)
            s.recv(answer_len, socket.MSG_WAITALL)
        out = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.sendall(msg)
            s.recv(answer_len, socket.MSG_WAITALL)
            out.append(time.perf_counter() - t0)
        return out


def _throughput(port: int, nbytes: int) -> float:
    """MB/s (10^6 bytes) downloading nbytes from the source server."""
    buf = bytearray(1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(struct.pack("!Q", nbytes))
        got = 0
        while n := s.recv_into(buf):
            got += n
        elapsed = time.perf_counter() - t0
    if got != nbytes:
        raise SystemExit(f"bulk transfer got {got} of {nbytes} bytes")
    return nbytes / elapsed / 1e6


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p50(values: list[float]) -> float:
    return statistics.median(values)


def _shown(values: list[float], fmt: str = "{:.3f}") -> str:
    """Median [min-max] of one figure over the runs."""
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)} [{fmt.format(lo)}-{fmt.format(hi)}]"


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs of everything")
    parser.add_argument("--rounds", type=int, default=3000, help="round trips per latency run")
    parser.add_argument("--mb", type=int, default=256, help="MB per bulk transfer")
    args = parser.parse_args()

    load_before = _load()
    upstream_procs, up = _upstreams()
    proxy, url = _start_proxy()
    try:
        with httpx.Client(base_url=url) as api:
            via = {}
            for name, upstream in (("echo", "echo"), ("source", "source"), ("http", "http")):
                body = {"name": name, "upstream": f"127.0.0.1:{up[upstream]}"}
                r = api.post("/proxies", json={**body, "listen": "127.0.0.1:0"})
                r.raise_for_status()
                via[name] = int(r.json()["listen"].rsplit(":", 1)[1])
            # the same HTTP upstream behind a proxy that carries an HTTP toxic matching nothing
            r = api.post(
                "/proxies",
                json={
                    "name": "http_toxic",
                    "upstream": f"127.0.0.1:{up['http']}",
                    "listen": "127.0.0.1:0",
                },
            )
            r.raise_for_status()
            via["http_toxic"] = int(r.json()["listen"].rsplit(":", 1)[1])
            api.post(
                "/proxies/http_toxic/toxics",
                json={"type": "http_error", "attributes": {"status": 503, "methods": ["none"]}},
            ).raise_for_status()

        small = b"q" * 64
        rpc = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(rpc), rpc)
        added, bulk_ratio, direct_mbs, proxy_mbs, cpu_per_gb = [], [], [], [], []
        http_added, toxic_added = [], []
        for _ in range(args.runs):  # interleaved: direct, then proxied, each time
            direct = _p50(_round_trips(up["echo"], args.rounds, small, len(small)))
            proxied = _p50(_round_trips(via["echo"], args.rounds, small, len(small)))
            added.append((proxied - direct) * 1000)
            n = len(HTTP_ANSWER)
            direct = _p50(_round_trips(up["http"], args.rounds, request, n))
            plain = _p50(_round_trips(via["http"], args.rounds, request, n))
            toxic = _p50(_round_trips(via["http_toxic"], args.rounds, request, n))
            http_added.append((plain - direct) * 1000)
            toxic_added.append((toxic - direct) * 1000)
            d = _throughput(up["source"], args.mb * 1_000_000)
            before = _cpu_seconds(proxy.pid)
            p = _throughput(via["source"], args.mb * 1_000_000)
            cpu_per_gb.append((_cpu_seconds(proxy.pid) - before) / (args.mb / 1000))
            direct_mbs.append(d)
            proxy_mbs.append(p)
            bulk_ratio.append(p / d)
    finally:
        proxy.terminate()
        proxy.wait(10)
        for proc in upstream_procs:
            proc.terminate()
            proc.join(5)

    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), "?")
    print(
        f"faultproxy benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores "
        f"({cpu}) · Python {platform.python_version()} · load average {load_before} before, "
        f"{_load()} after"
    )
    print(
        f"{args.runs} interleaved runs; each: {args.rounds} round trips of 64 B (TCP echo) and "
        f"of a small JSON-RPC exchange (HTTP keep-alive), {args.mb} MB bulk; median [min-max]"
    )
    rows = [
        ("added p50, 64 B echo, no toxics (ms)", _shown(added)),
        ("added p50, HTTP exchange, no toxics (ms)", _shown(http_added)),
        ("added p50, HTTP exchange, HTTP toxic matching nothing (ms)", _shown(toxic_added)),
        ("bulk direct (MB/s)", _shown(direct_mbs, "{:.0f}")),
        ("bulk through the proxy (MB/s)", _shown(proxy_mbs, "{:.0f}")),
        ("bulk ratio proxy / direct, per run", _shown(bulk_ratio, "{:.2f}")),
        ("proxy CPU per GB relayed (s)", _shown(cpu_per_gb)),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:{width}}  {value}")
    p50 = statistics.median(added)
    ratio = statistics.median(bulk_ratio)
    print(
        f"targets: added p50 <= 0.1 ms: {'met' if p50 <= 0.1 else 'NOT met'} ({p50:.3f} ms); "
        f"bulk >= 0.8x direct: {'met' if ratio >= 0.8 else 'NOT met'} ({ratio:.2f}x median, "
        f"met in {sum(r >= 0.8 for r in bulk_ratio)} of {len(bulk_ratio)} runs)"
    )


if __name__ == "__main__":
    main()
