"""Where detection reads from: the intake evaluated with the project's monitors (fed through
datadog-api-client), drill windows and their checks, which answers are the target's own
failures (O2), and Sentry's API looked up by trace id."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from omnidrill.chaos.client import Answer
from omnidrill.chaos.detection import own_failure
from omnidrill.errors import Inconclusive, UsageError
from omnidrill.netutil import free_port, wait_for_port
from omnidrill.observe.compile import compile_monitors
from omnidrill.observe.detection import IntakeStates, drill_windows
from omnidrill.observe.intake.server import ThreadedIntake
from omnidrill.observe.sentry_api import SentryApiEvents
from omnidrill.profile import Expect

from .conftest import ROOT


def _gauge(url: str, value: float, ts: int, source: str = "table") -> None:
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.v2.api.metrics_api import MetricsApi
    from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
    from datadog_api_client.v2.model.metric_payload import MetricPayload
    from datadog_api_client.v2.model.metric_point import MetricPoint
    from datadog_api_client.v2.model.metric_series import MetricSeries

    cfg = Configuration(api_key={"apiKeyAuth": "k"})
    cfg.host = url
    series = MetricSeries(
        metric="omnihub.emergency.kill_switch",
        type=MetricIntakeType.GAUGE,
        points=[MetricPoint(timestamp=ts, value=value)],
        tags=["service:omnihub-local", f"source:{source}"],
    )
    with ApiClient(cfg) as api:
        MetricsApi(api).submit_metrics(body=MetricPayload(series=[series]))


def test_the_intake_series_drive_the_local_monitors(intake: ThreadedIntake) -> None:
    now = int(time.time())
    _gauge(intake.url, 0, now - 5)  # history the intake kept before the drill started
    states = IntakeStates(intake.url, compile_monitors(ROOT, "local"))
    try:
        assert states.read().states["kill-switch-on"] == "OK"
        _gauge(intake.url, 1, int(time.time()))
        assert states.read().states["kill-switch-on"] == "Alert"
        assert states.windows(["kill-switch-on"]) == {
            "kill-switch-on": "last 2s (drill window; the monitor's is last 5m)"
        }
        evidence = states.evidence("kill-switch-on")
        assert any("source:table" in e and "last 1" in e for e in evidence), evidence
        missing = states.evidence("controls-failsafe")
        assert any("no such series reached the intake" in e for e in missing), missing
        time.sleep(2.5)  # the 1 leaves the two-second window; a 0 is the last value
        _gauge(intake.url, 0, int(time.time()))
        assert states.read().states["kill-switch-on"] == "OK"
    finally:
        states.close()


def _compiled_with(windows: Any):
    compiled = compile_monitors(ROOT, "local")
    compiled.variables = {**compiled.variables, "drill_windows": windows}
    return compiled


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        ({"no-such-monitor": "2s"}, "drill_windows.no-such-monitor: names no monitor"),
        ({"kill-switch-on": "2 seconds"}, "expected a window like 4s, 1m, found '2 seconds'"),
        ({"agent-availability-burn-fast": "2s"}, "expected {long: 20s, short: 3s}"),
        ({"agent-availability-burn-fast": {"long": "6s"}}, "expected {long: 20s, short: 3s}"),
        (["2s"], "expected a mapping of monitor id to window"),
    ],
)
def test_drill_windows_are_checked(windows: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("}", r"\}")):
        drill_windows(_compiled_with(windows))


def _answer(status: int | None, body: Any = None) -> Answer:
    return Answer("POST", "u", "i", "execute-trade", status, {}, "", body, 0.1, time.time())


@pytest.mark.parametrize(
    ("status", "body", "own"),
    [
        (503, {"code": "RPC_UNAVAILABLE"}, True),
        (503, {"code": "RATE_LIMIT_UNAVAILABLE"}, True),
        (500, {"code": "INTERNAL_ERROR"}, True),
        (502, {"code": "SOMETHING_ELSE"}, True),  # "or the like": a 5xx that is no refusal
        (503, {"code": "KILL_SWITCH"}, False),
        (503, {"code": "SAFE_MODE"}, False),
        (403, {"code": "OPERATOR_TAKEOVER"}, False),
        (429, {"code": "RATE_LIMITED"}, False),
        (400, {"code": "BAD_REQUEST"}, False),
        (500, {"code": "KILL_SWITCH"}, False),  # a profile whose refusals answer 500
        (None, None, False),  # no answer at all
    ],
)
def test_which_answers_are_the_targets_own_failures(status, body, own) -> None:
    assert own_failure(_answer(status, body), Expect()) is own


def test_without_codes_a_shared_refusal_status_is_not_judged() -> None:
    expect = Expect(error_codes=False, kill_switch_status=500)
    killed = {"error": "OMNIHUB_KILL_SWITCH is enabled - all operations are disabled"}
    assert own_failure(_answer(500, killed), expect) is False
    assert own_failure(_answer(500, {"error": "boom"}), expect) is False  # 500 is the refusal's
    assert own_failure(_answer(502, {"error": "bad gateway"}), expect) is True


class FakeSentry:
    """Sentry's events query endpoint over a list of events with tags, behind a token."""

    def __init__(self, token: str, events: list[dict[str, str]]) -> None:
        self.token = token
        self.events = events
        self.queries: list[str] = []

        async def query(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"detail": "Invalid token"}, 401)
            q = request.query_params.get("query", "")
            self.queries.append(q)
            assert request.query_params.getlist("field") == ["id", "tags[trace_id]"]
            project = q.split("project:", 1)[1].split(" ", 1)[0]
            wanted = q.split("tags[trace_id]:[", 1)[1].rstrip("]").split(",")
            rows = [
                {"id": e["id"], "tags[trace_id]": e["trace_id"]}
                for e in self.events
                if e["project"] == project and e["trace_id"] in wanted
            ]
            return JSONResponse({"data": rows, "meta": {"fields": {"id": "string"}}})

        app = Starlette(routes=[Route("/api/0/organizations/{org}/events/", query)])
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        threading.Thread(target=self.server.run, daemon=True).start()
        wait_for_port("127.0.0.1", self.port)

    def stop(self) -> None:
        self.server.should_exit = True


def test_sentry_api_finds_events_by_trace_id() -> None:
    events = [
        {"id": f"e{i}", "trace_id": f"t{i}", "project": "omnihub" if i % 2 == 0 else "other"}
        for i in range(50)
    ]
    fake = FakeSentry("sentry-token-0123456789", events)
    try:
        api = SentryApiEvents(f"http://127.0.0.1:{fake.port}", "acme", "omnihub", fake.token)
        wanted = {f"t{i}" for i in range(0, 50, 2)} | {"t1", "missing"}
        assert api.trace_ids(wanted) == {f"t{i}" for i in range(0, 50, 2)}
        assert len(fake.queries) == 2, "looked up twenty trace ids per query"
        bad = SentryApiEvents(f"http://127.0.0.1:{fake.port}", "acme", "omnihub", "wrong-token")
        with pytest.raises(Inconclusive, match="Sentry refused the events query \\(401\\)"):
            bad.trace_ids({"t0"})
    finally:
        fake.stop()
