"""Side-effect checks on the providers' direct (uncut) routes: was a transaction sent?

`eth_getTransactionByHash` answers on any provider; `GET /__calls` (test providers) also
shows sends that a provider took and dropped, and lets sends be counted. Where a provider
does not offer it, the evidence says so.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from omnidrill import secrets
from omnidrill.chaos.runtime import DrillInconclusive
from omnidrill.profile import Resolved

TIMEOUT = 5.0
_HTTP = httpx.Client(timeout=TIMEOUT, limits=httpx.Limits(max_connections=16))
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rpc-check")


def direct_routes(resolved: Resolved) -> dict[str, str]:
    out = {}
    for which in ("primary", "fallback"):
        url = resolved.rpc_url(which)  # type: ignore[arg-type]
        if url:
            out[which] = url.rstrip("/")
    return out


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    try:
        resp = _HTTP.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DrillInconclusive(
            secrets.scrub(f"provider {url} did not answer {method}: {type(exc).__name__}: {exc}")
        ) from None
    if not isinstance(body, dict) or ("result" not in body and "error" not in body):
        raise DrillInconclusive(f"provider {url} answered {method} with {str(body)[:120]!r}")
    if "error" in body:
        raise DrillInconclusive(f"provider {url} answered {method} with error {body['error']}")
    return body["result"]


def transaction(url: str, tx_hash: str) -> Any:
    """eth_getTransactionByHash on one provider (None: it does not know the transaction)."""
    return _rpc(url, "eth_getTransactionByHash", [tx_hash])


def calls(url: str) -> list[dict[str, Any]] | None:
    """The provider's /__calls, or None when it does not offer them."""
    try:
        resp = _HTTP.get(f"{url}/__calls")
    except httpx.HTTPError as exc:
        raise DrillInconclusive(secrets.scrub(f"provider {url}/__calls: {exc}")) from None
    if resp.status_code != 200:
        return None
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("calls"), list):
        return None
    return body["calls"]


def send_count(calls_list: list[dict[str, Any]], raw_tx: str) -> int:
    return sum(
        1
        for c in calls_list
        if c.get("method") == "eth_sendRawTransaction"
        and isinstance(c.get("params"), list)
        and c["params"]
        and str(c["params"][0]).lower() == raw_tx.lower()
    )


def absent(providers: dict[str, str], sent: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Problems (a transaction that exists or was sent) and notes on how it was judged."""
    problems: list[str] = []
    notes: list[str] = []
    for which, url in providers.items():
        seen = calls(url)
        if seen is None:
            notes.append(
                f"provider {which} offers no /__calls: judged by eth_getTransactionByHash only "
                "(a send it accepted and dropped would not show)"
            )
        found_all = list(
            _POOL.map(
                lambda s, url=url: _rpc(url, "eth_getTransactionByHash", [s["tx_hash"]]), sent
            )
        )
        for s, found in zip(sent, found_all, strict=True):
            if found is not None:
                problems.append(
                    f"transaction {s['tx_hash']} (answered {s['status']}) exists on {which}"
                )
            elif seen is not None and send_count(seen, s["raw_tx"]):
                problems.append(
                    f"transaction {s['tx_hash']} (answered {s['status']}) was sent to {which} "
                    f"({send_count(seen, s['raw_tx'])} eth_sendRawTransaction call(s) in /__calls)"
                )
    if not problems:
        notes.append(f"{len(sent)} transaction(s) absent on {', '.join(providers)}")
    return problems, notes


def present(
    providers: dict[str, str],
    sent: list[dict[str, Any]],
    sends: int | None,
    marks: dict[str, float | None] | None = None,
) -> tuple[list[str], list[str], bool]:
    """Problems, notes, and whether sends could be counted (every provider offers /__calls).
    `marks`: count only the calls after each provider's mark (its own clock)."""
    problems: list[str] = []
    notes: list[str] = []
    unique = {s["raw_tx"]: s for s in sent}
    listing = {which: calls(url) for which, url in providers.items()}
    if marks is not None:
        listing = {
            w: None if v is None or marks.get(w) is None else calls_after(v, marks[w])
            for w, v in listing.items()
        }
    countable = all(v is not None for v in listing.values())
    for raw, s in unique.items():
        exists = [
            w
            for w, url in providers.items()
            if _rpc(url, "eth_getTransactionByHash", [s["tx_hash"]]) is not None
        ]
        if not exists:
            problems.append(f"transaction {s['tx_hash']} (answered 200) exists on no provider")
        if sends is not None and countable:
            n = sum(send_count(v or [], raw) for v in listing.values())
            if n != sends:
                problems.append(
                    f"transaction {s['tx_hash']} was sent {n} time(s) across providers, "
                    f"expected exactly {sends}"
                )
            else:
                notes.append(f"transaction {s['tx_hash']} sent exactly {n} time(s)")
    return problems, notes, countable


def calls_after(
    calls_list: list[dict[str, Any]], mark: float, method: str | None = None
) -> list[dict[str, Any]]:
    """The calls a provider recorded after `mark` (its own clock), of `method` if given."""
    return [
        c
        for c in calls_list
        if float(c.get("ts") or 0) > mark and (method is None or c.get("method") == method)
    ]
