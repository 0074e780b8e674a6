"""The Slack notifier against a real local webhook sink."""

from __future__ import annotations

import pytest

from omnidrill import secrets
from omnidrill.errors import UsageError
from omnidrill.netutil import free_port
from omnidrill.notify.slack import build_message, post_summary, webhook_from_env

from .webhook_sink import webhook_sink

SUMMARY = """## omnidrill: FAILED on local (1 of 2 drills failed)

| drill | clauses | verdict | time to effect | time to recover |
|---|---|---|---|---|
| kill-switch | C2, C5 | passed | 0.31 s (±0.1 s) | 0.20 s (±0.1 s) |
| safe-mode | C4 | failed | - | - |
"""


def test_post_reaches_the_sink_with_headline_and_table() -> None:
    with webhook_sink() as sink:
        result = post_summary(sink.url, SUMMARY, report_location="reports/x/report.html")
    assert result.ok, result.detail
    assert result.status == 200
    assert len(sink.posts) == 1
    post = sink.posts[0]
    assert post["path"] == "/services/T000/B000/secretpart1234"
    assert post["content_type"] == "application/json"
    payload = post["json"]
    assert payload["text"] == "omnidrill: FAILED on local (1 of 2 drills failed)"
    table = payload["blocks"][1]["text"]["text"]
    assert table.startswith("```") and "| safe-mode | C4 | failed |" in table
    assert "reports/x/report.html" in payload["blocks"][2]["elements"][0]["text"]


def test_refused_post_is_a_result_not_an_exception_and_hides_the_url() -> None:
    with webhook_sink(status=403, body="invalid_token") as sink:
        result = post_summary(sink.url, SUMMARY)
    assert not result.ok
    assert result.status == 403
    assert "invalid_token" in result.detail
    assert "secretpart1234" not in result.detail


def test_unreachable_webhook_is_a_warning() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T/B/anothersecret99"
    result = post_summary(url, SUMMARY, timeout_s=3)
    assert not result.ok
    assert result.status is None
    assert "Slack post failed" in result.detail
    assert "anothersecret99" not in result.detail


def test_secrets_in_the_summary_are_scrubbed() -> None:
    secrets.register("sk-verysecret-0001")
    try:
        msg = build_message("headline\n| a | sk-verysecret-0001 |")
    finally:
        secrets.forget_all()
    assert "sk-verysecret-0001" not in str(msg)


def test_long_summary_is_cut_to_slack_limits() -> None:
    rows = "\n".join(f"| drill-{i} | C{i} | passed |" for i in range(400))
    msg = build_message("headline\n" + rows)
    body = msg["blocks"][1]["text"]["text"]
    assert len(body) <= 3000
    assert "more line(s): see the report" in body


def test_webhook_from_env() -> None:
    with pytest.raises(UsageError, match="SLACK_WEBHOOK_URL"):
        webhook_from_env({})
    with pytest.raises(UsageError, match="http"):
        webhook_from_env({"SLACK_WEBHOOK_URL": "hooks.slack.com/x"})
    url = "https://hooks.slack.com/services/T/B/zzz-secret-zzz"
    try:
        assert webhook_from_env({"SLACK_WEBHOOK_URL": url}) == url
        assert "zzz-secret-zzz" not in secrets.scrub(f"posting to {url}")
    finally:
        secrets.forget_all()
