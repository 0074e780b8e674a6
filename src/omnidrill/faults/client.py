"""The harness's one client of the Toxiproxy HTTP API (real Toxiproxy or `omnidrill faultproxy`).

Not toxiproxy-python, on purpose: it keeps the server address in class attributes (one address
per process, shared by every instance and thread), never sends PATCH, /populate, GET of a single
proxy or toxic, or toxic updates, does not raise on 500s, and has no timeouts. Drill actions
need all of those against whichever URL a profile names, so this client speaks the API directly
with httpx. The compatibility tests still drive our server through toxiproxy-python.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from omnidrill import secrets
from omnidrill.errors import ExitCode, Inconclusive

USER_AGENT = "omnidrill-faults"  # Toxiproxy refuses User-Agents that start with "Mozilla/"


class FaultProxyUnreachable(Inconclusive):
    """The Toxiproxy API could not be reached (connection refused, timeout, not HTTP)."""


class FaultAPIError(Inconclusive):
    """The Toxiproxy API answered with an error status; `message` is Toxiproxy's own."""

    def __init__(self, status: int, message: str, method: str, path: str) -> None:
        super().__init__(f"Toxiproxy API {method} {path}: {status} {message}")
        self.status = status
        self.message = message
        self.method = method
        self.path = path


class FaultRequestRejected(FaultAPIError):
    """A 400: the request itself was wrong (toxic type, attribute, stream): bad input."""

    exit_code = ExitCode.BAD_INPUT


class FaultProxyMismatch(Inconclusive):
    """The server's proxies differ from the profile's and we were told not to change them."""

    def __init__(self, url: str, differences: list[str]) -> None:
        lines = "\n".join(f"  - {d}" for d in differences)
        super().__init__(
            f"the fault proxy at {url} does not match the profile's faults.proxies "
            f"(faults.populate is false, so nothing was changed):\n{lines}"
        )
        self.differences = differences


class FaultClient:
    """Toxiproxy API client bound to one server URL (e.g. a profile's faults.toxiproxy_url)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"faults.toxiproxy_url: expected http://host:port, got {url!r}")
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport
    def _request(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise FaultProxyUnreachable(
                secrets.scrub(f"cannot reach the Toxiproxy API at {self.url} ({exc})")
            ) from None
        if response.status_code >= 400 and response.status_code not in ok:
            message = _error_message(response)
            cls = FaultRequestRejected if response.status_code == 400 else FaultAPIError
            raise cls(response.status_code, secrets.scrub(message), method, path)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise FaultProxyUnreachable(
                f"{method} {self.url}{path} answered {response.status_code} with a body that is "
                f"not JSON; is this a Toxiproxy API? ({response.text[:80]!r})"
            ) from None

    # -- server
    def version(self) -> str:
        """The server's version string ("2.12.0"; "git" for a plain build)."""
        body = self._request("GET", "/version")
        if isinstance(body, dict) and isinstance(body.get("version"), str):
            return body["version"]
        raise FaultProxyUnreachable(f"GET {self.url}/version: unexpected answer {body!r}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic (on every proxy of the server)."""
        self._request("POST", "/reset")

    # -- proxies
    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._request("GET", "/proxies") or {}

    def get_proxy(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/proxies/{_seg(name)}")

    def create_proxy(
        self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> dict[str, Any]:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return self._request("POST", "/proxies", body)

    def update_proxy(self, name: str, **fields: Any) -> dict[str, Any]:
        """PATCH a proxy's listen, upstream or enabled (Toxiproxy >= 2.6)."""
        return self._request("PATCH", f"/proxies/{_seg(name)}", fields)

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Disable ("down": listener closed, open connections cut) or enable a proxy."""
        return self.update_proxy(name, enabled=enabled)

    def delete_proxy(self, name: str) -> None:
        self._request("DELETE", f"/proxies/{_seg(name)}")

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /populate: create or replace the listed proxies (unlisted ones are kept)."""
        body = self._request("POST", "/populate", proxies)
        return (body or {}).get("proxies") or []

    # -- toxics
    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/proxies/{_seg(proxy)}/toxics") or []

    def get_toxic(self, proxy: str, name: str) -> dict[str, Any]:
        return self._request("GET", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}")

    def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        if name is not None:
            body["name"] = name
        return self._request("POST", f"/proxies/{_seg(proxy)}/toxics", body)

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        toxicity: float | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """PATCH a toxic: omitted attributes and toxicity keep their values."""
        body: dict[str, Any] = {}
        if toxicity is not None:
            body["toxicity"] = toxicity
        if attributes is not None:
            body["attributes"] = attributes
        return self._request("PATCH", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}", body)

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = False) -> None:
        """Remove a toxic; with missing_ok a toxic (or proxy) already gone is not an error."""
        path = f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}"
        self._request("DELETE", path, ok=(404,) if missing_ok else ())

    # -- the profile's proxies
    def ensure_proxies(self, specs: list[dict[str, Any]], populate: bool) -> list[dict[str, Any]]:
        """Make the server's proxies match `specs` (populate) or only check that they do.

        Each spec has name, upstream, listen and optionally enabled (default true). Returns the
        server's view of those proxies; without populate, raises FaultProxyMismatch listing
        every difference.
        """
        wanted = [_spec(i, s) for i, s in enumerate(specs)]
        if populate:
            self.populate(
                [{k: s[k] for k in ("name", "listen", "upstream", "enabled")} for s in wanted]
            )
            # an unchanged proxy keeps its enabled state in /populate; the profile decides here
            current = self.proxies()
            for s in wanted:
                shown = current.get(s["name"])
                if shown is not None and shown.get("enabled") != s["enabled"]:
                    current[s["name"]] = self.set_enabled(s["name"], s["enabled"])
        else:
            current = self.proxies()
        differences = [d for s in wanted for d in _differences(s, current.get(s["name"]))]
        if differences:
            raise FaultProxyMismatch(self.url, differences)
        return [current[s["name"]] for s in wanted]


def _seg(name: str) -> str:
    return quote(name, safe="")


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return response.text.strip()


def _spec(i: int, spec: dict[str, Any]) -> dict[str, Any]:
    where = f"faults.proxies[{i}]"
    for key in ("name", "upstream", "listen"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ValueError(f"{where}.{key}: expected a non-empty string, got {spec.get(key)!r}")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"{where}.enabled: expected true or false, got {enabled!r}")
    return {**spec, "enabled": enabled}


def _same_listen(wanted: str, actual: str) -> bool:
    """Does the server's bound address satisfy the wanted one (localhost:0 is any port)?"""
    w_host, _, w_port = wanted.rpartition(":")
    a_host, _, a_port = actual.rpartition(":")
    if w_port != "0" and w_port != a_port:
        return False
    w_host, a_host = w_host.strip("[]"), a_host.strip("[]")
    if w_host == a_host or (w_host in ("", "0.0.0.0", "::") and a_host in ("", "0.0.0.0", "::")):
        return True
    try:
        infos = socket.getaddrinfo(w_host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(info[4][0] == a_host for info in infos)


def _differences(spec: dict[str, Any], shown: dict[str, Any] | None) -> list[str]:
    name = spec["name"]
    if shown is None:
        return [f"{name}: missing (want listen {spec['listen']}, upstream {spec['upstream']})"]
    out = []
    if shown.get("upstream") != spec["upstream"]:
        out.append(f"{name}: upstream is {shown.get('upstream')}, want {spec['upstream']}")
    if not _same_listen(spec["listen"], str(shown.get("listen", ""))):
        out.append(f"{name}: listen is {shown.get('listen')}, want {spec['listen']}")
    if shown.get("enabled") != spec["enabled"]:
        state = "enabled" if shown.get("enabled") else "disabled"
        out.append(f"{name}: is {state}, want {'enabled' if spec['enabled'] else 'disabled'}")
    return out
