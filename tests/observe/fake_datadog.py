"""A local stand-in for the Datadog API: real HTTP on 127.0.0.1, Datadog's wire format.

It refuses what Datadog refuses (bad keys, missing fields, wrong types, unknown monitor
types, thresholds that differ from the query) and adds what Datadog adds (ids, timestamps,
creator, overall_state, option defaults), so plan's normalisation meets real differences.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from datadog_api_client.v1.model.monitor_type import MonitorType
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omnidrill.netutil import free_port, wait_for_port

from .fake_metrics import MetricStore, QueryError

MONITOR_TYPES = {str(v) for v in MonitorType.allowed_values}
WIDGET_REQUIRES = {
    "timeseries": ["requests"],
    "query_value": ["requests"],
    "toplist": ["requests"],
    "note": ["content"],
    "group": ["layout_type", "widgets"],
    "slo": ["view_type"],
    "manage_status": ["query"],
    "event_stream": ["query"],
    "free_text": ["text"],
}
CREATOR = {"email": "sre@example.com", "handle": "sre@example.com", "name": "SRE", "id": 42}
_THRESH = re.compile(r"(>=|<=|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")


class Refused(Exception):
    def __init__(self, status: int, *errors: str) -> None:
        self.status = status
        self.errors = list(errors)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Fault:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    path_prefix: str
    skip: int = 0  # matching requests to let through first


@dataclass
class FakeDatadog:
    """State of the fake org; start() serves it, `url` is what DD_SITE takes."""

    api_key: str = "fake-api-key-0123456789"
    app_key: str = "fake-app-key-9876543210"
    monitors: dict[int, dict[str, Any]] = field(default_factory=dict)
    slos: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    metrics: MetricStore = field(default_factory=MetricStore)  # series and distributions, queried
    downtimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    url: str = ""
    # Whether PUT /monitor replaces `options` or merges it is not documented: test both
    options_on_put: str = "replace"
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1_000_001))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    # --- control from tests -------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
        path_prefix: str = "/api",
        after: int = 0,
    ) -> None:
        """After `after` requests under path_prefix, answer the next `times` with `status`."""
        body = {"errors": errors or [f"fake error {status}"]}
        for i in range(times):
            self.faults.append(
                Fault(status, body, headers or {}, path_prefix, after if i == 0 else 0)
            )

    def start(self) -> FakeDatadog:
        port = free_port()
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for_port("127.0.0.1", port, timeout=10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def sdk_env(self) -> dict[str, str]:
        """DD_* variables pointing the real SDK at this fake, with quick back-off."""
        return {
            "DD_API_KEY": self.api_key,
            "DD_APP_KEY": self.app_key,
            "DD_SITE": self.url,
            "OMNIDRILL_DD_BACKOFF_S": "0.01",
        }

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- HTTP ----------------------------------------------------------------

    def app(self) -> Starlette:
        r = self._route
        return Starlette(
            routes=[
                Route("/api/v1/monitor", r(self.list_monitors), methods=["GET"]),
                Route("/api/v1/monitor", r(self.create_monitor), methods=["POST"]),
                Route("/api/v1/monitor/validate", r(self.validate_monitor), methods=["POST"]),
                Route("/api/v1/monitor/{id:int}", r(self.get_monitor), methods=["GET"]),
                Route("/api/v1/monitor/{id:int}", r(self.update_monitor), methods=["PUT"]),
                Route("/api/v1/monitor/{id:int}", r(self.delete_monitor), methods=["DELETE"]),
                Route("/api/v1/slo", r(self.list_slos), methods=["GET"]),
                Route("/api/v1/slo", r(self.create_slo), methods=["POST"]),
                Route("/api/v1/slo/{id}", r(self.get_slo), methods=["GET"]),
                Route("/api/v1/slo/{id}", r(self.update_slo), methods=["PUT"]),
                Route("/api/v1/slo/{id}", r(self.delete_slo), methods=["DELETE"]),
                Route("/api/v1/dashboard", r(self.list_dashboards), methods=["GET"]),
                Route("/api/v1/dashboard", r(self.create_dashboard), methods=["POST"]),
                Route("/api/v1/dashboard/{id}", r(self.get_dashboard), methods=["GET"]),
                Route("/api/v1/dashboard/{id}", r(self.update_dashboard), methods=["PUT"]),
                Route("/api/v1/dashboard/{id}", r(self.delete_dashboard), methods=["DELETE"]),
                Route("/api/v1/events", r(self.create_event, app_key=False), methods=["POST"]),
                Route("/api/v2/series", r(self.submit_series, app_key=False), methods=["POST"]),
                Route(
                    "/api/v1/distribution_points",
                    r(self.submit_distribution_points, app_key=False),
                    methods=["POST"],
                ),
                Route("/api/v1/query", r(self.query_metrics), methods=["GET"]),
                Route("/api/v2/downtime", r(self.create_downtime), methods=["POST"]),
                Route("/api/v2/downtime/{id}", r(self.get_downtime), methods=["GET"]),
                Route("/api/v2/downtime/{id}", r(self.cancel_downtime), methods=["DELETE"]),
                Route("/api/v2/downtime/{id}", r(self.update_downtime), methods=["PATCH"]),
            ]
        )

    def _route(self, handler: Any, *, app_key: bool = True) -> Any:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            enc = request.headers.get("content-encoding", "")
            if enc == "gzip":
                raw = gzip.decompress(raw)
            elif enc == "deflate":
                raw = zlib.decompress(raw)
            status = 500
            try:
                with self._lock:
                    fault = next(
                        (f for f in self.faults if request.url.path.startswith(f.path_prefix)),
                        None,
                    )
                    if fault is not None and fault.skip > 0:
                        fault.skip -= 1
                        fault = None
                    if fault is not None:
                        self.faults.remove(fault)
                        status = fault.status
                        return JSONResponse(fault.body, fault.status, headers=fault.headers)
                    if request.headers.get("dd-api-key") != self.api_key:
                        raise Refused(403, "Forbidden")
                    if app_key and request.headers.get("dd-application-key") != self.app_key:
                        raise Refused(403, "Forbidden")
                    body: Any = None
                    if raw:
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            raise Refused(400, "Invalid JSON in request body") from None
                    params = dict(request.path_params)
                    status, payload = handler(body, params, dict(request.query_params))
            except Refused as exc:
                status = exc.status
                return JSONResponse({"errors": exc.errors}, exc.status)
            finally:
                self.requests.append((request.method, request.url.path, status))
            if payload is None:
                return Response(status_code=status)
            return JSONResponse(payload, status)

        return endpoint

    # --- monitors ------------------------------------------------------------

    def _check_monitor(self, body: Any, *, create: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refused(400, "Invalid monitor: the body must be a JSON object")
        for name in ("type", "query") if create else ():
            if name not in body:
                raise Refused(400, f"Missing required field: '{name}'")
        for name in ("name", "message", "query", "type"):
            if name in body and not isinstance(body[name], str):
                raise Refused(400, f"Invalid value for '{name}': expected a string")
        if "type" in body and body["type"] not in MONITOR_TYPES:
            raise Refused(400, f"Invalid monitor type: {body['type']}")
        if "tags" in body and not (
            isinstance(body["tags"], list) and all(isinstance(t, str) for t in body["tags"])
        ):
            raise Refused(400, "Invalid value for 'tags': expected a list of strings")
        prio = body.get("priority")
        if prio is not None and (not isinstance(prio, int) or not 1 <= prio <= 5):
            raise Refused(400, "Invalid priority: must be an integer from 1 to 5")
        options = body.get("options", {})
        if not isinstance(options, dict):
            raise Refused(400, "Invalid value for 'options': expected an object")
        th = options.get("thresholds") or {}
        if not isinstance(th, dict):
            raise Refused(400, "Invalid value for 'thresholds': expected an object")
        for k, v in th.items():
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
                raise Refused(400, f"Invalid value for threshold '{k}': expected a number")
        if "warning" in th and "critical" not in th:
            raise Refused(400, "Alert status is required.")
        m = _THRESH.search(body.get("query", ""))
        if m and "critical" in th and float(th["critical"]) != float(m.group(2)):
            raise Refused(
                400,
                f"Alert threshold ({th['critical']}) does not match that used in the query "
                f"({m.group(2)})",
            )
        timeout = options.get("timeout_h")
        if timeout is not None and not 0 <= timeout <= 24:
            raise Refused(400, "timeout_h must be between 0 and 24")
        return body

    @staticmethod
    def _monitor_defaults(mon: dict[str, Any]) -> None:
        opts = mon.setdefault("options", {})
        opts.setdefault("notify_audit", False)
        opts.setdefault("include_tags", True)
        opts.setdefault("new_host_delay", 300)
        opts.setdefault("notify_no_data", False)
        opts.setdefault("require_full_window", False)
        opts.setdefault("silenced", {})
        opts.setdefault("locked", False)
        if opts.get("notify_no_data") and not opts.get("no_data_timeframe"):
            w = re.search(r"last_(\d+)([mhd])", mon["query"])
            mins = int(w.group(1)) * {"m": 1, "h": 60, "d": 1440}[w.group(2)] if w else 5
            opts["no_data_timeframe"] = 2 * mins
        opts.setdefault("no_data_timeframe", None)
        opts.setdefault("renotify_interval", None)
        mon["multi"] = " by " in mon["query"]
        # Datadog stores metric monitors as "query alert" whatever they were created as
        if mon["type"] == "metric alert":
            mon["type"] = "query alert"
        mon["name"] = mon.get("name", "").strip()
        mon["message"] = mon.get("message", "").strip()

    def create_monitor(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        body = self._check_monitor(body, create=True)
        mon = {k: v for k, v in body.items() if k not in ("id", "created", "creator")}
        mon.setdefault("tags", [])
        mon.setdefault("priority", None)
        mon.setdefault("message", "")
        mid = next(self._ids)
        mon.update(
            id=mid,
            created=_now(),
            created_at=int(time.time() * 1000),
            modified=_now(),
            creator=dict(CREATOR),
            deleted=None,
            org_id=321,
            overall_state="No Data",
            overall_state_modified=None,
            restricted_roles=None,
            draft_status="published",
        )
        self._monitor_defaults(mon)
        self.monitors[mid] = mon
        return 200, mon

    def validate_monitor(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        self._check_monitor(body, create=True)
        return 200, {}

    def list_monitors(self, _b: Any, _p: dict, q: dict) -> tuple[int, Any]:
        want = [t for t in (q.get("monitor_tags") or "").split(",") if t]
        page, size = int(q.get("page", 0)), int(q.get("page_size", 100))
        hits = [m for m in self.monitors.values() if all(t in m["tags"] for t in want)]
        return 200, hits[page * size : (page + 1) * size]

    def _monitor(self, p: dict) -> dict[str, Any]:
        mon = self.monitors.get(p["id"])
        if mon is None:
            raise Refused(404, "Monitor not found")
        return mon

    def get_monitor(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        return 200, self._monitor(p)

    def update_monitor(self, body: Any, p: dict, _q: dict) -> tuple[int, Any]:
        mon = self._monitor(p)
        merged = {**mon, **(body or {})}
        self._check_monitor(merged, create=True)
        for k, v in (body or {}).items():
            if k == "options" and self.options_on_put == "merge":
                mon["options"] = {**mon.get("options", {}), **v}
            elif k not in ("id", "created", "creator", "overall_state", "modified"):
                mon[k] = v
        mon["modified"] = _now()
        self._monitor_defaults(mon)
        return 200, mon

    def delete_monitor(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        self._monitor(p)
        del self.monitors[p["id"]]
        return 200, {"deleted_monitor_id": p["id"]}

    # --- SLOs ----------------------------------------------------------------

    def _check_slo(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refused(400, "Invalid SLO: the body must be a JSON object")
        for name in ("name", "type", "thresholds"):
            if name not in body:
                raise Refused(400, f"Missing required field: '{name}'")
        if body["type"] not in ("metric", "monitor", "time_slice"):
            raise Refused(400, f"Invalid SLO type: {body['type']}")
        ths = body["thresholds"]
        if not isinstance(ths, list) or not ths:
            raise Refused(400, "At least one threshold is required")
        for t in ths:
            if t.get("timeframe") not in ("7d", "30d", "90d", "custom"):
                raise Refused(400, f"Invalid timeframe: {t.get('timeframe')}")
            if not isinstance(t.get("target"), int | float) or not 0 < t["target"] < 100:
                raise Refused(400, "Threshold target must be a number between 0 and 100")
        if body["type"] == "metric":
            q = body.get("query") or {}
            if not q.get("numerator") or not q.get("denominator"):
                raise Refused(400, "A metric SLO needs query.numerator and query.denominator")
        if body["type"] == "time_slice" and "time_slice" not in (
            body.get("sli_specification") or {}
        ):
            raise Refused(400, "A time slice SLO needs sli_specification.time_slice")
        return body

    def _slo_fields(self, slo: dict[str, Any]) -> None:
        for t in slo["thresholds"]:
            t["target_display"] = f"{t['target']:.2f}"
            if "warning" in t:
                t["warning_display"] = f"{t['warning']:.2f}"
        first = slo["thresholds"][0]
        slo["timeframe"] = first["timeframe"]
        slo["target_threshold"] = first["target"]
        if "warning" in first:
            slo["warning_threshold"] = first["warning"]
        slo.setdefault("monitor_ids", [])
        slo.setdefault("monitor_tags", [])
        slo.setdefault("tags", [])
        slo["modified_at"] = int(time.time())

    def create_slo(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        slo = dict(self._check_slo(body))
        slo.update(id=uuid.uuid4().hex, created_at=int(time.time()), creator=dict(CREATOR))
        self._slo_fields(slo)
        self.slos[slo["id"]] = slo
        return 200, {"data": [slo], "errors": None}

    def list_slos(self, _b: Any, _p: dict, q: dict) -> tuple[int, Any]:
        want = q.get("tags_query")
        hits = [s for s in self.slos.values() if not want or want in s["tags"]]
        off, lim = int(q.get("offset", 0)), int(q.get("limit", 1000))
        meta = {"page": {"total_count": len(self.slos), "total_filtered_count": len(hits)}}
        return 200, {"data": hits[off : off + lim], "errors": [], "metadata": meta}

    def _slo(self, p: dict) -> dict[str, Any]:
        if p["id"] not in self.slos:
            raise Refused(404, "slo not found")
        return self.slos[p["id"]]

    def get_slo(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        return 200, {"data": self._slo(p), "errors": []}

    def update_slo(self, body: Any, p: dict, _q: dict) -> tuple[int, Any]:
        old = self._slo(p)
        slo = dict(self._check_slo(body))
        for k in ("id", "created_at", "creator"):
            slo[k] = old[k]
        self._slo_fields(slo)
        self.slos[p["id"]] = slo
        return 200, {"data": [slo], "errors": []}

    def delete_slo(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        self._slo(p)
        used = [m["id"] for m in self.monitors.values() if p["id"] in m.get("query", "")]
        if used:
            raise Refused(409, f"slo {p['id']} is referenced by monitors {used}")
        del self.slos[p["id"]]
        return 200, {"data": [p["id"]], "errors": {}}

    # --- dashboards ----------------------------------------------------------

    def _check_widgets(self, widgets: Any, where: str) -> None:
        if not isinstance(widgets, list):
            raise Refused(400, f"Invalid {where}: widgets must be a list")
        for i, w in enumerate(widgets):
            d = w.get("definition") if isinstance(w, dict) else None
            if not isinstance(d, dict):
                raise Refused(400, f"Invalid {where}[{i}]: definition is required")
            kind = d.get("type")
            if kind not in WIDGET_REQUIRES:
                raise Refused(400, f"Invalid widget definition type: {kind}")
            for req in WIDGET_REQUIRES[kind]:
                if req not in d:
                    raise Refused(400, f"Invalid {where}[{i}]: '{req}' is required for {kind}")
            if kind == "group":
                self._check_widgets(d["widgets"], f"{where}[{i}].widgets")

    def _check_dashboard(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refused(400, "Invalid dashboard: the body must be a JSON object")
        for name in ("title", "layout_type", "widgets"):
            if name not in body:
                raise Refused(400, f"Missing required field: '{name}'")
        if body["layout_type"] not in ("ordered", "free"):
            raise Refused(400, f"Invalid layout_type: {body['layout_type']}")
        bad_tags = [t for t in body.get("tags") or [] if not t.startswith("team:")]
        if bad_tags:
            raise Refused(400, f"Invalid dashboard tags {bad_tags}: only team: tags are allowed")
        self._check_widgets(body["widgets"], "widgets")
        return body

    def _widget_ids(self, widgets: list[dict[str, Any]]) -> None:
        for w in widgets:
            w.setdefault("id", next(self._ids))
            if w["definition"]["type"] == "group":
                self._widget_ids(w["definition"]["widgets"])

    def _store_dashboard(self, dash: dict[str, Any], did: str, created: str) -> dict[str, Any]:
        dash = json.loads(json.dumps(dash))
        dash.update(
            id=did,
            url=f"/dashboard/{did}/{re.sub('[^a-z0-9]+', '-', dash['title'].lower())}",
            author_handle=CREATOR["handle"],
            author_name=CREATOR["name"],
            created_at=created,
            modified_at=_now(),
            is_read_only=False,
            restricted_roles=[],
        )
        if dash["layout_type"] == "ordered":
            dash.setdefault("reflow_type", "auto")
        dash.setdefault("template_variables", [])
        dash.setdefault("notify_list", [])
        dash.setdefault("description", None)
        self._widget_ids(dash["widgets"])
        self.dashboards[did] = dash
        return dash

    def create_dashboard(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        body = self._check_dashboard(body)
        n = next(self._ids)
        did = f"{n % 1000:03d}-{n // 1000 % 1000:03d}-abc"
        return 200, self._store_dashboard(body, did, _now())

    def list_dashboards(self, _b: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        keys = ("id", "title", "description", "layout_type", "url", "is_read_only", "created_at")
        out = [
            {
                **{k: d.get(k) for k in keys},
                "modified_at": d["modified_at"],
                "author_handle": d["author_handle"],
                "deleted_at": None,
            }
            for d in self.dashboards.values()
        ]
        return 200, {"dashboards": out}

    def _dashboard(self, p: dict) -> dict[str, Any]:
        if p["id"] not in self.dashboards:
            raise Refused(404, "Dashboard not found")
        return self.dashboards[p["id"]]

    def get_dashboard(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        return 200, self._dashboard(p)

    def update_dashboard(self, body: Any, p: dict, _q: dict) -> tuple[int, Any]:
        old = self._dashboard(p)
        return 200, self._store_dashboard(self._check_dashboard(body), p["id"], old["created_at"])

    def delete_dashboard(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        self._dashboard(p)
        del self.dashboards[p["id"]]
        return 200, {"deleted_dashboard_id": p["id"]}

    # --- events, metrics, downtimes -------------------------------------------

    def create_event(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("title") or "text" not in body:
            raise Refused(400, "Event title and text are required")
        if len(body["title"]) > 100 or len(body["text"]) > 4000:
            raise Refused(400, "Event title is limited to 100 and text to 4000 characters")
        alert = body.get("alert_type", "info")
        if alert not in (
            "error",
            "warning",
            "info",
            "success",
            "user_update",
            "recommendation",
            "snapshot",
        ):
            raise Refused(400, f"Invalid alert_type: {alert}")
        eid = next(self._ids)
        event = {**body, "id": eid, "id_str": str(eid), "url": f"/event/event?id={eid}"}
        event.setdefault("date_happened", int(time.time()))
        self.events.append(event)
        return 202, {"status": "ok", "event": event}

    def submit_series(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("series"), list):
            raise Refused(400, "Payload must have a 'series' list")
        for s in body["series"]:
            if not isinstance(s.get("metric"), str) or not isinstance(s.get("points"), list):
                raise Refused(400, "Each series needs 'metric' and 'points'")
            if s.get("type", 0) not in (0, 1, 2, 3):
                raise Refused(400, f"Invalid metric type {s.get('type')}")
            for pt in s["points"]:
                if not isinstance(pt.get("timestamp"), int) or not isinstance(
                    pt.get("value"), int | float
                ):
                    raise Refused(400, "Each point needs an integer timestamp and a number value")
        self.series.extend(body["series"])
        self.metrics.add_v2_series(body["series"])
        return 202, {"errors": []}

    def submit_distribution_points(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("series"), list):
            raise Refused(400, "Payload must have a 'series' list")
        for s in body["series"]:
            points = s.get("points")
            if not isinstance(s.get("metric"), str) or not isinstance(points, list):
                raise Refused(400, "Each series needs 'metric' and 'points'")
            for pt in points:
                ok = isinstance(pt, list) and len(pt) == 2 and isinstance(pt[1], list)
                if not ok or not all(isinstance(v, int | float) for v in [pt[0], *pt[1]]):
                    raise Refused(400, "Each point is [timestamp, [values...]]")
        self.metrics.add_distributions(body["series"])
        return 202, {"status": "ok"}

    def query_metrics(self, _b: Any, _p: dict, q: dict) -> tuple[int, Any]:
        try:
            start, end, query = int(q["from"]), int(q["to"]), q["query"]
        except (KeyError, ValueError):
            raise Refused(400, "from, to (seconds) and query are required") from None
        try:
            return 200, self.metrics.query(query, start, end)
        except QueryError as exc:
            raise Refused(400, str(exc)) from None

    def create_downtime(self, body: Any, _p: dict, _q: dict) -> tuple[int, Any]:
        data = (body or {}).get("data") or {}
        attrs = data.get("attributes") or {}
        if data.get("type") != "downtime":
            raise Refused(400, "data.type must be 'downtime'")
        if not attrs.get("scope"):
            raise Refused(400, "scope is required")
        ident = attrs.get("monitor_identifier") or {}
        if not ident.get("monitor_id") and not ident.get("monitor_tags"):
            raise Refused(400, "monitor_identifier needs monitor_id or monitor_tags")
        sched = attrs.get("schedule") or {}
        did = str(uuid.uuid4())
        rec = {
            **attrs,
            "schedule": {"start": sched.get("start") or _now(), "end": sched.get("end")},
            "status": "active",
            "created": _now(),
            "modified": _now(),
            "canceled": None,
            "display_timezone": attrs.get("display_timezone", "UTC"),
            "mute_first_recovery_notification": attrs.get(
                "mute_first_recovery_notification", False
            ),
        }
        self.downtimes[did] = rec
        return 200, {"data": {"type": "downtime", "id": did, "attributes": rec}}

    def get_downtime(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        if p["id"] not in self.downtimes:
            raise Refused(404, "Downtime not found")
        rec = self.downtimes[p["id"]]
        return 200, {"data": {"type": "downtime", "id": p["id"], "attributes": rec}}

    def update_downtime(self, body: Any, p: dict, _q: dict) -> tuple[int, Any]:
        """PATCH /api/v2/downtime/{id}: the attributes given replace those stored."""
        rec = self.downtimes.get(p["id"])
        if rec is None:
            raise Refused(404, "Downtime not found")
        data = (body or {}).get("data") or {}
        if data.get("type") != "downtime" or data.get("id") != p["id"]:
            raise Refused(400, "data.type must be 'downtime' and data.id the downtime's id")
        attrs = dict(data.get("attributes") or {})
        if "schedule" in attrs:
            attrs["schedule"] = {**rec["schedule"], **(attrs["schedule"] or {})}
        rec.update(attrs, modified=_now())
        return 200, {"data": {"type": "downtime", "id": p["id"], "attributes": rec}}

    def cancel_downtime(self, _b: Any, p: dict, _q: dict) -> tuple[int, Any]:
        rec = self.downtimes.get(p["id"])
        if rec is None:
            raise Refused(404, "Downtime not found")
        rec.update(status="canceled", canceled=_now(), modified=_now())
        return 204, None
