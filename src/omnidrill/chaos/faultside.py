"""Whether a fault took effect, judged from the fault's side, never from the target's answer.

An answer that names a provider whose path is cut is either a real bypass (the target reaches
that provider some other way: no verdict can be given) or made up (no provider saw it).
The harness tells them apart itself: it probes the cut path (the proxy's listen address must
refuse or reset), and asks the providers' own records on their direct routes (`rpc_direct`):
the transaction by hash, and `/__calls` where they offer it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from omnidrill.chaos import rpc
from omnidrill.chaos.client import Answer
from omnidrill.chaos.runtime import Runtime

# What each read-only function asks a provider (CONTRACT section 1).
READ_METHODS = {"omnilink-agent": "eth_blockNumber", "wallet-balance": "eth_getBalance"}


def provider_of(proxy: str) -> str | None:
    """The provider a proxy leads to (CONTRACT section 8 names them rpc_primary, rpc_fallback)."""
    return {"rpc_primary": "primary", "rpc_fallback": "fallback"}.get(proxy)


def calls_mark(rt: Runtime, proxy: str) -> float | None:
    """The provider's clock at the newest call it recorded, read when its path is cut: calls
    after it arrived during the fault. None where there is no record to read."""
    which = provider_of(proxy)
    url = rpc.direct_routes(rt.resolved).get(which or "")
    if url is None:
        return None
    try:
        seen = rpc.calls(url)
    except Exception:
        return None
    if seen is None:
        return None
    return max((float(c.get("ts") or 0) for c in seen), default=0.0)


def probe_path(host: str, port: int, timeout: float = 1.0) -> str | None:
    """How the path refuses traffic ('refuses connections', 'resets connections'), or None."""
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return "refuses connections"
    with s:
        try:
            s.settimeout(timeout)
            s.sendall(b"POST / HTTP/1.1\r\nHost: probe\r\nContent-Length: 0\r\n\r\n")
            first = s.recv(1)
        except ConnectionResetError:
            return "resets connections"
        except OSError:
            return None  # slow, not cut: a latency toxic is judged by timing elsewhere
    return "closes connections without answering" if first == b"" else None


@dataclass
class Claims:
    """What the claims of one round came to: answers made up, or a reason for no verdict."""

    fabricated: list[str]
    bypass: str | None


def judge_claims(rt: Runtime, answers: list[Answer]) -> Claims:
    """Answers naming a provider whose path is blocked: made up, or a real bypass?"""
    out = Claims([], None)
    for a in answers:
        fault = _blocking_fault(rt, a)
        if fault is None:
            continue
        proxy = f"rpc_{a.provider}"
        where = f"{a.function or a.url} on {a.instance}"
        probed = _probe(rt, proxy) if fault["kind"] == "cut" else fault["what"]
        if probed is None:
            out.bypass = (
                f"{where} answered {a.status} through provider {a.provider!r}, and proxy {proxy} "
                "no longer refuses connections: the fault did not hold, so no verdict can be given"
            )
            return out
        seen, how = _provider_saw(rt, a, fault)
        if seen is None:
            out.bypass = (
                f"{where} answered {a.status} through provider {a.provider!r} while proxy "
                f"{proxy} {probed}; {how}, so whether it was made up or came by another "
                "path cannot be told: no verdict can be given"
            )
            return out
        if seen:
            out.bypass = (
                f"{where} answered {a.status} through provider {a.provider!r} while proxy "
                f"{proxy} {probed}, and {how}: the target's traffic does not pass through the "
                "fault proxy, so no verdict can be given"
            )
            return out
        out.fabricated.append(
            f"{where}: answered {a.status} naming provider {a.provider!r}, but proxy {proxy} "
            f"{probed} (probed by the harness) and {how}: a made-up answer"
        )
    return out


def _blocking_fault(rt: Runtime, a: Answer) -> dict[str, Any] | None:
    if a.status is None or a.status >= 300 or not a.provider:
        return None
    fault = rt.active_faults.get(f"rpc_{a.provider}")
    if not fault or not fault.get("blocks"):
        return None
    # A slowed path still carries traffic: only an answer faster than the delay escaped it.
    if fault["kind"] == "toxic" and a.latency_s >= fault.get("delay_s", 0) * 0.9:
        return None
    return fault


def _probe(rt: Runtime, proxy: str) -> str | None:
    from omnidrill.chaos.actions import listen_address

    host, port = listen_address(rt, proxy)
    return probe_path(host, port)


def _provider_saw(rt: Runtime, a: Answer, fault: dict[str, Any]) -> tuple[bool | None, str]:
    """(whether the named provider has a record of this request, how that was established);
    None when its records cannot tell."""
    url = rpc.direct_routes(rt.resolved).get(a.provider or "")
    name = a.provider
    if url is None:
        return None, f"the profile has no rpc_direct route to ask {name}"
    seen = rpc.calls(url)
    if a.raw_tx and a.tx_hash:
        exists = rpc.transaction(url, a.tx_hash) is not None
        sends = rpc.send_count(seen or [], a.raw_tx)
        if exists or sends:
            return True, f"{name} has the transaction ({sends} send(s) in /__calls)"
        checked = "eth_getTransactionByHash answers null" + (
            ", and /__calls has no send of it" if seen is not None else ""
        )
        return False, f"{name} never saw the transaction ({checked})"
    method = READ_METHODS.get(a.function or "")
    mark = fault.get("calls_mark")
    if seen is None or method is None or mark is None:
        return None, f"{name} offers no /__calls to show which requests reached it"
    since = rpc.calls_after(seen, mark, method)
    if since:
        return True, f"{name} received {len(since)} {method} call(s) since the cut"
    return False, f"{name} received no {method} call since the cut (/__calls)"
