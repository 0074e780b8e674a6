"""Metrics and errors of CONTRACT section 7: JSON log lines always, and through the Datadog API
client and sentry-sdk when a DatadogSink and a DSN are given.

``omnidrill up`` points both at the intake it starts (its URL as DD_SITE, a DSN on it), so a
demo never writes into a real account by accident; ``--datadog`` and ``--sentry-dsn`` send to
the real services instead, ``--no-metrics`` nowhere.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

from omnidrill import secrets

Tags = Iterable[str]


class Telemetry:
    """Where the functions report: one JSON line per metric point and per error."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        datadog: DatadogSink | None = None,
        sentry: bool = False,
        instance: str = "",
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()
        self._datadog = datadog
        self._sentry = sentry
        self._instance = instance

    def _emit(self, line: dict[str, Any]) -> None:
        if self._instance:
            line["instance"] = self._instance
        text = secrets.scrub(json.dumps(line, separators=(",", ":"), default=str))
        with self._lock:
            try:
                self._stream.write(text + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed log must never fail a request

    def metric(self, kind: str, name: str, value: float, tags: Tags = ()) -> None:
        tag_list = sorted(tags)
        self._emit({"ts": round(time.time(), 3), kind: name, "value": value, "tags": tag_list})
        if self._datadog is not None:
            self._datadog.add(kind, name, value, tag_list)

    def count(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        self.metric("count", name, value, tags)

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        self.metric("gauge", name, value, tags)

    def distribution(self, name: str, value: float, tags: Tags = ()) -> None:
        self.metric("distribution", name, value, tags)

    def error(
        self,
        message: str,
        trace_id: str,
        code: str,
        exc: BaseException | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """One log line, and a Sentry event tagged with the trace id when Sentry is on."""
        line: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "error": message,
            "code": code,
            "trace_id": trace_id,
        }
        if exc is not None:
            line["exception"] = f"{type(exc).__name__}: {exc}"
        self._emit(line)
        if self._sentry:
            import sentry_sdk

            with sentry_sdk.new_scope() as scope:
                scope.set_tag("trace_id", trace_id)
                scope.set_tag("code", code)
                for k, v in (tags or {}).items():
                    scope.set_tag(k, v)
                if exc is not None:
                    sentry_sdk.capture_exception(exc)
                else:
                    sentry_sdk.capture_message(f"{code}: {message}", level="error")

    def close(self) -> None:
        if self._datadog is not None:
            self._datadog.close()
        if self._sentry:
            import sentry_sdk

            sentry_sdk.flush(timeout=2)


def scrub_event(event: dict[str, Any], hint: Any = None) -> dict[str, Any]:
    """Sentry before_send: every secret and credential-looking text leaves as ***."""
    return secrets.scrub_obj(event)


def init_sentry(dsn: str, environment: str = "omnidrill-local", transport: Any = None) -> None:
    """Turn Sentry on for this process; the DSN is registered as a secret first."""
    import sentry_sdk

    secrets.register(dsn)
    kwargs: dict[str, Any] = {}
    if transport is not None:
        kwargs["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        before_send=scrub_event,
        include_local_variables=False,
        default_integrations=False,
        **kwargs,
    )


class DatadogSink:
    """Submits points through datadog-api-client: counts and distributions every `interval_s`,
    every gauge at least as often (CONTRACT section 7: at least every 10 s) and at once when
    its value changes. Never from a request's own path: a thread of its own does the sending.
    """

    def __init__(
        self,
        api_key: str | None = None,
        site: str | None = None,
        host: str | None = None,
        interval_s: float = 1.0,
        base_tags: Tags = ("service:omnihub-local",),
        instance: str | None = None,
    ) -> None:
        from omnidrill.observe.ddclient import DatadogSettings, configuration

        if api_key is None:  # DD_API_KEY, read (and checked) as every Datadog user here reads it
            api_key = DatadogSettings.from_env(need_app_key=False).api_key
        site = host or site or os.environ.get("DD_SITE", "").strip() or "datadoghq.com"
        # the shared Configuration, so DD_SITE may also be a URL (a local intake)
        cfg = configuration(DatadogSettings(api_key=api_key, app_key=None, site=site))
        secrets.register(cfg.api_key["apiKeyAuth"])
        self._cfg = cfg
        self._base_tags = list(base_tags)
        self._instance = instance  # sent as the series' host, so instances never overwrite
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, tuple[str, ...]], float] = {}
        self._gauges: dict[tuple[str, tuple[str, ...]], float] = {}
        self._dists: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._interval = min(interval_s, 10.0)
        self.errors: list[str] = []
        self.flushes = 0
        self._thread = threading.Thread(target=self._loop, name="datadog-sink", daemon=True)
        self._thread.start()

    def add(self, kind: str, name: str, value: float, tags: list[str]) -> None:
        key = (name, tuple(tags))
        with self._lock:
            if kind == "count":
                self._counts[key] = self._counts.get(key, 0) + value
            elif kind == "gauge":
                if self._gauges.get(key) != value:
                    self._wake.set()  # a gauge that changes is sent at once
                self._gauges[key] = value
            else:
                self._dists.setdefault(key, []).append(value)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()

    def flush(self) -> None:
        """Submit what is buffered; a failure is kept in `errors`, never raised into requests."""
        from datadog_api_client import ApiClient
        from datadog_api_client.v1.api.metrics_api import MetricsApi as MetricsV1
        from datadog_api_client.v1.model.distribution_point import DistributionPoint
        from datadog_api_client.v1.model.distribution_points_payload import (
            DistributionPointsPayload,
        )
        from datadog_api_client.v1.model.distribution_points_series import (
            DistributionPointsSeries,
        )
        from datadog_api_client.v2.api.metrics_api import MetricsApi
        from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
        from datadog_api_client.v2.model.metric_payload import MetricPayload
        from datadog_api_client.v2.model.metric_point import MetricPoint
        from datadog_api_client.v2.model.metric_resource import MetricResource
        from datadog_api_client.v2.model.metric_series import MetricSeries

        with self._lock:
            counts, dists = self._counts, self._dists
            gauges = dict(self._gauges)  # gauges stay: each flush sends them again
            self._counts, self._dists = {}, {}
        now = int(time.time())
        resources = [MetricResource(name=self._instance, type="host")] if self._instance else []
        extra = {"resources": resources} if resources else {}
        series = [
            MetricSeries(
                metric=name,
                type=MetricIntakeType.COUNT,
                points=[MetricPoint(timestamp=now, value=float(v))],
                tags=[*self._base_tags, *tags],
                **extra,
            )
            for (name, tags), v in counts.items()
        ] + [
            MetricSeries(
                metric=name,
                type=MetricIntakeType.GAUGE,
                points=[MetricPoint(timestamp=now, value=float(v))],
                tags=[*self._base_tags, *tags],
                **extra,
            )
            for (name, tags), v in gauges.items()
        ]
        try:
            with ApiClient(self._cfg) as api:
                if series:
                    MetricsApi(api).submit_metrics(body=MetricPayload(series=series))
                if dists:
                    MetricsV1(api).submit_distribution_points(
                        body=DistributionPointsPayload(
                            series=[
                                DistributionPointsSeries(
                                    metric=name,
                                    points=[DistributionPoint([float(now), [float(x) for x in v]])],
                                    tags=[*self._base_tags, *tags],
                                    **({"host": self._instance} if self._instance else {}),
                                )
                                for (name, tags), v in dists.items()
                            ]
                        )
                    )
        except Exception as exc:  # the SaaS being down must not take the target down
            self.errors = [*self.errors[-9:], secrets.scrub(f"{type(exc).__name__}: {exc}")]
        self.flushes += 1

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()
