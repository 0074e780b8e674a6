"""A client of a running reference stack that speaks only its public HTTP surface."""

from __future__ import annotations

import ipaddress
import itertools
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from omnidrill.ethtx import random_raw_tx, tx_hash
from omnidrill.faults.client import FaultClient

CONTROLS_ROW = "00000000-0000-0000-0000-000000000001"
CLEAR_CONTROLS = {
    "omnihub_kill_switch": False,
    "execution_safe_mode": False,
    "operator_takeover": False,
    "allowed_operations": [],
}
# 198.18.0.0/15 is reserved for testing (CONTRACT section 4); one address per test client.
_TEST_NET = ipaddress.ip_network("198.18.0.0/15")
_addresses = itertools.count(random.randrange(1, 60_000))


def new_client() -> str:
    return str(_TEST_NET[next(_addresses) % (_TEST_NET.num_addresses - 2) + 1])


@dataclass
class Target:
    """A running stack seen from outside: its profile and plain HTTP calls."""

    name: str
    profile: dict[str, Any]

    def __post_init__(self) -> None:
        self.http = httpx.Client(timeout=15.0)
        self.anon = self.profile["keys"]["anon"]["value"]
        self.service = self.profile["keys"]["service_role"]["value"]
        self.limits = self.profile["limits"]
        self.rest = self.profile["controls"]["url"]
        self.faults = FaultClient(self.profile["faults"]["toxiproxy_url"])
        self.faulted = True  # unknown at first: reset once

    # --- functions ----------------------------------------------------------------------

    def headers(self, key: str | None = "anon", client: str | None = None) -> dict[str, str]:
        h = {"X-Forwarded-For": client or new_client()}
        if key is not None:
            value = {"anon": self.anon, "service": self.service}.get(key, key)
            h["apikey"] = value
            h["Authorization"] = f"Bearer {value}"
        return h

    def call(
        self,
        fn: str,
        body: Any = None,
        *,
        key: str | None = "anon",
        client: str | None = None,
        instance: int = 0,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        method: str = "POST",
    ) -> httpx.Response:
        url = f"{self.profile['instances'][instance]}/functions/v1/{fn}"
        h = {**self.headers(key, client), **(headers or {})}
        if content is not None:
            return self.http.request(method, url, content=content, headers=h)
        return self.http.request(method, url, json=body, headers=h)

    def trade(
        self, amount: float = 100.0, user: str | None = None, raw_tx: str | None = None, **kw: Any
    ) -> tuple[httpx.Response, str]:
        """Send a trade; returns the answer and the transaction's hash."""
        raw = raw_tx or random_raw_tx()
        body = {"user_id": user or f"u-{uuid.uuid4().hex[:8]}", "amount_usd": amount, "raw_tx": raw}
        body.update(kw.pop("extra", {}))
        return self.call("execute-trade", body, **kw), tx_hash(raw)

    def balance(self, **kw: Any) -> httpx.Response:
        return self.call("wallet-balance", {"address": "0x" + "ab" * 20}, **kw)

    def agent(self, **kw: Any) -> httpx.Response:
        return self.call("omnilink-agent", {"user_id": "u1", "intent": "price of eth"}, **kw)

    # --- control tables (operator's uncut route, service-role key) -----------------------

    def rest_headers(self, key: str = "service") -> dict[str, str]:
        value = {"anon": self.anon, "service": self.service}.get(key, key)
        return {"apikey": value, "Authorization": f"Bearer {value}"}

    def controls(self) -> dict[str, Any]:
        r = self.http.get(
            f"{self.rest}/emergency_controls", params={"select": "*"}, headers=self.rest_headers()
        )
        assert r.status_code == 200, r.text
        rows = r.json()
        assert len(rows) == 1
        return rows[0]

    def set_controls(self, wait: bool = True, **cols: Any) -> None:
        r = self.http.patch(
            f"{self.rest}/emergency_controls",
            params={"id": f"eq.{CONTROLS_ROW}"},
            json={**cols, "updated_by": "pytest", "reason": "contract test"},
            headers={**self.rest_headers(), "Prefer": "return=representation"},
        )
        assert r.status_code in (200, 204), r.text
        if wait:  # let every instance's cache expire (C5)
            time.sleep(self.limits["controls_ttl_ms"] / 1000 + 0.15)

    def clear_controls(self) -> None:
        row = self.controls()
        if any(row[k] != v for k, v in CLEAR_CONTROLS.items()):
            self.set_controls(**CLEAR_CONTROLS)

    def approval(self, approval_id: str) -> dict[str, Any] | None:
        r = self.http.get(
            f"{self.rest}/approval_queue",
            params={"id": f"eq.{approval_id}"},
            headers=self.rest_headers(),
        )
        assert r.status_code == 200, r.text
        rows = r.json()
        return rows[0] if rows else None

    def approvals_of(self, user: str) -> list[dict[str, Any]]:
        r = self.http.get(
            f"{self.rest}/approval_queue",
            params={"user_id": f"eq.{user}"},
            headers=self.rest_headers(),
        )
        assert r.status_code == 200, r.text
        return r.json()

    def decide(self, approval_id: str, status: str) -> None:
        r = self.http.patch(
            f"{self.rest}/approval_queue",
            params={"id": f"eq.{approval_id}"},
            json={"status": status},
            headers=self.rest_headers(),
        )
        assert r.status_code in (200, 204), r.text

    # --- providers (uncut routes) --------------------------------------------------------

    def sends_of(self, txh: str) -> int:
        """How many eth_sendRawTransaction calls of this transaction both providers received."""
        n = 0
        for url in self.profile["rpc_direct"].values():
            calls = self.http.get(f"{url}/__calls").json()["calls"]
            n += sum(
                1
                for c in calls
                if c["method"] == "eth_sendRawTransaction" and tx_hash(c["params"][0]) == txh
            )
        return n

    def tx_on_chain(self, txh: str) -> list[Any]:
        out = []
        for url in self.profile["rpc_direct"].values():
            r = self.http.post(
                url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getTransactionByHash",
                    "params": [txh],
                },
            )
            out.append(r.json()["result"])
        return out

    # --- fault proxy (through its Toxiproxy API) --------------------------------------

    def proxy_enabled(self, name: str, enabled: bool) -> None:
        self.faulted = True
        self.faults.set_enabled(name, enabled)

    def add_latency(self, name: str, ms: int) -> None:
        self.faulted = True
        self.faults.add_toxic(
            name, "latency", name="test_latency", attributes={"latency": ms, "jitter": 0}
        )

    def reset_faults(self) -> None:
        if not self.faulted:
            return
        self.faults.reset()
        self.faulted = False
        # a failsafe answer may be cached for controls_ttl after the path comes back
        time.sleep(self.limits["controls_ttl_ms"] / 1000 + 0.15)

    def has_proxy(self, name: str) -> bool:
        return any(p["name"] == name for p in self.profile["faults"]["proxies"])
