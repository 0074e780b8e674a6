"""Reading an intake back over HTTP: new points and Sentry events since the last read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from omnidrill import secrets
from omnidrill.errors import Inconclusive


@dataclass
class Row:
    """One point as the intake keeps it."""

    seq: int
    metric: str
    type: str
    tags: tuple[str, ...]
    ts: float
    value: float | tuple[float, ...]


@dataclass
class IntakeClient:
    """Follows one intake: each `new_points()` returns only what arrived since the last call."""

    url: str
    timeout_s: float = 5.0
    _point_seq: int = 0
    _event_seq: int = 0
    _traces: set[str] = field(default_factory=set)
    _http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self._http = httpx.Client(timeout=self.timeout_s)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, after: int) -> dict[str, Any]:
        try:
            resp = self._http.get(f"{self.url}{path}", params={"after": after})
        except httpx.HTTPError as exc:
            raise Inconclusive(
                secrets.scrub(f"the intake at {self.url} does not answer ({exc})")
            ) from None
        if resp.status_code != 200:
            raise Inconclusive(
                secrets.scrub(
                    f"the intake at {self.url} answered {path} with {resp.status_code}: "
                    f"{resp.text[:200]}; is it an omnidrill intake?"
                )
            )
        try:
            doc = resp.json()
        except ValueError:
            raise Inconclusive(f"the intake at {self.url} answered {path} with no JSON") from None
        return doc

    def skip_to_now(self) -> None:
        """Forget what arrived so far: later reads start from here."""
        self._point_seq = int(self._get("/intake/v1/points", 2**62).get("last", 0))
        self._event_seq = int(self._get("/intake/v1/events", 2**62).get("last", 0))

    def new_points(self) -> list[Row]:
        out: list[Row] = []
        while True:
            doc = self._get("/intake/v1/points", self._point_seq)
            if int(doc.get("last", 0)) < self._point_seq:  # restarted: read it from the start
                self._point_seq = 0
                continue
            for seq, metric, kind, tags, ts, value in doc.get("points", []):
                v = tuple(value) if isinstance(value, list) else float(value)
                out.append(Row(int(seq), metric, kind, tuple(tags), float(ts), v))
            self._point_seq = int(doc.get("next", self._point_seq))
            if not doc.get("more"):
                return out

    def new_events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            doc = self._get("/intake/v1/events", self._event_seq)
            if int(doc.get("last", 0)) < self._event_seq:
                self._event_seq = 0
                continue
            out += doc.get("events", [])
            self._event_seq = int(doc.get("next", self._event_seq))
            if not doc.get("more"):
                return out

    def trace_ids(self, wanted: set[str]) -> set[str]:
        """The ones among `wanted` that a Sentry event reached the intake tagged with."""
        for e in self.new_events():
            trace = (e.get("tags") or {}).get("trace_id")
            if trace:
                self._traces.add(str(trace))
        return self._traces & wanted

    def stats(self) -> dict[str, Any]:
        try:
            return self._http.get(f"{self.url}/intake/v1/stats").json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Inconclusive(f"the intake at {self.url} does not answer ({exc})") from None
