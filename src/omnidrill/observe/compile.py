"""YAML specs -> the JSON bodies the Datadog API takes, checked as Datadog would check them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.service_level_objective_request import (
    ServiceLevelObjectiveRequest,
)

from omnidrill.observe import ddmodels
from omnidrill.observe.models import DashboardSpec, MonitorSpec, SLOSpec
from omnidrill.observe.source import (
    Problem,
    SourceFile,
    SpecError,
    env_variables,
    files_of,
    load,
)

MANAGED_TAG = "managed-by:omnidrill"
ID_TAG = "omnidrill-id"
ENV_TAG = "omnidrill-env"
# Datadog assigns SLO ids; a burn-rate query names the SLO by this placeholder until apply.
SLO_REF = "${{slo:{}}}"
SLO_REF_RE = re.compile(r"\$\{slo:([a-z0-9_-]+)\}")
DASHBOARD_MARK_RE = re.compile(r"\[managed-by:omnidrill omnidrill-id:(\S+) omnidrill-env:(\S+)\]")
_THRESHOLD_RE = re.compile(r"(>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*$")

Kind = Literal["monitor", "slo", "dashboard"]


@dataclass
class Desired:
    """One object as the YAML wants it, in the API's JSON shape."""

    kind: Kind
    id: str
    body: dict[str, Any]
    source: Path
    line: int | None
    spec: Any = None

    def file_name(self) -> str:
        return f"{self.kind}s/{self.id}.json"


@dataclass
class Compiled:
    """Every object of one environment."""

    env: str
    variables: dict[str, Any]
    monitors: list[Desired] = field(default_factory=list)
    slos: list[Desired] = field(default_factory=list)
    dashboards: list[Desired] = field(default_factory=list)

    def objects(self) -> list[Desired]:
        return [*self.slos, *self.monitors, *self.dashboards]

    def monitor_specs(self) -> dict[str, MonitorSpec]:
        return {d.id: d.spec for d in self.monitors}

    def slo_specs(self) -> dict[str, SLOSpec]:
        return {d.id: d.spec for d in self.slos}


def managed_tags(obj_id: str, env: str) -> list[str]:
    return [MANAGED_TAG, f"{ID_TAG}:{obj_id}", f"{ENV_TAG}:{env}"]


def dashboard_mark(obj_id: str, env: str) -> str:
    """Dashboards take only `team:` tags, so ownership is marked in the description."""
    return f"[{MANAGED_TAG} {ID_TAG}:{obj_id} {ENV_TAG}:{env}]"


def query_threshold(query: str) -> tuple[str, float] | None:
    """The comparator and number a metric-style query ends with."""
    m = _THRESHOLD_RE.search(query)
    return (m.group(1), float(m.group(2))) if m else None


def burn_rate_query(spec: MonitorSpec, slo_id: str) -> str:
    br = spec.burn_rate
    assert br is not None
    return (
        f'burn_rate("{slo_id}").over("{br.over}").long_window("{br.long_window}")'
        f'.short_window("{br.short_window}") > {br.threshold:g}'
    )


def monitor_body(spec: MonitorSpec, env: str) -> dict[str, Any]:
    options = json.loads(json.dumps(spec.options))
    if spec.burn_rate is not None:
        query = burn_rate_query(spec, SLO_REF.format(spec.burn_rate.slo))
    else:
        assert spec.query is not None
        query = spec.query.strip()
    parsed = query_threshold(query)
    thresholds = options.setdefault("thresholds", {})
    if parsed is not None and isinstance(thresholds, dict):
        # Datadog's UI copies the query's number into thresholds.critical; so do we.
        thresholds.setdefault("critical", parsed[1])
    body: dict[str, Any] = {
        "name": spec.name.strip(),
        "type": spec.type,
        "query": query,
        "message": spec.message.strip(),
        "tags": sorted(set(spec.tags) | set(managed_tags(spec.id, env))),
        "options": options,
    }
    if spec.priority is not None:
        body["priority"] = spec.priority
    return body


def _monitor_semantics(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """What Datadog's API refuses that the SDK's models let through."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    parsed = query_threshold(body["query"])
    opts = body.get("options") or {}
    th = opts.get("thresholds") if isinstance(opts, dict) else None
    if parsed and isinstance(th, dict):
        op, number = parsed
        crit, warn = th.get("critical"), th.get("warning")
        if isinstance(crit, int | float) and float(crit) != number:
            msg = f"Alert threshold ({crit:g}) does not match that used in the query ({number:g})"
            out.append((("options", "thresholds", "critical"), msg))
        if isinstance(warn, int | float):
            wrong_side = warn >= number if op in (">", ">=") else warn <= number
            if wrong_side:
                side = "below" if op in (">", ">=") else "above"
                msg = (
                    f"warning threshold ({warn:g}) must be {side} the alert threshold ({number:g})"
                )
                out.append((("options", "thresholds", "warning"), msg))
    elif isinstance(th, dict) and "warning" in th and "critical" not in th:
        out.append((("options", "thresholds"), "Alert status is required."))
    timeout = opts.get("timeout_h") if isinstance(opts, dict) else None
    if isinstance(timeout, int | float) and not 0 <= timeout <= 24:
        out.append((("options", "timeout_h"), f"timeout_h must be 0..24, found {timeout}"))
    return out


def slo_body(spec: SLOSpec, env: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": spec.name.strip(),
        "description": spec.description.strip(),
        "type": spec.type,
        "thresholds": [
            {"timeframe": t.timeframe, "target": t.target}
            | ({"warning": t.warning} if t.warning is not None else {})
            for t in spec.thresholds
        ],
        "tags": sorted(set(spec.tags) | set(managed_tags(spec.id, env))),
    }
    if spec.type == "metric":
        body["query"] = {"numerator": spec.numerator, "denominator": spec.denominator}
    else:
        ts = spec.time_slice
        assert ts is not None
        body["sli_specification"] = {
            "time_slice": {
                "query": {
                    "formulas": [{"formula": "query1"}],
                    "queries": [{"data_source": "metrics", "name": "query1", "query": ts.query}],
                },
                "comparator": ts.comparator,
                "threshold": ts.threshold,
                "query_interval_seconds": ts.query_interval_seconds,
            }
        }
    return body


def dashboard_body(spec: DashboardSpec, env: str) -> dict[str, Any]:
    desc = spec.description.strip()
    mark = dashboard_mark(spec.id, env)
    body: dict[str, Any] = {
        "title": spec.title.strip(),
        "description": f"{desc}\n\n{mark}" if desc else mark,
        "layout_type": spec.layout_type,
        "widgets": spec.widgets,
        "template_variables": spec.template_variables,
        "notify_list": spec.notify_list,
    }
    if spec.reflow_type is not None:
        body["reflow_type"] = spec.reflow_type
    return body


def _checked(
    src: SourceFile, loc: tuple[str | int, ...], model_cls: type, body: dict[str, Any]
) -> list[Problem]:
    found = ddmodels.check(model_cls, body)
    if model_cls is Monitor:
        found += _monitor_semantics(body)
    problems = []
    for path, msg in found:
        # tags we add ourselves have no line; point at the object then
        problems.append(src.problem((*loc, *path), f"Datadog would refuse this: {msg}"))
    return problems


_Placed = tuple[SourceFile, tuple[str | int, ...], str]  # file, location, id: for error messages


def _compile_items(
    src: SourceFile,
    field_name: str,
    kind: Kind,
    model_cls: type,
    body_of: Callable[[Any, str], dict[str, Any]],
    env: str,
    into: list[Desired],
    placed: list[_Placed],
) -> list[Problem]:
    """Compile the file's list `field_name` into `into`; record where each id was written."""
    problems: list[Problem] = []
    for i, spec in enumerate(getattr(src.model, field_name)):
        loc = (field_name, i)
        body = body_of(spec, env)
        problems += _checked(src, loc, model_cls, body)
        placed.append((src, loc, spec.id))
        into.append(Desired(kind, spec.id, body, src.path, src.line_of(loc), spec))
    return problems


def _unique(kind: str, items: list[_Placed]) -> list[Problem]:
    seen: dict[str, SourceFile] = {}
    problems = []
    for src, loc, obj_id in items:
        if obj_id in seen:
            msg = f"{kind} id {obj_id!r} is also defined in {seen[obj_id].path}"
            problems.append(src.problem((*loc, "id"), msg))
        seen.setdefault(obj_id, src)
    return problems


def drill_names(root: Path) -> set[str] | None:
    """What a `tripped_by` entry may name: the drills (chaos/) and scenarios (scenarios/) of the
    project, by file stem; None where the project has neither folder (nothing to check against)."""
    folders = [root / "chaos", root / "scenarios"]
    if not any(f.is_dir() for f in folders):
        return None
    return {p.stem for f in folders for p in [*f.glob("*.yaml"), *f.glob("*.yml")]}


def tripped_by_problems(src: SourceFile, known: set[str]) -> list[Problem]:
    """A `tripped_by` entry must name a drill or scenario: O1 expects the monitor to alert in it."""
    from omnidrill.spec.suggest import closest

    problems = []
    for i, mon in enumerate(src.model.monitors):
        for j, name in enumerate(mon.tripped_by):
            if name in known:
                continue
            hint = closest(name, sorted(known))
            msg = f"{name!r} names no drill (chaos/) or scenario (scenarios/)"
            msg += f"; did you mean {hint!r}?" if hint else f" (have: {', '.join(sorted(known))})"
            problems.append(src.problem(("monitors", i, "tripped_by", j), msg))
    return problems


def compile_monitors(root: Path, env: str, variables: dict[str, Any] | None = None) -> Compiled:
    """Load, check and compile every file in monitors/ for one environment."""
    variables = variables if variables is not None else env_variables(root, env)
    out = Compiled(env=env, variables=variables)
    problems: list[Problem] = []
    ids_m: list[_Placed] = []
    ids_s: list[_Placed] = []
    burn_refs: list[_Placed] = []
    known = drill_names(root)
    for path in files_of(root, "monitor"):
        try:
            src = load(path, "monitor", variables)
        except SpecError as exc:
            problems += exc.problems
            continue
        if known is not None:
            problems += tripped_by_problems(src, known)
        problems += _compile_items(
            src, "slos", "slo", ServiceLevelObjectiveRequest, slo_body, env, out.slos, ids_s
        )
        problems += _compile_items(
            src, "monitors", "monitor", Monitor, monitor_body, env, out.monitors, ids_m
        )
        for i, mon in enumerate(src.model.monitors):
            if mon.burn_rate is not None:
                burn_refs.append((src, ("monitors", i, "burn_rate", "slo"), mon.burn_rate.slo))
    problems += _unique("monitor", ids_m) + _unique("SLO", ids_s)
    slo_ids = {i for _, _, i in ids_s}
    for src, loc, ref in burn_refs:
        if ref not in slo_ids:
            problems.append(src.problem(loc, f"no SLO with id {ref!r} (have: {sorted(slo_ids)})"))
    if problems:
        raise SpecError(problems)
    return out


def compile_dashboards(root: Path, env: str, variables: dict[str, Any] | None = None) -> Compiled:
    """Load, check and compile every file in dashboards/ for one environment."""
    variables = variables if variables is not None else env_variables(root, env)
    out = Compiled(env=env, variables=variables)
    problems: list[Problem] = []
    ids: list[_Placed] = []
    for path in files_of(root, "dashboard"):
        try:
            src = load(path, "dashboard", variables)
        except SpecError as exc:
            problems += exc.problems
            continue
        problems += _compile_items(
            src, "dashboards", "dashboard", Dashboard, dashboard_body, env, out.dashboards, ids
        )
    problems += _unique("dashboard", ids)
    if problems:
        raise SpecError(problems)
    return out


def render(compiled: Compiled, out_dir: Path) -> list[Path]:
    """Write one JSON file per object, named by its YAML id; returns the files written."""
    written = []
    for obj in compiled.objects():
        path = out_dir / obj.file_name()  # monitors/<id>.json, slos/<id>.json, ...
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj.body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
