"""Fault proxy overhead: added round-trip latency and bulk throughput, proxy vs direct.

Run by hand:  .venv/bin/python benchmarks/faultproxy_bench.py [--rounds 5000] [--mb 256]

The proxy (`python -m omnidrill.faults.server`) and the upstream servers each run in their own
process; this process is the client. Targets (issue 4): added p50 < 0.2 ms, bulk throughput
through the proxy at least half of direct. No toxics are set: this is the proxy's own cost.
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


def _serve(handler, ready: mp.Queue) -> None:  # type: ignore[type-arg]
    srv = socket.create_server(("127.0.0.1", 0))
    ready.put(srv.getsockname()[1])
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def _upstreams() -> tuple[list[mp.Process], int, int]:
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_serve, args=(h, ready), daemon=True) for h in (_echo, _source)]
    ports = []
    for p in procs:
        p.start()
        ports.append(ready.get(timeout=20))
    return procs, ports[0], ports[1]


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


def _latencies(port: int, rounds: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"q" * 64
        for _ in range(200):  # warm-up
            s.sendall(msg)
            s.recv(64, socket.MSG_WAITALL)
        out = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.sendall(msg)
            s.recv(64, socket.MSG_WAITALL)
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
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000, help="round trips per latency run")
    parser.add_argument("--mb", type=int, default=256, help="MB per bulk transfer")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best is kept)")
    args = parser.parse_args()

    upstream_procs, echo_port, source_port = _upstreams()
    proxy, url = _start_proxy()
    try:
        with httpx.Client(base_url=url) as api:
            ports = {}
            for name, up in (("echo", echo_port), ("source", source_port)):
                body = {"name": name, "upstream": f"127.0.0.1:{up}", "listen": "127.0.0.1:0"}
                r = api.post("/proxies", json=body)
                r.raise_for_status()
                ports[name] = int(r.json()["listen"].rsplit(":", 1)[1])

        lat: dict[str, list[list[float]]] = {"direct": [], "proxy": []}
        tput: dict[str, list[float]] = {"direct": [], "proxy": []}
        proxy_cpu = 0.0
        for _ in range(args.repeat):  # interleaved, so load from others hits both alike
            lat["direct"].append(_latencies(echo_port, args.rounds))
            lat["proxy"].append(_latencies(ports["echo"], args.rounds))
            tput["direct"].append(_throughput(source_port, args.mb * 1_000_000))
            before = _cpu_seconds(proxy.pid)
            tput["proxy"].append(_throughput(ports["source"], args.mb * 1_000_000))
            proxy_cpu += _cpu_seconds(proxy.pid) - before
    finally:
        proxy.terminate()
        proxy.wait(10)
        for p in upstream_procs:
            p.terminate()
            p.join(5)

    def best(kind: str, q: float) -> float:  # best run of each, in ms
        return min(_pct(run, q) for run in lat[kind]) * 1000

    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), "?")
    print(
        f"faultproxy benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores "
        f"({cpu}) · Python {platform.python_version()} · {args.rounds} round trips of 64 B, "
        f"{args.mb} MB bulk, best of {args.repeat}"
    )
    rows = [
        ("round trip p50 (ms)", best("direct", 0.5), best("proxy", 0.5)),
        ("round trip p99 (ms)", best("direct", 0.99), best("proxy", 0.99)),
        (
            "round trip mean (ms)",
            *(
                min(statistics.fmean(r) for r in lat[k]) * 1000
                for k in ("direct", "proxy")  # type: ignore[arg-type]
            ),
        ),
        ("bulk throughput (MB/s)", max(tput["direct"]), max(tput["proxy"])),
    ]
    print(f"{'':24} {'direct':>10} {'proxy':>10} {'added / ratio':>14}")
    for label, direct, via in rows:
        extra = f"{via / direct:.2f}x" if "MB/s" in label else f"+{via - direct:.3f}"
        print(f"{label:24} {direct:10.3f} {via:10.3f} {extra:>14}")
    added_p50 = best("proxy", 0.5) - best("direct", 0.5)
    ratio = max(tput["proxy"]) / max(tput["direct"])
    pairs = sorted(p / d for p, d in zip(tput["proxy"], tput["direct"], strict=True))
    gb = args.repeat * args.mb / 1000
    print(
        f"bulk ratio per interleaved pair: {', '.join(f'{r:.2f}' for r in pairs)}; "
        f"proxy CPU {proxy_cpu / gb:.3f} s per GB relayed"
    )
    print(
        f"targets: added p50 < 0.2 ms: {'met' if added_p50 < 0.2 else 'NOT met'} "
        f"({added_p50:.3f} ms); throughput >= 0.5x direct: "
        f"{'met' if ratio >= 0.5 else 'NOT met'} ({ratio:.2f}x)"
    )


if __name__ == "__main__":
    main()
