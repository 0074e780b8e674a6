"""The Datadog API client: keys and site from the environment, retries, errors as exit codes."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from omnidrill import secrets
from omnidrill.errors import Inconclusive, UsageError

T = TypeVar("T")

RETRY_STATUSES = {429, 500, 502, 503, 504}
_KNOWN_SITES = {
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "datadoghq.eu",
    "ddog-gov.com",
    "us2.ddog-gov.com",
}


class DatadogApiError(Inconclusive):
    """Datadog answered with an error (after retries); the message is Datadog's own."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class DatadogSettings:
    """Where Datadog is and how to authenticate; `site` may be a full URL (a local fake)."""

    api_key: str
    app_key: str | None
    site: str = "datadoghq.com"
    max_retries: int = 4
    backoff_s: float = 1.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, need_app_key: bool = True
    ) -> DatadogSettings:
        """Read DD_API_KEY, DD_APP_KEY, DD_SITE; a missing key is a UsageError before any call."""
        env = os.environ if environ is None else environ
        api_key = env.get("DD_API_KEY", "").strip()
        app_key = env.get("DD_APP_KEY", "").strip() or None
        missing = [n for n, v in (("DD_API_KEY", api_key), ("DD_APP_KEY", app_key)) if not v]
        if not need_app_key and "DD_APP_KEY" in missing:
            missing.remove("DD_APP_KEY")
        if missing:
            raise UsageError(
                f"{' and '.join(missing)} not set: export the Datadog API key (DD_API_KEY) "
                "and application key (DD_APP_KEY) of the organisation to manage"
            )
        secrets.register(api_key, app_key)
        backoff = env.get("OMNIDRILL_DD_BACKOFF_S", "1.0")
        try:
            backoff_s = float(backoff)
        except ValueError as exc:
            raise UsageError(
                f"OMNIDRILL_DD_BACKOFF_S: expected seconds, found {backoff!r}"
            ) from exc
        site = env.get("DD_SITE", "").strip() or "datadoghq.com"
        return cls(api_key=api_key, app_key=app_key, site=site, backoff_s=backoff_s)

    @staticmethod
    def present(environ: Mapping[str, str] | None = None) -> bool:
        """True when an API key is set (drill reporting is skipped quietly without one)."""
        env = os.environ if environ is None else environ
        return bool(env.get("DD_API_KEY", "").strip())


def configuration(settings: DatadogSettings) -> Configuration:
    """A Configuration for `settings`; the SDK's own retry stays off (ours knows 429 and 5xx)."""
    keys = {"apiKeyAuth": settings.api_key}
    if settings.app_key:
        keys["appKeyAuth"] = settings.app_key
    cfg = Configuration(api_key=keys)
    site = settings.site
    if site.startswith(("http://", "https://")):
        cfg.host = site.rstrip("/")
    elif site in _KNOWN_SITES:
        cfg.server_index = 0
        cfg.server_variables["site"] = site
    else:
        cfg.server_index = 2  # any site name, https://api.<site>
        cfg.server_variables["site"] = site
    cfg.request_timeout = 30
    return cfg


@contextlib.contextmanager
def api_client(settings: DatadogSettings) -> Iterator[ApiClient]:
    with ApiClient(configuration(settings)) as client:
        yield client


def datadog_message(exc: ApiException) -> str:
    """Datadog's own error text: the `errors` list of its JSON body, else the reason."""
    body: Any = exc.body
    if isinstance(body, bytes | str):
        import json

        try:
            body = json.loads(body)
        except ValueError:
            body = body.decode() if isinstance(body, bytes) else body
    if isinstance(body, dict) and body.get("errors"):
        errs = body["errors"]
        parts = [e if isinstance(e, str) else e.get("detail") or str(e) for e in errs]
        return "; ".join(parts)
    return f"{exc.reason or ''} {body or ''}".strip()


def call(settings: DatadogSettings, what: str, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Call one SDK method, retrying 429 and 5xx with back-off; errors carry Datadog's text."""
    attempt = 0
    while True:
        try:
            return fn(*args, **kw)
        except ApiException as exc:
            if exc.status in RETRY_STATUSES and attempt < settings.max_retries:
                time.sleep(_delay(settings, attempt, exc))
                attempt += 1
                continue
            msg = secrets.scrub(datadog_message(exc))
            raise DatadogApiError(
                f"Datadog refused {what}: {exc.status} {msg}", exc.status
            ) from exc
        except (Urllib3Error, OSError) as exc:
            if attempt < settings.max_retries:
                time.sleep(_delay(settings, attempt, None))
                attempt += 1
                continue
            raise DatadogApiError(
                f"cannot reach Datadog for {what}: {secrets.scrub(str(exc))}"
            ) from exc


def _delay(settings: DatadogSettings, attempt: int, exc: ApiException | None) -> float:
    headers = (exc.headers or {}) if exc is not None else {}
    reset = headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset")
    if reset:
        with contextlib.suppress(ValueError):
            return min(float(reset), 60.0)
    return settings.backoff_s * (2**attempt)


def plain(model: Any) -> Any:
    """An SDK model as plain JSON data (datetimes as ISO strings, enums as strings)."""
    if hasattr(model, "to_dict"):
        model = model.to_dict()
    if isinstance(model, dict):
        return {k: plain(v) for k, v in model.items()}
    if isinstance(model, list | tuple):
        return [plain(v) for v in model]
    if isinstance(model, dt.datetime | dt.date):
        return model.isoformat()
    if hasattr(model, "value") and not isinstance(model, int | float | str | bool):
        return model.value
    return model
