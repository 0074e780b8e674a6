"""Where a drill reads its monitors' states (CONTRACT O1) and the target's Sentry events (O2).

Two sources, as a profile's `observe:` says: a local intake, whose series the project's own
evaluator turns into states of the compiled monitors of an environment (`IntakeStates`), or
live Datadog, whose managed monitors carry their own state (`DatadogStates`). Both answer
`read()` with every monitor's state at that moment, and explain a state with `evidence()`.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from omnidrill import secrets
from omnidrill.errors import UsageError
from omnidrill.observe.compile import Compiled, compile_monitors
from omnidrill.observe.evaluate import (
    ALERT,
    NO_DATA,
    OK,
    WARN,
    Group,
    MonitorModel,
    NotTestable,
    Term,
    overall_state,
    parse_metric_query,
)
from omnidrill.observe.intake.client import IntakeClient
from omnidrill.observe.models import MonitorSpec
from omnidrill.observe.timed import SeriesBook

ALERTING = {ALERT, WARN}
STATES = (OK, WARN, ALERT, NO_DATA)


@dataclass
class Reading:
    """Every monitor's state at one look; `errors`: monitors whose state could not be known."""

    at: float
    states: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)


class MonitorStates(Protocol):
    source: str
    poll_s: float
    names: dict[str, str]  # YAML id -> the monitor's title

    def read(self) -> Reading: ...

    def evidence(self, monitor_id: str) -> list[str]: ...

    def windows(self, ids: list[str]) -> dict[str, str]: ...

    def close(self) -> None: ...


def expected_monitors(compiled: Compiled, drill: str) -> list[str]:
    """The monitors whose `tripped_by` names the drill (its file's stem): what O1 expects."""
    return [d.id for d in compiled.monitors if drill in d.spec.tripped_by]


def monitors_env(observe_env: str | None, profile_name: str, environment: str, root: Path) -> str:
    """The environment whose monitors a target is judged by: `observe.env`, else a
    monitors/env/<file> named as the profile, else as its environment."""
    candidates = [observe_env] if observe_env else [profile_name, environment]
    for c in candidates:
        if (root / "monitors" / "env" / f"{c}.yaml").is_file():
            return c
    have = sorted(p.stem for p in (root / "monitors" / "env").glob("*.yaml"))
    raise UsageError(
        f"observe: no monitors/env/{candidates[0]}.yaml under {root} (have: {have}); "
        "set observe.env to one of them"
    )


_WINDOW = re.compile(r"^[1-9][0-9]*[smh]$")
_QUERY_WINDOW = re.compile(r"last_([0-9]+[smhdw])")


def drill_windows(compiled: Compiled) -> dict[str, Any]:
    """An environment's `drill_windows`: per monitor, the window a drill evaluates it over
    (a metric monitor's `last_N`, or a burn-rate alert's {long, short}), checked."""
    raw = compiled.variables.get("drill_windows") or {}
    where = f"monitors/env/{compiled.env}.yaml: drill_windows"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a mapping of monitor id to window")
    specs = compiled.monitor_specs()
    for mid, win in raw.items():
        spec = specs.get(mid)
        if spec is None:
            raise UsageError(f"{where}.{mid}: names no monitor (have: {sorted(specs)})")
        shape = {"long", "short"} if spec.burn_rate is not None else None
        ok = (
            isinstance(win, dict)
            and set(win) == shape
            and all(_WINDOW.match(str(v)) for v in win.values())
            if shape
            else isinstance(win, str) and bool(_WINDOW.match(win))
        )
        if not ok:
            expected = "{long: 20s, short: 3s}" if shape else "a window like 4s, 1m"
            raise UsageError(f"{where}.{mid}: expected {expected}, found {win!r}")
    return raw


def with_window(spec: MonitorSpec, win: Any) -> MonitorSpec:
    """The monitor as a drill evaluates it: its query's window replaced by the drill window."""
    if win is None:
        return spec
    if spec.burn_rate is not None:
        br = spec.burn_rate.model_copy(
            update={"long_window": str(win["long"]), "short_window": str(win["short"])}
        )
        return spec.model_copy(update={"burn_rate": br})
    assert spec.query is not None
    return spec.model_copy(update={"query": _QUERY_WINDOW.sub(f"last_{win}", spec.query, 1)})


def _term_text(t: Term) -> str:
    filters = [f"{k}:{v}" for k, v in t.include] + [f"!{k}:{v}" for k, v in t.exclude]
    by = f" by {{{','.join(t.by)}}}" if t.by else ""
    return f"{t.metric}{{{','.join(filters) or '*'}}}{by}"


def _terms(model: MonitorModel) -> list[Term]:
    spec = model.spec
    if spec.burn_rate is not None:
        slo = model._slo
        queries = (
            [slo.numerator, slo.denominator]
            if slo.type == "metric"
            else [slo.time_slice.query if slo.time_slice else ""]
        )
        terms = []
        for q in queries:
            agg = "percentile" if q.split(":", 1)[0].startswith("p") else "sum"
            terms += parse_metric_query(f"{agg}(last_1m):{q} > 0").terms()
        return terms
    return model.q.terms()


def _window_text(model: MonitorModel) -> str:
    br = model.spec.burn_rate
    if br is not None:
        return f"burn rate over {br.long_window} and {br.short_window}"
    return f"last {_seconds_text(model.window_s)}"


def _seconds_text(s: float) -> str:
    for unit, n in (("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{int(s // n)}{unit}"
    return f"{s:g}s"


class IntakeStates:
    """States computed by the project's evaluator over what the target sent to an intake."""

    source = "intake"

    def __init__(
        self, url: str, compiled: Compiled, poll_s: float = 0.2, history_s: float | None = None
    ) -> None:
        self.client = IntakeClient(url)
        self.url = url
        self.poll_s = poll_s
        self.env = compiled.env
        self.book = SeriesBook()
        self.models: dict[str, MonitorModel] = {}
        self.errors: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.windows_used = drill_windows(compiled)
        self.own_windows: dict[str, str] = {}
        slos = compiled.slo_specs()
        for d in compiled.monitors:
            self.names[d.id] = d.spec.name.strip()
            try:
                self.own_windows[d.id] = _window_text(MonitorModel(d.spec, slos))
                spec = with_window(d.spec, self.windows_used.get(d.id))
                self.models[d.id] = MonitorModel(spec, slos)
            except NotTestable as exc:
                self.errors[d.id] = f"not evaluable offline: {exc}"
        self.state: dict[str, dict[Group, str]] = {mid: {} for mid in self.models}
        self.values: dict[str, dict[Group, float | None]] = {}
        self._lock = threading.Lock()
        longest = max((self._span(m) for m in self.models.values()), default=60)
        self.keep_s = history_s if history_s is not None else 2 * longest + 60
        self._replay(longest)

    @staticmethod
    def _span(m: MonitorModel) -> float:
        """How much history decides the monitor's state now."""
        return float(max(m.window_s, m.no_data_s if m.notify_no_data else 0))

    def _replay(self, longest: float) -> None:
        """Build each monitor's state from the history the intake kept, as Datadog's would be:
        evaluated when its series' last point before twice its window arrived (a window without
        data keeps that state), then at the times points arrived since (120 at most)."""
        self._ingest()
        now = time.time()
        for mid, model in self.models.items():
            try:
                terms = _terms(model)
            except NotTestable:
                continue
            stamps = sorted(
                {t for s in self.book.series() if any(x.matches(s) for x in terms) for t in s.times}  # type: ignore[attr-defined]
            )
            since = now - 2 * self._span(model) - 1
            before = [t for t in stamps if t <= since][-1:]
            recent = [t for t in stamps if since < t <= now]
            stride = max(1, -(-len(recent) // 120))
            for t in [*before, *recent[::stride], now]:
                self._evaluate(t, only=mid)

    def _ingest(self) -> None:
        for r in self.client.new_points():
            self.book.add(r.metric, r.type, r.tags, r.ts, r.value)

    def _evaluate(self, t: float, only: str | None = None) -> dict[str, str]:
        series = self.book.series()
        out: dict[str, str] = {}
        for mid, model in self.models.items():
            if mid in self.errors or (only is not None and mid != only):
                continue
            try:
                ev = model.evaluator(series)
                self.values[mid] = model.step(ev, ev.groups(), self.state[mid], t)
            except NotTestable as exc:
                self.errors[mid] = f"not evaluable over what the target sent: {exc}"
                continue
            out[mid] = overall_state(self.state[mid])
        return out

    def read(self) -> Reading:
        with self._lock:
            self._ingest()
            now = time.time()
            self.book.forget_before(now - self.keep_s)
            states = self._evaluate(now)
            return Reading(now, states, dict(self.errors))

    def evidence(self, monitor_id: str) -> list[str]:
        """What the intake received for each metric the monitor watches, and its last values."""
        with self._lock:
            model = self.models.get(monitor_id)
            if model is None:
                return [self.errors.get(monitor_id, f"no monitor {monitor_id!r}")]
            now = time.time()
            window = float(model.window_s)
            lines = [f"{monitor_id}: {_window_text(model)}, evaluated at the intake {self.url}"]
            for term in _terms(model):
                matching = [s for s in self.book.of_metric(term.metric) if term.matches(s)]
                if not matching:
                    seen = self.book.of_metric(term.metric)
                    tags = sorted({",".join(sorted(s.tags_text())) for s in seen})[:5]
                    lines.append(
                        f"{_term_text(term)}: no such series reached the intake"
                        + (
                            f" (that metric arrived only as {'; '.join(tags)})"
                            if seen
                            else " (nothing under that metric name at all)"
                        )
                    )
                    continue
                for s in matching[:6]:
                    pts = s.points(now - window, now)
                    last = f", last {pts[-1][1]:g}" if pts else ""
                    lines.append(
                        f"{_term_text(term)} <- {s.metric}{{{','.join(sorted(s.tags_text()))}}}: "
                        f"{len(pts)} point(s) in the {_seconds_text(window)} window{last}"
                    )
            for g, v in sorted((self.values.get(monitor_id) or {}).items()):
                group = ",".join(f"{k}:{x}" for k, x in g) or "(no group)"
                state = self.state[monitor_id].get(g, NO_DATA)
                shown = "no value" if v is None else f"{v:g}"
                lines.append(f"{group}: {shown} -> {state}")
            return [secrets.scrub(x) for x in lines]

    def windows(self, ids: list[str]) -> dict[str, str]:
        """Each monitor's window as evaluated, and its query's own where a drill window
        replaced it."""
        out = {}
        for i in ids:
            if i not in self.models:
                continue
            used = _window_text(self.models[i])
            own = self.own_windows.get(i, used)
            out[i] = used if used == own else f"{used} (drill window; the monitor's is {own})"
        return out

    def close(self) -> None:
        self.client.close()


class DatadogStates:
    """Live states of the monitors `monitors apply` manages in one environment."""

    source = "datadog"

    def __init__(self, compiled: Compiled, poll_s: float = 10.0) -> None:
        from omnidrill.observe.ddclient import DatadogSettings

        self.settings = DatadogSettings.from_env()
        self.env = compiled.env
        self.poll_s = poll_s
        self.names = {d.id: d.spec.name.strip() for d in compiled.monitors}
        self.live: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def read(self) -> Reading:
        from omnidrill.observe.ddclient import api_client
        from omnidrill.observe.sync import fetch_live

        with self._lock, api_client(self.settings) as client:
            live = fetch_live(self.settings, client, self.env, {"monitor"})
            now = time.time()
            self.live = {yid: body for yid, (_, body) in live.objects["monitor"].items()}
        states = {yid: _dd_state(b.get("overall_state")) for yid, b in self.live.items()}
        errors = {
            yid: f"not deployed in Datadog for environment {self.env}"
            for yid in self.names
            if yid not in self.live
        }
        return Reading(now, states, errors)

    def require_deployed(self, ids: list[str]) -> None:
        """A monitor a drill expects but Datadog does not have is an error, never a pass."""
        reading = self.read()
        missing = [i for i in ids if i not in reading.states]
        if missing:
            raise UsageError(
                f"monitors {missing} are not deployed in Datadog for environment {self.env} "
                f"(no monitor tagged omnidrill-id:<id>, omnidrill-env:{self.env}); run "
                f"`omnidrill monitors apply --env {self.env}` first"
            )

    def evidence(self, monitor_id: str) -> list[str]:
        body = self.live.get(monitor_id)
        if body is None:
            return [f"{monitor_id}: not deployed in Datadog for environment {self.env}"]
        return [
            f"{monitor_id}: Datadog monitor {body.get('id')} ({body.get('name')}): "
            f"overall_state {body.get('overall_state')}, "
            f"last changed {body.get('overall_state_modified') or 'unknown'}",
            f"query: {body.get('query')}",
        ]

    def windows(self, ids: list[str]) -> dict[str, str]:
        out = {}
        for i in ids:
            q = str((self.live.get(i) or {}).get("query", ""))
            out[i] = q.split(":", 1)[0] if "(" in q else q
        return out

    def close(self) -> None:
        pass


def _dd_state(raw: Any) -> str:
    text = str(raw or "")
    for s in STATES:
        if text.lower() == s.lower():
            return s
    return NO_DATA if text.lower() in ("", "unknown", "skipped", "ignored") else text


def open_states(profile: Any, root: Path) -> tuple[MonitorStates, Compiled]:
    """The state source a profile's `observe:` names, over its environment's monitors."""
    obs = profile.observe
    env = monitors_env(obs.env, profile.name, profile.environment, root)
    compiled = compile_monitors(root, env)
    if obs.intake:
        return IntakeStates(obs.intake, compiled, obs.poll_s or 0.2), compiled
    return DatadogStates(compiled, obs.poll_s or 10.0), compiled
