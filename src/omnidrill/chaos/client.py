"""Drill traffic to the target's HTTP surface, kept clear of its rate limit (CONTRACT section 4).

Where the profile says the target trusts X-Forwarded-For, every request comes from a new
client address in 198.18.0.0/15; with bypass headers they are added; otherwise the client
paces itself at 80 % of the limit and reports the poll resolution that leaves.
"""

from __future__ import annotations

import ipaddress
import json
import secrets as pysecrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from omnidrill import ethtx
from omnidrill.chaos.traffic import Traffic
from omnidrill.profile import Resolved
from omnidrill.txsource import TxSource, tx_source

TEST_NET = ipaddress.ip_network("198.18.0.0/15")
PACE_SHARE = 0.8  # of the limit, as R2 allows without a 429
DEFAULT_BODIES: dict[str, dict[str, Any]] = {
    "omnilink-agent": {"user_id": "omnidrill", "intent": "omnidrill drill probe"},
    "wallet-balance": {"address": "0x000000000000000000000000000000000000dead"},
    "execute-trade": {"user_id": "omnidrill", "amount_usd": 1},
}
WRONG_KEY = "omnidrill-wrong-key-0000000000000000"


@dataclass
class Answer:
    """One request and its answer, as judged and as written (summarised) to the journal."""

    method: str
    url: str
    instance: str
    function: str | None
    status: int | None
    headers: dict[str, str]
    text: str
    body: Any
    latency_s: float
    started_at: float
    error: str | None = None
    client: str | None = None
    request_body: dict[str, Any] | None = None
    raw_tx: str | None = None
    tx_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("code"), str):
            return self.body["code"]
        return None

    @property
    def provider(self) -> str | None:
        return self.headers.get("x-rpc-provider")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "t": round(self.started_at, 3),
            "method": self.method,
            "instance": self.instance,
            "target": self.function or self.url.removeprefix(self.instance),
            "status": self.status,
            "latency_ms": round(self.latency_s * 1000, 1),
        }
        for key, value in (
            ("code", self.code),
            ("provider", self.provider),
            ("tx_hash", self.tx_hash),
            ("error", self.error),
        ):
            if value:
                out[key] = value
        if self.status is not None and self.status >= 400:
            out["body"] = self.text[:300]
        return out


class Pacer:
    """Spaces requests so the drill stays under `share` of the rate limit."""

    def __init__(self, limit: int, window_s: float, share: float = PACE_SHARE) -> None:
        self.interval = window_s / max(1.0, limit * share)
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class DrillClient:
    """Sends drill requests to one target; thread-safe."""

    def __init__(
        self, resolved: Resolved, traffic: Traffic, drill: str = "", user_id: str = "omnidrill"
    ) -> None:
        self.resolved = resolved
        self.user_id = user_id  # where a step names none
        self.profile = resolved.profile
        self.traffic = traffic
        self.drill = drill
        verify = self.profile.verify_tls
        self._http = httpx.Client(
            verify=verify,
            timeout=10.0,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self._addr_lock = threading.Lock()
        self._addr_next = pysecrets.randbelow(TEST_NET.num_addresses)
        clients = self.profile.clients
        self.mode = (
            "forwarded_for"
            if clients.forwarded_for
            else "bypass_headers"
            if clients.bypass_headers
            else "paced"
        )
        lim = self.profile.limits
        self.pacer = Pacer(lim.rate_limit, lim.rate_window_s) if self.mode == "paced" else None
        self._txs: TxSource | None = None
        self._txs_lock = threading.Lock()
        self.watchers: list[Callable[[Answer], None]] = []  # see every answer (detection, O2)

    @property
    def txs(self) -> TxSource:
        """Random hex or signed transfers, as the profile's trade says; made at the first trade."""
        with self._txs_lock:
            if self._txs is None:
                self._txs = tx_source(self.resolved)
            return self._txs

    def close(self) -> None:
        self._http.close()
        if self._txs is not None:
            self._txs.close()

    # -- helpers --------------------------------------------------------------------------

    def _client_address(self) -> str:
        with self._addr_lock:
            n = self._addr_next
            self._addr_next = (n + 1) % TEST_NET.num_addresses
        return str(TEST_NET[n])

    def default_timeout(self) -> float:
        # P2 allows 2 x rpc_timeout + 0.5 s; leave room so a hang is seen as one.
        return 2 * self.profile.limits.rpc_timeout_ms / 1000 + 5.0

    def key_headers(self, key: str, key_in: str) -> dict[str, str]:
        values = {
            "anon": self.resolved.anon_key,
            "service_role": self.resolved.service_role_key,
            "wrong": WRONG_KEY,
            "none": None,
        }
        chosen = values[key]
        other = self.resolved.anon_key
        apikey = chosen if key_in in ("both", "apikey") else other
        bearer = chosen if key_in in ("both", "authorization") else other
        headers = {}
        if apikey is not None:
            headers["apikey"] = apikey
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return headers

    def function_body(
        self, function: str, body: dict[str, Any] | None, shared_tx: str | None
    ) -> dict[str, Any]:
        """The function's default body merged with the step's; trades get a fresh tx."""
        defaults = dict(DEFAULT_BODIES.get(function, {}))
        if "user_id" in defaults:
            defaults["user_id"] = self.user_id
        merged = {**defaults, **(body or {})}
        if function == "execute-trade" and "raw_tx" not in merged:
            merged["raw_tx"] = shared_tx or self.txs.fresh()
        return merged

    # -- sending --------------------------------------------------------------------------

    def send(
        self,
        *,
        instance: str,
        method: str,
        path: str,
        function: str | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        source: str = "probe",
    ) -> Answer:
        """One request; transport failures become an Answer with status None."""
        all_headers = {**self.resolved.headers, **(headers or {})}
        client = None
        if path.startswith("/functions/v1/"):
            if self.mode == "forwarded_for":
                client = self._client_address()
                all_headers["X-Forwarded-For"] = client
            elif self.mode == "bypass_headers":
                all_headers.update(self.resolved.bypass_headers)
            elif self.pacer is not None:
                self.pacer.wait()
        url = f"{instance}{path}"
        raw_tx = body.get("raw_tx") if isinstance(body, dict) else None
        started = time.time()
        t0 = time.monotonic()
        status: int | None = None
        resp_headers: dict[str, str] = {}
        text = ""
        error = None
        try:
            resp = self._http.request(
                method,
                url,
                json=body if method != "GET" else None,
                headers=all_headers,
                timeout=timeout or self.default_timeout(),
            )
            status = resp.status_code
            resp_headers = {k.lower(): v for k, v in resp.headers.items()}
            text = resp.text
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = time.monotonic() - t0
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = None
        answer = Answer(
            method=method,
            url=url,
            instance=instance,
            function=function,
            status=status,
            headers=resp_headers,
            text=text,
            body=parsed,
            latency_s=latency,
            started_at=started,
            error=error,
            client=client,
            request_body=body,
            raw_tx=raw_tx if isinstance(raw_tx, str) else None,
        )
        if answer.raw_tx:
            try:
                answer.tx_hash = ethtx.tx_hash(answer.raw_tx)
            except ValueError:
                answer.tx_hash = None
            if function == "execute-trade" and status == 200:
                self.txs.note_sent(answer.raw_tx)  # its nonce is spent on the chain
        self.traffic.record(
            ts=started,
            source=source,
            drill=self.drill,
            status=status,
            code=answer.code,
            latency_s=latency,
        )
        for watch in self.watchers:
            watch(answer)
        return answer
