"""Drill failures and harness errors to Sentry, with every key, DSN and connection string
scrubbed by `before_send` (secrets registered in `omnidrill.secrets`, plus secret-named keys).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from omnidrill import secrets
from omnidrill.observe.drill_events import DrillOutcome

# Key names whose values are secrets wherever they appear in an event.
_SECRET_KEY = re.compile(
    r"(?i)(key|token|secret|passw|pwd|dsn|auth|cookie|credential|signature|"
    r"database_url|redis_url|rpc_.*url|connection)"
)
# `api_key=...`, `token: ...` inside free text (exception messages, log lines).
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([\w-]*(?:key|token|secret|passw|pwd|dsn|signature)[\w-]*[\"']?\s*[=:]\s*[\"']?)"
    r"([^\s\"'&,;]{4,})"
)
# Environment variables whose values are secrets.
_SECRET_ENV = re.compile(
    r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|DSN|CREDENTIAL|DATABASE_URL|REDIS_URL|RPC_.*URL)$"
)


def register_environment_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Register the values of secret-named environment variables for scrubbing."""
    env = os.environ if environ is None else environ
    secrets.register(*(v for k, v in env.items() if _SECRET_ENV.search(k)))


def _scrub(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEY.search(key) and value not in (None, "", [], {}):
        return secrets.REDACTED  # the whole value, nested parts included
    if isinstance(value, str):
        return _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + secrets.REDACTED, secrets.scrub(value))
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Scrub a whole event: registered secrets, credential-looking text, secret-named keys."""
    return _scrub(event)  # type: ignore[no-any-return]


def init_sentry(
    *,
    dsn: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    environ: Mapping[str, str] | None = None,
    transport: Any = None,
) -> bool:
    """Start the Sentry SDK from SENTRY_DSN (or `dsn`); False (and nothing sent) without one."""
    env = os.environ if environ is None else environ
    dsn = dsn or env.get("SENTRY_DSN") or None
    if not dsn:
        return False
    import sentry_sdk

    from omnidrill import __version__

    register_environment_secrets(env)
    parts = urlsplit(dsn)
    secrets.register(dsn, parts.username, parts.password)
    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": environment,
        "release": release or f"omnidrill@{__version__}",
        "before_send": before_send,
        "before_breadcrumb": lambda crumb, hint: _scrub(crumb),
        "include_local_variables": False,
        "default_integrations": False,
        "auto_enabling_integrations": False,
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    return True


def _active() -> bool:
    """True once init_sentry started a client; never imports the SDK just to find out."""
    sdk = sys.modules.get("sentry_sdk")
    return sdk is not None and sdk.get_client().is_active()


def capture_drill_failure(
    outcome: DrillOutcome,
    *,
    report_url: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> str | None:
    """One Sentry event for a drill that did not pass; returns its id (None if Sentry is off)."""
    if not _active():
        return None
    import sentry_sdk

    failed = [c.clause for c in outcome.clauses if not c.passed]
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("drill", outcome.drill)
        scope.set_tag("target", outcome.target)
        scope.set_tag("verdict", outcome.verdict)
        scope.set_tag("env", outcome.environment)
        if outcome.run_id:
            scope.set_tag("run_id", outcome.run_id)
        scope.set_context(
            "drill",
            {
                "clauses": [
                    {"clause": c.clause, "passed": c.passed, "detail": c.detail}
                    for c in outcome.clauses
                ],
                "duration_s": outcome.duration_s,
                "time_to_effect_s": outcome.time_to_effect_s,
                "time_to_recover_s": outcome.time_to_recover_s,
                "report": report_url,
                "error": outcome.error,
            },
        )
        if context:
            scope.set_context("run", dict(context))
        scope.fingerprint = ["omnidrill-drill", outcome.drill, outcome.target]
        msg = f"drill {outcome.drill} {outcome.verdict} on {outcome.target}"
        if failed:
            msg += f": {', '.join(failed)} did not hold"
        return sentry_sdk.capture_message(msg, level="error")


def capture_harness_error(
    exc: BaseException, *, context: Mapping[str, Any] | None = None
) -> str | None:
    """One Sentry event for an error of omnidrill itself."""
    if not _active():
        return None
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("omnidrill", "harness-error")
        if context:
            scope.set_context("run", dict(context))
        return sentry_sdk.capture_exception(exc)


def flush(timeout: float = 5.0) -> None:
    """Send what is queued before the process exits."""
    if _active():
        sys.modules["sentry_sdk"].flush(timeout=timeout)
