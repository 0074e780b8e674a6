"""HTTP faults in drills (CONTRACT P4): add one, skip where the proxy cannot, see it take effect.

The toxics `http_error` and `http_replace` are omnidrill's extension of the Toxiproxy API. A real
Toxiproxy answers them 400 "invalid toxic type": the drill is then skipped with that reason
(CONTRACT section 8), never failed or passed. Whether the fault took effect is judged from the
fault's side: a probe sent through the proxy's listen address must get the toxic's answer.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from omnidrill.chaos import rpc
from omnidrill.chaos.faultside import READ_METHODS, calls_mark
from omnidrill.chaos.models import HTTP_TOXICS
from omnidrill.chaos.runtime import (
    DrillInconclusive,
    DrillSkipped,
    Runtime,
    StepNotRun,
    StepResult,
)
from omnidrill.faults.client import FaultRequestRejected

# A probe of these would be forwarded by http_replace and broadcast: they are never probed.
SIDE_EFFECT_METHODS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})
PROBE_METHOD = "eth_blockNumber"  # read-only, answered by every provider


def add(faults: Any, step: Any, name: str) -> None:
    """Add the toxic of a `fault.toxic` step; a proxy that does not know an HTTP toxic's type
    skips the drill, with the reason."""
    proxy, toxic_type = step.proxy, step.type
    try:
        faults.add_toxic(
            proxy,
            toxic_type,
            name=name,
            stream=step.stream,
            toxicity=step.toxicity,
            attributes=step.attributes,
        )
    except FaultRequestRejected as exc:
        if toxic_type not in HTTP_TOXICS or "invalid toxic type" not in exc.message:
            raise
        raise DrillSkipped(
            f"the fault proxy at {faults.url} does not know toxic type {toxic_type!r} "
            f"({exc.status} {exc.message}): it cannot answer like a failing provider (a real "
            "Toxiproxy works at the TCP level only), and this drill needs a fault proxy that "
            f"speaks HTTP on {proxy} (CONTRACT section 8), such as omnidrill faultproxy"
        ) from None


def fault_record(toxic_type: str, attrs: dict[str, Any], toxicity: float) -> dict[str, Any]:
    """How the drill remembers an active HTTP fault (`rt.active_faults`)."""
    methods = list(attrs.get("methods") or [])
    fails = attrs.get("status", 0) >= 400 or bool(attrs.get("rpc_error_code"))
    what = f"under an {toxic_type} toxic {attrs}"
    return {
        "kind": "http",
        "what": what,
        # every answer through the path is a failure only when no method is spared
        "blocks": fails and toxicity >= 1.0 and not methods,
        "methods": methods,
        "delay_s": 0.0,
    }


def verify(
    host: str, port: int, toxic_type: str, attrs: dict[str, Any], toxicity: float, res: StepResult
) -> None:
    """Probe the path: a JSON-RPC call through it must get the toxic's answer."""
    methods = list(attrs.get("methods") or [])
    method = methods[0] if methods else PROBE_METHOD
    if toxicity < 1.0:
        res.evidence.append(f"toxicity {toxicity}: the {toxic_type} toxic is not probed")
        return
    if toxic_type == "http_replace" and method in SIDE_EFFECT_METHODS:
        res.evidence.append(
            f"the http_replace toxic on {method} is not probed (the probe would be broadcast)"
        )
        return
    want_status = attrs.get("status") or (200 if toxic_type == "http_error" else None)
    want_code = attrs.get("rpc_error_code") or None
    status, body = _probe(host, port, method)
    got_code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    shown = "no answer" if status is None else f"{status} {json.dumps(body)[:120]}"
    res.detail["verified_answer"] = shown
    if (
        status is None
        or (want_status is not None and status != want_status)
        or (want_code is not None and got_code != want_code)
    ):
        expected = " with ".join(
            x
            for x in (
                f"status {want_status}" if want_status else "",
                f"JSON-RPC error {want_code}" if want_code else "",
            )
            if x
        )
        raise DrillInconclusive(
            f"a {method} probe through {host}:{port} got {shown}, not the {toxic_type} "
            f"toxic's answer ({expected}): the fault did not take effect"
        )
    res.detail["verified"] = f"a {method} probe through {host}:{port} got {shown}"


def _probe(host: str, port: int, method: str, timeout: float = 5.0) -> tuple[int | None, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    request = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    raw = bytearray()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(request)
            while chunk := s.recv(65536):
                raw += chunk
    except OSError:
        if not raw:
            return None, None
    head, _, content = bytes(raw).partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, None
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content.decode("latin-1")[:200]


def provider_marks(rt: Runtime) -> dict[str, float | None]:
    """Each provider's clock at its newest recorded call, read as an HTTP fault begins."""
    return {which: calls_mark(rt, f"rpc_{which}") for which in ("primary", "fallback")}


def run_served(rt: Runtime, step: Any, res: StepResult) -> None:
    """`rpc.served`: the answers of step `of` that name `provider` were answered by it, as its
    own record shows (at least as many calls of each read method since the fault began)."""
    result = rt.results.get(step.of)
    if result is None:
        raise StepNotRun(f"step {step.of!r} did not run")
    marks = next(
        (f["provider_marks"] for f in rt.active_faults.values() if "provider_marks" in f), None
    )
    url = rpc.direct_routes(rt.resolved).get(step.provider)
    mark = (marks or {}).get(step.provider)
    seen = rpc.calls(url) if url else None
    if url is None or seen is None or mark is None:
        res.verdict = "skipped"
        res.evidence.append(
            f"provider {step.provider} offers no /__calls on an rpc_direct route (or no HTTP "
            "fault is active), so which requests reached it cannot be counted"
        )
        return
    problems = []
    for function, method in READ_METHODS.items():
        claimed = [
            a
            for a in result.get("answers", [])
            if a.get("target") == function
            and a.get("status") == 200
            and a.get("provider") == step.provider
        ]
        got = rpc.calls_after(seen, mark, method)
        res.detail[method] = {"answers": len(claimed), "calls": len(got)}
        if len(got) < len(claimed):
            problems.append(
                f"{len(claimed)} {function} answer(s) of step {step.of!r} said X-RPC-Provider "
                f"{step.provider}, but {step.provider} received {len(got)} {method} call(s) "
                "since the fault began (/__calls): answers it never gave"
            )
    res.verdict = "failed" if problems else "passed"
    res.evidence += problems
