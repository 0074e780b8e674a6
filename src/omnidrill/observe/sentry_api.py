"""O2 through Sentry's own API: which trace ids have an error event, by the `trace_id` tag.

Uses the events query endpoint (`GET /api/0/organizations/<org>/events/`, Discover fields)
with an auth token that has `org:read` / `event:read`.
"""

from __future__ import annotations

import httpx

from omnidrill import secrets
from omnidrill.errors import Inconclusive

BATCH = 20  # trace ids per query, to keep the URL short


class SentryApiEvents:
    """Looks up events by their trace_id tag in one project."""

    def __init__(self, url: str, org: str, project: str, token: str, timeout_s: float = 15) -> None:
        secrets.register(token)
        self.base = url.rstrip("/")
        self.org = org
        self.project = project
        self._http = httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {token}"})

    def trace_ids(self, wanted: set[str]) -> set[str]:
        """The ones among `wanted` that have at least one error event."""
        found: set[str] = set()
        ids = sorted(wanted)
        for i in range(0, len(ids), BATCH):
            batch = ids[i : i + BATCH]
            params = [
                ("field", "id"),
                ("field", "tags[trace_id]"),
                ("dataset", "errors"),
                ("statsPeriod", "24h"),
                ("per_page", "100"),
                ("query", f"project:{self.project} tags[trace_id]:[{','.join(batch)}]"),
            ]
            url = f"{self.base}/api/0/organizations/{self.org}/events/"
            try:
                resp = self._http.get(url, params=params)
            except httpx.HTTPError as exc:
                raise Inconclusive(secrets.scrub(f"Sentry at {self.base}: {exc}")) from None
            if resp.status_code != 200:
                raise Inconclusive(
                    secrets.scrub(
                        f"Sentry refused the events query ({resp.status_code}): {resp.text[:200]}"
                    )
                )
            try:
                rows = resp.json().get("data") or []
            except (ValueError, AttributeError):
                raise Inconclusive("Sentry answered the events query with no JSON data") from None
            found |= {str(r.get("tags[trace_id]")) for r in rows if isinstance(r, dict)}
        return found & wanted

    def close(self) -> None:
        self._http.close()
