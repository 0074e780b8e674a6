"""The intake accepts what the real Datadog and Sentry clients send, unchanged, and gives
it back: datadog-api-client's v2 series and v1 distribution points (compressed as the client
compresses), DogStatsD datagrams over UDP, and sentry-sdk envelopes to a DSN at it."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
import zlib

import httpx
import pytest

from omnidrill.observe.intake.client import IntakeClient
from omnidrill.observe.intake.server import ThreadedIntake


def _dd_config(url: str, compress: bool = True):
    from datadog_api_client import Configuration

    cfg = Configuration(api_key={"apiKeyAuth": "any-key-the-intake-takes"}, compress=compress)
    cfg.host = url
    return cfg


@pytest.mark.parametrize("compress", [True, False])
def test_submit_metrics_v2_through_the_real_client(intake: ThreadedIntake, compress: bool) -> None:
    from datadog_api_client import ApiClient
    from datadog_api_client.v2.api.metrics_api import MetricsApi
    from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
    from datadog_api_client.v2.model.metric_payload import MetricPayload
    from datadog_api_client.v2.model.metric_point import MetricPoint
    from datadog_api_client.v2.model.metric_resource import MetricResource
    from datadog_api_client.v2.model.metric_series import MetricSeries

    now = int(time.time())
    body = MetricPayload(
        series=[
            MetricSeries(
                metric="omnihub.agent.requests",
                type=MetricIntakeType.COUNT,
                points=[
                    MetricPoint(timestamp=now - 1, value=3.0),
                    MetricPoint(timestamp=now, value=2),
                ],
                tags=["function:wallet_balance", "status:error", "code:KILL_SWITCH"],
                resources=[MetricResource(name="fn-1", type="host")],
            ),
            MetricSeries(
                metric="omnihub.emergency.kill_switch",
                type=MetricIntakeType.GAUGE,
                points=[MetricPoint(timestamp=now, value=1.0)],
                tags=["source:table"],
            ),
        ]
    )
    with ApiClient(_dd_config(intake.url, compress)) as api:
        resp = MetricsApi(api).submit_metrics(body=body)
    assert resp.to_dict() == {"errors": []}
    rows = IntakeClient(intake.url).new_points()
    got = {(r.metric, r.type, r.ts, r.value) for r in rows}
    assert got == {
        ("omnihub.agent.requests", "count", now - 1, 3.0),
        ("omnihub.agent.requests", "count", now, 2.0),
        ("omnihub.emergency.kill_switch", "gauge", now, 1.0),
    }
    req = next(r for r in rows if r.metric == "omnihub.agent.requests")
    assert set(req.tags) == {
        "function:wallet_balance",
        "status:error",
        "code:KILL_SWITCH",
        "host:fn-1",
    }


def test_distribution_points_through_the_real_client(intake: ThreadedIntake) -> None:
    from datadog_api_client import ApiClient
    from datadog_api_client.v1.api.metrics_api import MetricsApi
    from datadog_api_client.v1.model.distribution_point import DistributionPoint
    from datadog_api_client.v1.model.distribution_points_payload import DistributionPointsPayload
    from datadog_api_client.v1.model.distribution_points_series import DistributionPointsSeries

    now = float(int(time.time()))
    body = DistributionPointsPayload(
        series=[
            DistributionPointsSeries(
                metric="omnihub.agent.duration",
                points=[DistributionPoint([now, [12.5, 40.0, 900.0]])],
                tags=["function:omnilink_agent", "status:success"],
            )
        ]
    )
    with ApiClient(_dd_config(intake.url)) as api:
        MetricsApi(api).submit_distribution_points(body=body)
    (row,) = IntakeClient(intake.url).new_points()
    assert (row.metric, row.type, row.ts, row.value) == (
        "omnihub.agent.duration",
        "distribution",
        now,
        (12.5, 40.0, 900.0),
    )


def test_v1_series_gzip_and_deflate_bodies(intake: ThreadedIntake) -> None:
    now = int(time.time())
    doc = {
        "series": [
            {
                "metric": "omnihub.dlq.depth",
                "type": "gauge",
                "points": [[now, 4]],
                "tags": ["queue:trades"],
                "host": "h1",
            }
        ]
    }
    raw = json.dumps(doc).encode()
    for enc, body in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        r = httpx.post(
            f"{intake.url}/api/v1/series",
            content=body,
            headers={"DD-API-KEY": "k", "Content-Encoding": enc},
        )
        assert r.status_code == 202, r.text
    rows = IntakeClient(intake.url).new_points()
    assert [(r.metric, r.value, set(r.tags)) for r in rows] == [
        ("omnihub.dlq.depth", 4.0, {"queue:trades", "host:h1"})
    ] * 2


def test_dogstatsd_datagrams(intake: ThreadedIntake) -> None:
    port = intake.server.statsd_port
    lines = [
        b"omnihub.ratelimit.rejected:1|c|@0.5|#function:execute_trade",
        b"omnihub.emergency.safe_mode:1|g|#source:table\nomnihub.agent.duration:12|d|#function:x",
        b"omnihub.rpc.requests:3|c|#provider:primary,outcome:ok|T1700000000",
        b"not a metric line",
        b"users.seen:alice|s",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for datagram in lines:
            s.sendto(datagram, ("127.0.0.1", port))
    client = IntakeClient(intake.url)
    rows = []
    deadline = time.monotonic() + 5
    while len(rows) < 3 and time.monotonic() < deadline:
        rows += client.new_points()
        time.sleep(0.05)
    got = {(r.metric, r.type, r.value, r.tags) for r in rows}
    assert got == {
        ("omnihub.ratelimit.rejected", "count", 2.0, ("function:execute_trade",)),
        ("omnihub.emergency.safe_mode", "gauge", 1.0, ("source:table",)),
        ("omnihub.agent.duration", "distribution", 12.0, ("function:x",)),
    }, "a point more than an hour old (T1700000000) is dropped, as Datadog drops it"
    stats = client.stats()
    assert stats["counts"]["points_dropped"] == 1
    assert any("not a metric line" in p for p in stats["problems"])


def test_refusals_name_the_field_and_what_was_expected(intake: ThreadedIntake) -> None:
    bad = {"series": [{"metric": "m", "type": 3, "points": [{"timestamp": "now", "value": 1}]}]}
    r = httpx.post(f"{intake.url}/api/v2/series", json=bad, headers={"DD-API-KEY": "k"})
    assert r.status_code == 400
    assert r.json() == {
        "errors": ["series[0].points[0].timestamp: expected integer seconds, found 'now'"]
    }
    r = httpx.post(f"{intake.url}/api/v2/series", json={"series": []})
    assert r.status_code == 403, "Datadog refuses a payload without an API key"
    r = httpx.post(
        f"{intake.url}/api/v2/series",
        content=b"\x00garbage",
        headers={"DD-API-KEY": "k", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 400 and "not valid gzip" in r.json()["errors"][0]


SENTRY_SCRIPT = """
import sys, sentry_sdk
sentry_sdk.init(dsn=sys.argv[1], default_integrations=False)
with sentry_sdk.new_scope() as scope:
    scope.set_tag("trace_id", "trace-abc-123")
    scope.set_tag("code", "RPC_UNAVAILABLE")
    sentry_sdk.capture_message("RPC_UNAVAILABLE: both providers down", level="error")
try:
    raise RuntimeError("boom")
except RuntimeError as exc:
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("trace_id", "trace-def-456")
        sentry_sdk.capture_exception(exc)
sentry_sdk.flush(timeout=5)
"""


def test_sentry_sdk_envelopes_to_a_dsn_at_the_intake(intake: ThreadedIntake) -> None:
    # its own process: sentry_sdk.init is global to a process
    dsn = intake.dsn("publickey", "7")
    subprocess.run([sys.executable, "-c", SENTRY_SCRIPT, dsn], check=True, timeout=60)
    events = IntakeClient(intake.url).new_events()
    by_trace = {e["tags"].get("trace_id"): e for e in events}
    assert set(by_trace) == {"trace-abc-123", "trace-def-456"}
    msg = by_trace["trace-abc-123"]
    assert msg["project"] == "7" and msg["level"] == "error"
    assert msg["tags"]["code"] == "RPC_UNAVAILABLE"
    exc = by_trace["trace-def-456"]["event"]["exception"]["values"][0]
    assert exc["type"] == "RuntimeError"


def test_reads_are_incremental_and_survive_a_restart(intake: ThreadedIntake) -> None:
    now = int(time.time())
    url = intake.url

    def send(value: float) -> None:
        doc = {
            "series": [{"metric": "m", "type": 3, "points": [{"timestamp": now, "value": value}]}]
        }
        r = httpx.post(f"{url}/api/v2/series", json=doc, headers={"DD-API-KEY": "k"})
        assert r.status_code == 202

    client = IntakeClient(intake.url)
    send(1)
    assert [r.value for r in client.new_points()] == [1.0]
    assert client.new_points() == []
    send(2)
    send(3)
    assert [r.value for r in client.new_points()] == [2.0, 3.0]
    client.skip_to_now()
    send(4)
    assert [r.value for r in client.new_points()] == [4.0]
    httpx.delete(f"{url}/intake/v1/data")
    send(5)
    assert [r.value for r in client.new_points()] == [5.0]
    intake.stop()  # a new intake on the same port numbers its points from 1 again
    again = ThreadedIntake(port=intake.server.port).start()
    try:
        send(6)
        assert [r.value for r in client.new_points()] == [6.0]
    finally:
        again.stop()


def test_omnidrill_intake_command_serves_until_sigterm() -> None:
    import re
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "omnidrill.cli", "intake", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(
            r"listening on (http://127\.0\.0\.1:(\d+)) \(DogStatsD on udp [\d.]+:(\d+)", line
        )
        assert m, line
        url = m.group(1)
        assert m.group(2) == m.group(3), "DogStatsD listens on the HTTP port's number"
        doc = {
            "series": [
                {"metric": "m", "type": 1, "points": [{"timestamp": int(time.time()), "value": 1}]}
            ]
        }
        assert (
            httpx.post(f"{url}/api/v2/series", json=doc, headers={"DD-API-KEY": "k"}).status_code
            == 202
        )
        assert [r.metric for r in IntakeClient(url).new_points()] == ["m"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
