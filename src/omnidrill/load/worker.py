"""The Locust side of a load run: `python -m omnidrill.load.worker --mode local|master|worker`.

This module is only ever run as a child process (Locust monkey-patches with gevent); the harness
never imports it. It reads one JSON line from stdin, the plan (see `omnidrill.load.plan`; it holds
the keys, so it never touches the disk), then control lines: `phase NAME` and `stop`. End of stdin
also stops the run, so a run never outlives its harness.

Every request is recorded exactly: the harness gets, per second of request start, per phase,
function, status and error code, the count and a histogram of latencies in whole microseconds
(JSON lines, `omnidrill.load.stats` reads them). `--raw FILE` also writes one CSV line per
request (start time, function, status, latency in ms as measured, phase) for cross-checks.
Workers send their records to the master every second over Locust's own channel.

A canary's plan has `arms` (`omnidrill.canary.active`): each task then sends its request to
every arm in turn, in a random order, labelled with the arm's suffix (`wallet-balance@canary`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent import os as gos  # noqa: E402
from locust import FastHttpUser, constant, constant_throughput  # noqa: E402
from locust.env import Environment  # noqa: E402

from omnidrill.load.generators import fill, has_placeholders  # noqa: E402

Key = tuple[int, str, str, int, str]  # (second, phase, function, status, code)


class Recorder:
    """Exact per-request outcomes, aggregated until the next flush."""

    def __init__(self, raw_path: str | None) -> None:
        self.phase = "main"
        # (epoch, phase) of every switch: a request belongs to the phase current when it started,
        # told by its own start time (cheaper than carrying the phase in every request).
        self.switches: list[tuple[float, str]] = [(0.0, "main")]
        self.expect: dict[str, frozenset[int]] = {}
        self.counts: dict[Key, list[Any]] = {}
        self.total = 0
        self.raw = open(raw_path, "a", buffering=1 << 16) if raw_path else None  # noqa: SIM115

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str = "",
        **kwargs: Any,
    ) -> None:
        started = start_time if start_time is not None else time.time() - response_time / 1000
        phase = self.phase_at(started)
        status = int(getattr(response, "status_code", 0) or 0)
        code = ""
        if status == 0:
            code = type(exception).__name__ if exception is not None else "NoResponse"
        elif status >= 400:
            code = _error_code(response)
        expected = self.expect.get(name)
        failed = status == 0 or (status not in expected if expected else exception is not None)
        key = (int(started), phase, name, status, code)
        entry = self.counts.get(key)
        if entry is None:
            entry = self.counts[key] = [0, 0, defaultdict(int)]
        entry[0] += 1
        entry[1] += failed
        entry[2][int(response_time * 1000)] += 1
        self.total += 1
        if self.raw is not None:
            self.raw.write(f"{started:.6f},{name},{status},{response_time!r},{phase}\n")

    def set_phase(self, name: str, at: float | None = None) -> float:
        at = time.time() if at is None else at
        self.switches.append((at, name))
        self.phase = name
        return at

    def phase_at(self, started: float) -> str:
        last_at, last = self.switches[-1]
        if started >= last_at:
            return last
        for at, name in reversed(self.switches):
            if started >= at:
                return name
        return self.switches[0][1]

    def take(self) -> list[dict[str, Any]]:
        """The records since the last call, as JSON-ready dicts."""
        counts, self.counts = self.counts, {}
        return [
            {
                "sec": k[0],
                "phase": k[1],
                "fn": k[2],
                "status": k[3],
                "code": k[4],
                "n": v[0],
                "fail": v[1],
                "lat_us": {str(us): c for us, c in v[2].items()},
            }
            for k, v in counts.items()
        ]

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()


def _error_code(response: Any) -> str:
    try:
        body = json.loads(response.content or b"{}")
    except (ValueError, TypeError):
        return ""
    code = body.get("code") if isinstance(body, dict) else None
    return str(code) if code else ""


class Output:
    """The JSON-lines stream the harness reads (master and local runs only)."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "a", buffering=1)  # noqa: SIM115

    def write(self, obj: dict[str, Any]) -> None:
        self.fh.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def records(self, records: list[dict[str, Any]], source: str) -> None:
        for r in records:
            r["src"] = source
            self.write({"type": "sample", **r})
        self.fh.flush()


def build_user_classes(plan: dict[str, Any], recorder: Recorder, offset: Callable[[], int]) -> list:
    """One FastHttpUser subclass per instance, equal weights, so users spread over instances."""
    pacing = plan.get("pacing") or {}
    if pacing.get("per_user_rps"):
        wait = constant_throughput(pacing["per_user_rps"])
    elif pacing.get("arrival_rate"):
        wait = constant_throughput(pacing["arrival_rate"] / plan["users"])
    else:
        wait = constant(pacing.get("think_time_s") or 0)
    clients: list[str] = plan.get("clients") or []
    common: dict[str, str] = plan.get("headers") or {}
    keys: dict[str, str] = plan.get("keys") or {}
    counter = iter(range(10**9))
    arms: list[dict[str, Any]] = plan.get("arms") or []
    if arms:  # a canary: every request goes to each side in turn, from one user class
        tasks = {_paired_task(t, arms, recorder): int(t["weight"]) for t in plan["tasks"]}
        hosts = [arms[0]["instances"][0]]
    else:
        tasks = {_make_task(t, keys, recorder): int(t["weight"]) for t in plan["tasks"]}
        hosts = plan["instances"]

    # Every identity of the pool is used: user n sends as clients[n], clients[n + slots], ...
    # in turn, one per request. A worker runs at most `users` users, so worker k's users are
    # k*users + 0, 1, ...: with the pool split by user, workers (on any machine) never share
    # an identity, and each identity carries 1/len(clients) of the load, not 1/users.
    slots = int(plan["users"]) * max(1, int(plan.get("worker_slots") or 1))

    def on_start(self: Any) -> None:
        n = offset() * int(plan["users"]) + next(counter)
        mine = clients[n::slots] if n < len(clients) else clients[n % len(clients) :][:1]
        self.identities = itertools.cycle(mine) if mine else None
        self.gen_ctx = {"user_id": f"load-user-{n}", "client_ip": ""}
        self.base_headers = dict(common)
        self.headers_cache = {}

    classes = []
    for i, host in enumerate(hosts):
        attrs = {
            "host": host,
            "wait_time": wait,
            "tasks": tasks,
            "on_start": on_start,
            "network_timeout": float(plan.get("timeout_s", 10)),
            "connection_timeout": float(plan.get("timeout_s", 10)),
            "max_retries": 0,
            "insecure": not plan.get("verify_tls", True),
        }
        classes.append(type(f"Instance{i}User", (FastHttpUser,), attrs))
    return classes


def _make_task(t: dict[str, Any], keys: dict[str, str], recorder: Recorder) -> Any:
    send = _make_sender(t, keys, recorder)

    def task(user: Any) -> None:
        send(user, "", next(user.identities) if user.identities is not None else "")

    task.__name__ = f"task_{t['label']}"
    return task


def _paired_task(t: dict[str, Any], arms: list[dict[str, Any]], recorder: Recorder) -> Any:
    """The task sent to every side of a canary in turn, in a random order (neither side always
    goes first), by the same user with the same client identity; fresh values per request."""
    sides = [
        (
            _make_sender(
                t,
                arm["keys"],
                recorder,
                label=t["label"] + arm["suffix"],
                extra_headers=arm["headers"],
            ),
            list(arm["instances"]),
        )
        for arm in arms
    ]

    def task(user: Any) -> None:
        ip = next(user.identities) if user.identities is not None else ""
        order = sides if random.random() < 0.5 else sides[::-1]
        for send, hosts in order:
            send(user, random.choice(hosts), ip)

    task.__name__ = f"task_{t['label']}"
    return task


def _make_sender(
    t: dict[str, Any],
    keys: dict[str, str],
    recorder: Recorder,
    *,
    label: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Callable[[Any, str, str], None]:
    """send(user, base, ip): one request of the task, to `base` (empty: the user's host)."""
    method, path = t["method"], t["path"]
    label = label or t["label"]
    expect = frozenset(int(s) for s in t["expect"])
    body = t.get("body")
    headers: dict[str, str] = {**(extra_headers or {}), **(t.get("headers") or {})}
    key = keys.get(t.get("key") or "anon") if t.get("key") != "none" else None
    if key:
        headers = {"apikey": key, "Authorization": f"Bearer {key}", **headers}
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    dynamic_body = has_placeholders(body)
    dynamic_headers = has_placeholders(headers)
    static_body = None if body is None else json.dumps(body).encode()

    recorder.expect[label] = expect

    def send(user: Any, base: str, ip: str) -> None:
        ctx = user.gen_ctx
        ctx["client_ip"] = ip
        data = json.dumps(fill(body, ctx)).encode() if dynamic_body else static_body
        if dynamic_headers:
            h = {**user.base_headers, **fill(headers, ctx)}
        else:
            h = user.headers_cache.get(label)
            if h is None:
                h = user.headers_cache[label] = {**user.base_headers, **headers}
        if ip:
            h = {**h, "X-Forwarded-For": ip}
        user.client.request(method, base + path, name=label, data=data, headers=h)

    return send


def control_lines(fd: int) -> Any:
    """Lines from the harness, read cooperatively; ends at end of input."""
    gos.make_nonblocking(fd)
    buf = b""
    while True:
        try:
            chunk = gos.nb_read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            if buf.strip():
                yield buf.decode().strip()
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line.decode().strip()


def read_plan(fd: int) -> tuple[dict[str, Any], Any]:
    lines = control_lines(fd)
    first = next(lines, None)
    if first is None:
        raise SystemExit("omnidrill.load.worker: expected the plan as one JSON line on stdin")
    return json.loads(first), lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m omnidrill.load.worker")
    ap.add_argument("--mode", choices=["local", "master", "worker"], default="local")
    ap.add_argument("--out", help="JSON-lines stats file (local and master)")
    ap.add_argument("--raw", help="CSV file of every request (local and worker)")
    ap.add_argument("--expect-workers", type=int, default=1)
    ap.add_argument("--expect-workers-timeout", type=float, default=60.0)
    ap.add_argument("--master-host", default="127.0.0.1")
    ap.add_argument("--master-port", type=int, default=5557)
    ap.add_argument("--master-bind-host", default="*")
    args = ap.parse_args(argv)
    if args.mode != "worker" and not args.out:
        ap.error("--out is needed with --mode local or master")

    plan, control = read_plan(sys.stdin.fileno())
    recorder = Recorder(args.raw if args.mode != "master" else None)
    if args.mode == "master":
        return _run_master(plan, control, args)
    if args.mode == "worker":
        return _run_worker(plan, recorder, args)
    return _run_local(plan, control, recorder, args)


def _stopper(plan: dict[str, Any], control: Any, on_phase: Any) -> gevent.event.Event:
    """An event set at the planned end, on `stop` or at end of input; phases switch on the way."""
    done = gevent.event.Event()

    def watch() -> None:
        for line in control:
            cmd, _, arg = line.partition(" ")
            if cmd == "phase" and arg:
                on_phase(arg.strip())
            elif cmd == "stop":
                break
        done.set()

    def timer(seconds: float) -> None:
        # gevent timers run on the loop's cached clock, which can lag; check the real one.
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            gevent.sleep(min(left, 0.25))
        done.set()

    gevent.spawn(watch)
    if plan.get("duration_s"):
        gevent.spawn(timer, float(plan["duration_s"]))
    return done


def _run_local(plan: dict[str, Any], control: Any, recorder: Recorder, args: Any) -> int:
    out = Output(args.out)
    recorder.set_phase(plan.get("phase") or "main", at=0.0)
    env = Environment(user_classes=build_user_classes(plan, recorder, lambda: 0))
    env.events.request.add_listener(recorder.on_request)
    runner = env.create_local_runner()

    def set_phase(name: str) -> None:
        out.write({"type": "phase", "name": name, "at": recorder.set_phase(name)})

    out.write({"type": "start", "at": time.time(), "phase": recorder.phase, "mode": "local"})
    runner.start(int(plan["users"]), spawn_rate=float(plan["spawn_rate"]))
    done = _stopper(plan, control, set_phase)
    while not done.wait(1.0):
        out.records(recorder.take(), "local")
    ended = time.time()
    runner.quit()
    out.records(recorder.take(), "local")
    out.write({"type": "end", "at": ended, "requests": recorder.total})
    recorder.close()
    return 0


def _run_master(plan: dict[str, Any], control: Any, args: Any) -> int:
    out = Output(args.out)
    env = Environment(user_classes=build_user_classes(plan, Recorder(None), lambda: 0))
    runner = env.create_master_runner(
        master_bind_host=args.master_bind_host, master_bind_port=args.master_port
    )
    finals: set[str] = set()

    def on_stats(environment: Any, msg: Any, **kw: Any) -> None:
        out.records(msg.data["records"], msg.data["worker"])

    def on_final(environment: Any, msg: Any, **kw: Any) -> None:
        out.records(msg.data["records"], msg.data["worker"])
        out.write(
            {"type": "worker_end", "worker": msg.data["worker"], "requests": msg.data["total"]}
        )
        finals.add(msg.node_id)

    runner.register_message("omnidrill_stats", on_stats)
    runner.register_message("omnidrill_final", on_final)
    deadline = time.monotonic() + args.expect_workers_timeout
    while len(runner.clients.ready) < args.expect_workers:
        if time.monotonic() > deadline:
            out.write(
                {
                    "type": "error",
                    "message": f"only {len(runner.clients.ready)} of "
                    f"{args.expect_workers} workers connected in {args.expect_workers_timeout:g}s",
                }
            )
            runner.quit()
            return 3
        gevent.sleep(0.1)
    phase = plan.get("phase") or "main"

    def set_phase(name: str) -> None:
        runner.send_message("omnidrill_phase", name)
        out.write({"type": "phase", "name": name, "at": time.time()})

    runner.send_message("omnidrill_phase", phase)
    out.write(
        {
            "type": "start",
            "at": time.time(),
            "phase": phase,
            "mode": "master",
            "workers": len(runner.clients.ready),
        }
    )
    runner.start(int(plan["users"]), spawn_rate=float(plan["spawn_rate"]))
    done = _stopper(plan, control, set_phase)
    done.wait()
    ended = time.time()
    workers = {c.id for c in runner.clients.all}
    runner.stop()
    runner.send_message("omnidrill_flush", None)
    deadline = time.monotonic() + 15
    while not workers <= finals and time.monotonic() < deadline:
        gevent.sleep(0.05)
    missing = sorted(workers - finals)
    out.write({"type": "end", "at": ended, "missing_workers": missing})
    runner.quit()
    return 0 if not missing else 3


def _run_worker(plan: dict[str, Any], recorder: Recorder, args: Any) -> int:
    holder: dict[str, Any] = {}
    # Users ask for the worker index when they start (the master assigns it on connect), so
    # client identities of different workers do not overlap.
    classes = build_user_classes(plan, recorder, lambda: max(holder["r"].worker_index, 0))
    env = Environment(user_classes=classes)
    runner = holder["r"] = env.create_worker_runner(args.master_host, args.master_port)
    name = f"{os.uname().nodename}:{os.getpid()}"
    env.events.request.add_listener(recorder.on_request)

    def on_phase(environment: Any, msg: Any, **kw: Any) -> None:
        recorder.set_phase(msg.data)

    def on_flush(environment: Any, msg: Any, **kw: Any) -> None:
        runner.send_message(
            "omnidrill_final", {"worker": name, "records": recorder.take(), "total": recorder.total}
        )

    runner.register_message("omnidrill_phase", on_phase)
    runner.register_message("omnidrill_flush", on_flush)

    def report() -> None:
        while True:
            gevent.sleep(1.0)
            records = recorder.take()
            if records:
                runner.send_message("omnidrill_stats", {"worker": name, "records": records})

    gevent.spawn(report)
    runner.greenlet.join()
    recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
