"""Post a run's summary to a Slack incoming webhook; a failed post is a warning, never an error.

Slack answers an incoming webhook with 200 `ok`, or 4xx with a short reason such as
`invalid_payload`, `invalid_token`, `no_service` or `channel_is_archived`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from omnidrill import secrets
from omnidrill.errors import UsageError

ENV_VAR = "SLACK_WEBHOOK_URL"
# Slack refuses a section whose text is longer than 3000 characters.
SECTION_LIMIT = 3000


@dataclass(frozen=True)
class PostResult:
    """What happened to one post; `detail` is safe to print (the webhook URL is scrubbed)."""

    ok: bool
    detail: str
    status: int | None = None


def webhook_from_env(environ: dict[str, str] | None = None) -> str:
    """The webhook URL from SLACK_WEBHOOK_URL, registered as a secret; UsageError when unset."""
    env = os.environ if environ is None else environ
    url = env.get(ENV_VAR, "").strip()
    if not url:
        raise UsageError(f"--notify-slack needs the environment variable {ENV_VAR} (a webhook URL)")
    if not url.startswith(("https://", "http://")):
        raise UsageError(f"{ENV_VAR} must be an http(s) URL of a Slack incoming webhook")
    secrets.register(url)
    return url


def _code_block(text: str, limit: int) -> str:
    lines = text.strip("\n").splitlines()
    kept: list[str] = []
    used = 8  # the fences and newlines
    for i, line in enumerate(lines):
        if used + len(line) + 1 > limit - 60:
            kept.append(f"… {len(lines) - i} more line(s): see the report")
            break
        kept.append(line.replace("```", "'''"))
        used += len(line) + 1
    return "```\n" + "\n".join(kept) + "\n```"


def build_message(summary: str, report_location: str | None = None) -> dict:
    """The webhook payload: the summary's first line as the headline, the rest as a code block.

    Slack's mrkdwn has no tables, so the Markdown table goes in a code block, where it stays
    aligned and readable.
    """
    text = secrets.scrub(summary).strip()
    if not text:
        raise ValueError("the summary to post is empty")
    headline, _, rest = text.partition("\n")
    headline = headline.lstrip("#").strip()
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline[:SECTION_LIMIT]}}
    ]
    if rest.strip():
        body = _code_block(rest, SECTION_LIMIT)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
    if report_location:
        where = secrets.scrub(report_location)[: SECTION_LIMIT - 20]
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"report: {where}"}]}
        )
    return {"text": headline[:SECTION_LIMIT], "blocks": blocks}


def post_summary(
    webhook_url: str,
    summary: str,
    *,
    report_location: str | None = None,
    timeout_s: float = 10.0,
) -> PostResult:
    """Post the summary; any failure (network, timeout, non-2xx) comes back as ok=False."""
    secrets.register(webhook_url)
    try:
        payload = build_message(summary, report_location)
    except ValueError as exc:
        return PostResult(False, f"Slack post not sent: {exc}")
    try:
        resp = httpx.post(webhook_url, json=payload, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        reason = secrets.scrub(f"{type(exc).__name__}: {exc}")
        return PostResult(False, f"Slack post failed: {reason}")
    body = secrets.scrub(resp.text.strip()[:200])
    if 200 <= resp.status_code < 300:
        return PostResult(True, "posted to Slack", resp.status_code)
    return PostResult(
        False,
        f"Slack post refused: HTTP {resp.status_code} {body or '(empty body)'}",
        resp.status_code,
    )
