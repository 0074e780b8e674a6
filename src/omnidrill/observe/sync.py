"""Plan, apply and prune: make what is live in Datadog equal to the compiled YAML."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from datadog_api_client import ApiClient
from datadog_api_client.v1.api.dashboards_api import DashboardsApi
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v1.api.service_level_objectives_api import ServiceLevelObjectivesApi
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest
from datadog_api_client.v1.model.service_level_objective import ServiceLevelObjective
from datadog_api_client.v1.model.service_level_objective_request import (
    ServiceLevelObjectiveRequest,
)

from omnidrill.errors import UsageError
from omnidrill.observe.compile import (
    DASHBOARD_MARK_RE,
    ENV_TAG,
    ID_TAG,
    MANAGED_TAG,
    SLO_REF,
    SLO_REF_RE,
    Compiled,
    Desired,
    Kind,
)
from omnidrill.observe.ddclient import DatadogSettings, api_client, call, plain

Action = Literal["create", "update", "delete", "unchanged"]

# Fields Datadog computes; never ours to diff (terraform-provider-datadog strips the same).
_COMPUTED: dict[str, set[str]] = {
    "monitor": {
        "id",
        "created",
        "created_at",
        "creator",
        "deleted",
        "modified",
        "multi",
        "org_id",
        "overall_state",
        "overall_state_modified",
        "matching_downtimes",
        "draft_status",
        "restricted_roles",
        "restricted",
        "state",
        "classification",
        "assets",
    },
    "slo": {
        "id",
        "created_at",
        "modified_at",
        "creator",
        "monitor_ids",
        "monitor_tags",
        "groups",
        "target_threshold",
        "warning_threshold",
        "timeframe",
        "configured_alert_ids",
    },
    "dashboard": {
        "id",
        "author_handle",
        "author_name",
        "created_at",
        "modified_at",
        "url",
        "is_read_only",
        "restricted_roles",
        "tags",
    },
}
# Defaults Datadog fills in when a field is not sent: equal to these, they are no difference.
_DEFAULTS: dict[str, Any] = {
    "options.notify_audit": False,
    "options.include_tags": True,
    "options.new_host_delay": 300,
    "options.notify_no_data": False,
    "options.require_full_window": False,
    "options.renotify_interval": 0,
    "options.escalation_message": "",
    "options.locked": False,
    "options.evaluation_delay": 0,
    "options.timeout_h": 0,
    "reflow_type": "auto",
    "notify_list": [],
    "template_variables": [],
    "priority": None,
}
# Filled in by Datadog from other fields, whatever their value.
_DERIVED = {
    "options.no_data_timeframe",
    # muting is on-call's, not the YAML's: never diffed, and kept on update (see apply)
    "options.silenced",
    "thresholds[].target_display",
    "thresholds[].warning_display",
}


@dataclass
class FieldDiff:
    path: str
    live: Any
    wanted: Any

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.live)} -> {_show(self.wanted)}"


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # normalised to float for comparing; shown as written
    return json.dumps(value)


@dataclass
class Change:
    action: Action
    kind: Kind
    id: str
    live_id: str | None = None
    diffs: list[FieldDiff] = field(default_factory=list)
    desired: Desired | None = None
    live: dict[str, Any] | None = None


@dataclass
class Live:
    """Managed objects of one environment, by kind and YAML id."""

    objects: dict[Kind, dict[str, tuple[str, dict[str, Any]]]] = field(
        default_factory=lambda: {"monitor": {}, "slo": {}, "dashboard": {}}
    )
    # managed objects whose id tag repeats one already seen: duplicates to prune
    extras: list[tuple[Kind, str, str]] = field(default_factory=list)

    def slo_ids(self) -> dict[str, str]:
        return {k: v[0] for k, v in self.objects["slo"].items()}

    def add(self, kind: Kind, yaml_id: str, live_id: str, body: dict[str, Any]) -> None:
        if yaml_id in self.objects[kind]:
            self.extras.append((kind, yaml_id, live_id))
        else:
            self.objects[kind][yaml_id] = (live_id, body)


def _tag_value(tags: list[str], key: str) -> str | None:
    for t in tags or []:
        if t.startswith(f"{key}:"):
            return t.split(":", 1)[1]
    return None


def _managed_id(tags: list[str] | None, env: str) -> str | None:
    """The YAML id of an object tagged as ours in `env`; None for anything else."""
    tags = tags or []
    if MANAGED_TAG in tags and _tag_value(tags, ENV_TAG) == env:
        return _tag_value(tags, ID_TAG)
    return None


def fetch_live(settings: DatadogSettings, client: ApiClient, env: str, kinds: set[Kind]) -> Live:
    """Read every object omnidrill manages in `env` (tagged or marked as ours)."""
    live = Live()
    if "monitor" in kinds:
        api = MonitorsApi(client)
        page = 0
        while True:
            batch = call(
                settings,
                "listing monitors",
                api.list_monitors,
                monitor_tags=MANAGED_TAG,
                page=page,
                page_size=1000,
            )
            for m in batch:
                d = plain(m)
                if yid := _managed_id(d.get("tags"), env):
                    live.add("monitor", yid, str(d["id"]), d)
            if len(batch) < 1000:
                break
            page += 1
    if "slo" in kinds:
        api_s = ServiceLevelObjectivesApi(client)
        offset = 0
        while True:
            resp = call(
                settings,
                "listing SLOs",
                api_s.list_slos,
                tags_query=MANAGED_TAG,
                limit=1000,
                offset=offset,
            )
            data = plain(resp).get("data") or []
            for s in data:
                if yid := _managed_id(s.get("tags"), env):
                    live.add("slo", yid, str(s["id"]), s)
            if len(data) < 1000:
                break
            offset += 1000
    if "dashboard" in kinds:
        api_d = DashboardsApi(client)
        resp = call(settings, "listing dashboards", api_d.list_dashboards)
        for summary in plain(resp).get("dashboards") or []:
            m = DASHBOARD_MARK_RE.search(summary.get("description") or "")
            if m and m.group(2) == env:
                full = call(
                    settings,
                    f"reading dashboard {summary['id']}",
                    api_d.get_dashboard,
                    summary["id"],
                )
                live.add("dashboard", m.group(1), str(summary["id"]), plain(full))
    return live


def resolve_refs(body: dict[str, Any], slo_ids: dict[str, str]) -> dict[str, Any]:
    """Replace ${slo:<yaml id>} with live SLO ids where the SLO exists."""
    text = json.dumps(body)
    text = SLO_REF_RE.sub(lambda m: slo_ids.get(m.group(1), m.group(0)), text)
    return json.loads(text)


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _normalize(kind: Kind, value: Any, wanted: Any, path: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if path == "" and k in _COMPUTED[kind]:
                continue
            if kind == "dashboard" and k == "id":  # widget ids are Datadog's
                continue
            in_wanted = isinstance(wanted, dict) and k in wanted
            if not in_wanted:
                if sub in _DERIVED or v in (None, [], {}, ""):
                    continue
                if sub in _DEFAULTS and _num(_DEFAULTS[sub]) == _num(v):
                    continue
            out[k] = _normalize(kind, v, wanted.get(k) if isinstance(wanted, dict) else None, sub)
        return out
    if isinstance(value, list):
        if path.endswith("tags"):
            return sorted(value)
        w = wanted if isinstance(wanted, list) else []
        return [
            _normalize(kind, v, w[i] if i < len(w) else None, f"{path}[]")
            for i, v in enumerate(value)
        ]
    if isinstance(value, str):
        if kind == "monitor" and path == "type" and value == "metric alert":
            return "query alert"  # Datadog stores metric monitors as query alerts
        return value.strip()  # Datadog trims names and messages
    return _num(value)


def normalize(kind: Kind, live: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """`live` without what Datadog computes or defaults, in the shape of `wanted`."""
    return _normalize(kind, live, wanted, "")  # type: ignore[no-any-return]


def _wanted_norm(kind: Kind, wanted: dict[str, Any]) -> dict[str, Any]:
    return _normalize(kind, wanted, wanted, "")  # type: ignore[no-any-return]


def diff(live: Any, wanted: Any, path: str = "") -> list[FieldDiff]:
    """Field-level differences, deepest first-differing path per field."""
    if isinstance(live, dict) and isinstance(wanted, dict):
        out: list[FieldDiff] = []
        for k in sorted(set(live) | set(wanted)):
            sub = f"{path}.{k}" if path else k
            if k not in live:
                out.append(FieldDiff(sub, None, wanted[k]))
            elif k not in wanted:
                out.append(FieldDiff(sub, live[k], None))
            else:
                out += diff(live[k], wanted[k], sub)
        return out
    if isinstance(live, list) and isinstance(wanted, list) and len(live) == len(wanted):
        out = []
        for i, (a, b) in enumerate(zip(live, wanted, strict=True)):
            out += diff(a, b, f"{path}[{i}]")
        return out
    return [] if live == wanted else [FieldDiff(path, live, wanted)]


def plan(compiled: Compiled, live: Live, kinds: set[Kind]) -> list[Change]:
    """What apply would do, object by object; `delete` entries are what prune would do."""
    slo_ids = live.slo_ids()
    changes: list[Change] = []
    wanted_by_kind: dict[Kind, list[Desired]] = {
        "slo": compiled.slos,
        "monitor": compiled.monitors,
        "dashboard": compiled.dashboards,
    }
    for kind in ("slo", "monitor", "dashboard"):
        if kind not in kinds:
            continue
        seen = set()
        for d in wanted_by_kind[kind]:
            seen.add(d.id)
            body = resolve_refs(d.body, slo_ids)
            if d.id not in live.objects[kind]:
                changes.append(Change("create", kind, d.id, None, [], d))
                continue
            live_id, live_body = live.objects[kind][d.id]
            w = _wanted_norm(kind, body)
            diffs = diff(normalize(kind, live_body, w), w)
            changes.append(
                Change("update" if diffs else "unchanged", kind, d.id, live_id, diffs, d, live_body)
            )
        for yid, (live_id, _) in live.objects[kind].items():
            if yid not in seen:
                changes.append(Change("delete", kind, yid, live_id))
        for k, yid, live_id in live.extras:
            if k == kind:
                changes.append(Change("delete", kind, yid, live_id))
    return changes


def apply(
    settings: DatadogSettings,
    client: ApiClient,
    compiled: Compiled,
    live: Live,
    changes: list[Change],
) -> list[Change]:
    """Create and update (never delete); SLOs first, since monitors and dashboards name them."""
    done = []
    slo_ids = live.slo_ids()
    coming = {c.id for c in changes if c.kind == "slo" and c.action == "create"}
    # refuse before changing anything when an object names an SLO that will not exist
    for ch in changes:
        if ch.desired is None or ch.action not in ("create", "update"):
            continue
        names = set(SLO_REF_RE.findall(json.dumps(ch.desired.body)))
        missing = sorted(names - set(slo_ids) - coming)
        if missing:
            raise UsageError(
                f"{ch.kind} {ch.id} names SLO(s) {missing} that do not exist in "
                f"{compiled.env} yet: run `omnidrill monitors apply --env {compiled.env}` first"
            )
    for ch in changes:
        if ch.action not in ("create", "update") or ch.desired is None:
            continue
        body = resolve_refs(ch.desired.body, slo_ids)
        what = f"{ch.action} of {ch.kind} {ch.id}"
        if ch.kind == "slo":
            api = ServiceLevelObjectivesApi(client)
            if ch.action == "create":
                resp = call(settings, what, api.create_slo, ServiceLevelObjectiveRequest(**body))
                slo_ids[ch.id] = str(plain(resp)["data"][0]["id"])
            else:
                call(settings, what, api.update_slo, ch.live_id, ServiceLevelObjective(**body))
        elif ch.kind == "monitor":
            api_m = MonitorsApi(client)
            if ch.action == "update":
                body = _update_body(body, ch.live or {})
            if ch.action == "create":
                call(settings, what, api_m.create_monitor, Monitor(**body))
            else:
                call(
                    settings,
                    what,
                    api_m.update_monitor,
                    int(ch.live_id or 0),
                    MonitorUpdateRequest(**body),
                )
        else:
            api_d = DashboardsApi(client)
            if ch.action == "create":
                call(settings, what, api_d.create_dashboard, Dashboard(**copy.deepcopy(body)))
            else:
                call(
                    settings,
                    what,
                    api_d.update_dashboard,
                    ch.live_id,
                    Dashboard(**copy.deepcopy(body)),
                )
        done.append(ch)
    return done


def _update_body(body: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """Whether Datadog merges or replaces options on PUT, the result must equal the YAML:
    options set by hand and absent from the YAML are sent back at their defaults, and a
    mute set by on-call (`silenced`) is kept."""
    body = copy.deepcopy(body)
    opts = body.setdefault("options", {})
    for k, v in (live.get("options") or {}).items():
        if k == "silenced" and v:
            opts.setdefault(k, v)
        elif k not in opts and f"options.{k}" in _DEFAULTS and v is not None:
            opts[k] = _DEFAULTS[f"options.{k}"]
    return body


def prune(settings: DatadogSettings, client: ApiClient, changes: list[Change]) -> list[Change]:
    """Delete managed objects that the YAML no longer has: dashboards, monitors, then SLOs."""
    order = {"dashboard": 0, "monitor": 1, "slo": 2}
    done = []
    for ch in sorted((c for c in changes if c.action == "delete"), key=lambda c: order[c.kind]):
        what = f"deletion of {ch.kind} {ch.id} ({ch.live_id})"
        if ch.kind == "dashboard":
            call(settings, what, DashboardsApi(client).delete_dashboard, ch.live_id)
        elif ch.kind == "monitor":
            call(settings, what, MonitorsApi(client).delete_monitor, int(ch.live_id or 0))
        else:
            call(settings, what, ServiceLevelObjectivesApi(client).delete_slo, ch.live_id)
        done.append(ch)
    return done


def plan_env(
    settings: DatadogSettings, compiled: Compiled, kinds: set[Kind]
) -> tuple[Live, list[Change]]:
    """Read what is live and plan against it (one client, closed afterwards)."""
    fetch = set(kinds) | {"slo"}  # SLO ids are needed to resolve references
    with api_client(settings) as client:
        live = fetch_live(settings, client, compiled.env, fetch)
    return live, plan(compiled, live, kinds)


def describe(changes: list[Change]) -> list[str]:
    """Plan lines a person reads: one per change, a field diff indented below updates."""
    sym = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}
    lines = []
    for ch in changes:
        if ch.action == "unchanged":
            continue
        ref = f" ({ch.live_id})" if ch.live_id else ""
        lines.append(f"{sym[ch.action]} {ch.action} {ch.kind} {ch.id}{ref}")
        lines += [f"    {d}" for d in ch.diffs]
    return lines


__all__ = ["SLO_REF", "Change", "FieldDiff", "Live", "apply", "describe", "plan", "prune"]
