"""Evaluating Datadog metric-monitor queries over test series, for `omnidrill monitors test`.

The subset (anything else is `NotTestable`, never evaluated by guess):
- `TIME(last_N[smhdw]):EXPR CMP NUMBER` with TIME one of avg, sum, min, max, last, percentile;
- EXPR: metric terms joined by + - * / (with parentheses and numbers), a term being
  `SPACE:metric{filters} [by {k,...}] [.as_count()]`, optionally inside `default_zero(...)`,
  SPACE one of avg, sum, min, max or (with `percentile(...)` only) p50, p75, p90, p95, p99;
  filters `*`, `k:v`, `!k:v`;
- `slo alert` burn-rate queries on metric and time-slice SLOs defined in the same YAML.

Semantics, as documented by Datadog for metric monitors:
- the window at time T holds the points with T - W < t <= T;
- space aggregation per timestamp within each group, then time aggregation over the window;
  with `.as_count()` the time aggregation is applied to each term before the arithmetic;
- `default_zero(term)` counts an interval without points as 0 (input interval grid);
- a pNN term takes the percentile of every point in the window (distribution semantics),
  by linear interpolation (Datadog's sketches agree within their 1% accuracy);
- a window without a value keeps the previous state; with `notify_no_data` the state turns
  `No Data` once no point arrived for `no_data_timeframe` minutes (default twice the window);
  a monitor starts in `No Data`;
- the overall state of a multi-alert monitor is its worst group: Alert > Warn > No Data > OK.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from omnidrill.observe.models import MonitorSpec, SLOSpec

OK, WARN, ALERT, NO_DATA = "OK", "Warn", "Alert", "No Data"
_SEVERITY = {ALERT: 3, WARN: 2, NO_DATA: 1, OK: 0}
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CMP: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_TIME_AGGS = {"avg", "sum", "min", "max", "last", "percentile"}
_SPACE_AGGS = {"avg", "sum", "min", "max"}
_PCTS = {"p50": 50, "p75": 75, "p90": 90, "p95": 95, "p99": 99}
# Options that only shape notifications; anything else changes evaluation and is not modelled.
_NOTIFY_ONLY = {
    "thresholds",
    "notify_no_data",
    "no_data_timeframe",
    "notify_audit",
    "include_tags",
    "renotify_interval",
    "renotify_statuses",
    "renotify_occurrences",
    "escalation_message",
    "new_host_delay",
    "new_group_delay",
    "silenced",
    "locked",
    "notification_preset_name",
    "evaluation_delay",
    "require_full_window",
    "notify_by",
    "timeout_h",
    "priority",
}

Group = tuple[tuple[str, str], ...]  # sorted (key, value) pairs of the `by` keys


class NotTestable(Exception):
    """The monitor uses something the evaluator does not model; it is reported, not guessed."""


def duration_s(text: str) -> int:
    m = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not m:
        raise ValueError(f"expected a duration like 5m, 1h, 30s, found {text!r}")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


# --- input series ---------------------------------------------------------------------------


@dataclass
class Series:
    """One input series: metric, tags and a value (or None) every `interval` seconds from 0."""

    metric: str
    tags: dict[str, str]
    values: list[float | None]
    interval: int

    def points(self, start_excl: float, end_incl: float) -> list[tuple[int, float]]:
        """Points with start_excl < t <= end_incl (the values sit on a grid: no search)."""
        first = max(math.floor(start_excl / self.interval) + 1, 0)
        last = min(math.floor(end_incl / self.interval), len(self.values) - 1)
        return [
            (i * self.interval, v)
            for i in range(first, last + 1)
            if (v := self.values[i]) is not None
        ]

    def values_between(self, start_excl: float, end_incl: float) -> list[float]:
        """The values of `points`, without their times."""
        return [v for _, v in self.points(start_excl, end_incl)]

    def last_point_at_or_before(self, t: float) -> int | None:
        for i in range(min(math.floor(t / self.interval), len(self.values) - 1), -1, -1):
            if self.values[i] is not None:
                return i * self.interval
        return None


_SERIES_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?:\{([^}]*)\})?\s*$")
_VALUE_RE = re.compile(r"^(-?[\d.]+(?:e-?\d+)?)(?:([+-])([\d.]+(?:e-?\d+)?))?x(\d+)$")


def parse_series_name(text: str) -> tuple[str, dict[str, str]]:
    """`metric{k:v,k2:v2}` -> (metric, tags); a tag without a value is an error."""
    m = _SERIES_RE.match(text)
    if not m:
        raise ValueError(f"expected metric{{key:value,...}}, found {text!r}")
    tags: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (m.group(2) or "").split(","))):
        k, sep, v = part.partition(":")
        if not sep or not k or not v:
            raise ValueError(f"tag {part!r} in {text!r}: expected key:value")
        tags[k] = v
    return m.group(1), tags


def expand_values(text: str) -> list[float | None]:
    """promtool's notation: `a` one value, `_` one gap, `a+bxN` / `a-bxN` / `axN` N+1 values
    (a, a+b, ..., a+N*b), `_xN` N gaps."""
    out: list[float | None] = []
    for tok in text.split():
        if tok == "_":
            out.append(None)
            continue
        if tok.startswith("_x") and tok[2:].isdigit():
            out += [None] * int(tok[2:])
            continue
        m = _VALUE_RE.match(tok)
        if m:
            a = float(m.group(1))
            step = float(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
            out += [a + i * step for i in range(int(m.group(4)) + 1)]
            continue
        try:
            out.append(float(tok))
        except ValueError:
            raise ValueError(
                f"value {tok!r}: expected a number, _, a+bxN, a-bxN, axN or _xN"
            ) from None
    return out


# --- queries --------------------------------------------------------------------------------


@dataclass
class Term:
    """`SPACE:metric{filters} by {keys}` with its modifiers."""

    space: str
    metric: str
    include: list[tuple[str, str]]
    exclude: list[tuple[str, str]]
    by: tuple[str, ...]
    as_count: bool
    default_zero: bool = False

    def matches(self, s: Series) -> bool:
        if s.metric != self.metric:
            return False
        if any(s.tags.get(k) != v for k, v in self.include):
            return False
        return not any(s.tags.get(k) == v for k, v in self.exclude)

    def group_of(self, s: Series) -> Group | None:
        if any(k not in s.tags for k in self.by):
            return None  # a series without a `by` tag is outside every group
        return tuple(sorted((k, s.tags[k]) for k in self.by))


Expr = Any  # Term | float | tuple[str, Expr, Expr]


@dataclass
class MetricQuery:
    time_agg: str
    window_s: int
    expr: Expr
    comparator: str
    threshold: float

    def terms(self) -> list[Term]:
        out: list[Term] = []

        def walk(e: Expr) -> None:
            if isinstance(e, Term):
                out.append(e)
            elif isinstance(e, tuple):
                walk(e[1])
                walk(e[2])

        walk(self.expr)
        return out


_TOKEN = re.compile(
    r"\s*(?:(?P<fn>default_zero)\(|(?P<num>-?\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w.:])|(?P<op>[-+*/()])|"
    r"(?P<term>[a-z0-9]+:[A-Za-z_][\w.]*\{[^}]*\}(?:\s+by\s+\{[^}]*\})?(?:\.as_\w+\(\))?)"
    r"|(?P<bad>\S+))"
)


def _parse_term(text: str) -> Term:
    m = re.fullmatch(
        r"([a-z0-9]+):([A-Za-z_][\w.]*)\{([^}]*)\}(?:\s+by\s+\{([^}]*)\})?(?:\.(as_\w+)\(\))?",
        text,
    )
    if not m:
        raise NotTestable(f"term {text!r} is outside the metric-query subset")
    space, metric, filters, by, modifier = m.groups()
    if space not in _SPACE_AGGS and space not in _PCTS:
        raise NotTestable(f"space aggregator {space!r} is not modelled")
    if modifier not in (None, "as_count"):
        raise NotTestable(f".{modifier}() is not modelled")
    include, exclude = [], []
    for f in filter(None, (p.strip() for p in filters.split(","))):
        if f == "*":
            continue
        neg = f.startswith("!")
        k, sep, v = f.lstrip("!").partition(":")
        if not sep or "*" in v or " " in f:
            raise NotTestable(f"tag filter {f!r} is not modelled (only *, k:v and !k:v)")
        (exclude if neg else include).append((k, v))
    keys = tuple(k.strip() for k in (by or "").split(",") if k.strip())
    return Term(space, metric, include, exclude, keys, modifier == "as_count")


def _parse_expr(tokens: list[tuple[str, str]]) -> Expr:
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> Expr:
        tok = take()
        if tok == ("op", "("):
            e = add()
            if take() != ("op", ")"):
                raise NotTestable("unbalanced parentheses")
            return e
        if tok[0] == "num":
            return float(tok[1])
        if tok[0] == "term":
            return _parse_term(tok[1])
        if tok[0] == "fn":
            inner = take()
            if inner[0] != "term" or take() != ("op", ")"):
                raise NotTestable("default_zero() is modelled around one metric term only")
            term = _parse_term(inner[1])
            term.default_zero = True
            return term
        raise NotTestable(f"unexpected {tok[1]!r} in the query")

    def mul() -> Expr:
        e = atom()
        while peek() in (("op", "*"), ("op", "/")):
            op = take()[1]
            e = (op, e, atom())
        return e

    def add() -> Expr:
        e = mul()
        while peek() in (("op", "+"), ("op", "-")):
            op = take()[1]
            e = (op, e, mul())
        return e

    e = add()
    if pos != len(tokens):
        raise NotTestable(f"unexpected {tokens[pos][1]!r} in the query")
    return e


def parse_metric_query(query: str) -> MetricQuery:
    """Parse a metric-monitor query of the modelled subset, or raise NotTestable saying why."""
    m = re.fullmatch(
        r"\s*([a-z]+)\(last_(\d+)([smhdw])\):(.+?)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*",
        query,
        re.S,
    )
    if not m:
        raise NotTestable("the query is not `time_agg(last_N):expression comparator number`")
    time_agg, n, unit, body, cmp, number = m.groups()
    if time_agg not in _TIME_AGGS:
        raise NotTestable(f"time aggregator {time_agg!r} is not modelled")
    tokens: list[tuple[str, str]] = []
    for tm in _TOKEN.finditer(body):
        kind = tm.lastgroup
        if kind == "bad":
            raise NotTestable(f"{tm.group(kind)!r} is outside the metric-query subset")
        if kind:
            tokens.append((kind, tm.group(kind).strip()))
    q = MetricQuery(time_agg, int(n) * _UNIT_S[unit], _parse_expr(tokens), cmp, float(number))
    terms = q.terms()
    if not terms:
        raise NotTestable("the query has no metric")
    pct = [t for t in terms if t.space in _PCTS]
    if (time_agg == "percentile") != bool(pct) or (pct and len(terms) > 1):
        raise NotTestable("pNN terms are modelled only alone, with the percentile() aggregator")
    if any(t.as_count for t in terms) and time_agg != "sum":
        raise NotTestable(f".as_count() is modelled with sum(), not {time_agg}()")
    if pct and any(t.default_zero for t in terms):
        raise NotTestable("default_zero() around a pNN term is not modelled")
    return q


def _aggregate(how: str, values: list[float]) -> float | None:
    if not values:
        return None
    if how == "avg":
        return sum(values) / len(values)
    if how == "sum":
        return float(sum(values))
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    if how == "last":
        return values[-1]
    if how in _PCTS:
        return percentile(values, _PCTS[how])
    raise NotTestable(f"aggregator {how!r} is not modelled")


_LARGE = 4096  # above this many values numpy's selection beats sorting a Python list


def percentile(values: list[float], pct: float) -> float:
    """Percentile by linear interpolation between closest ranks."""
    k = (len(values) - 1) * pct / 100
    if len(values) > _LARGE:  # a drill's latency samples: select, do not sort
        import numpy as np

        return float(np.percentile(np.asarray(values, dtype=float), pct))
    xs = sorted(values)
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _combine(op: str, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if op == "/":
        return None if b == 0 else a / b
    return {"+": a + b, "-": a - b, "*": a * b}[op]


class MetricEvaluator:
    """Values of one metric query per group and time."""

    def __init__(self, query: MetricQuery, series: list[Series]) -> None:
        self.q = query
        self.series = series
        self._matched: dict[tuple[int, Group], list[Series]] = {}
        # default_zero() fills the input grid; every test case has one interval
        self.grid_s = series[0].interval if series else 60
        self.terms = query.terms()
        self.by: tuple[str, ...] = ()
        for t in self.terms:
            if t.by and self.by and set(t.by) != set(self.by):
                raise NotTestable("terms grouped by different keys are not modelled")
            self.by = self.by or t.by

    def groups(self) -> set[Group]:
        out: set[Group] = set()
        for t in self.terms:
            for s in self.series:
                if t.matches(s) and t.by:
                    g = t.group_of(s)
                    if g is None:
                        missing = [k for k in t.by if k not in s.tags]
                        tags = ",".join(f"{k}:{v}" for k, v in s.tags.items())
                        raise NotTestable(
                            f"series {s.metric}{{{tags}}} has no {missing} tag: "
                            "Datadog groups it as N/A, which is not modelled"
                        )
                    out.add(g)
        return out if self.by else {()}

    def _term_series(self, t: Term, group: Group) -> list[Series]:
        key = (id(t), group)  # the series are fixed for this evaluator: match them once
        cached = self._matched.get(key)
        if cached is not None:
            return cached
        want = dict(group)
        out = []
        for s in self.series:
            if not t.matches(s):
                continue
            if t.by and any(s.tags.get(k) != want.get(k) for k in t.by):
                continue
            out.append(s)
        self._matched[key] = out
        return out

    def last_data(self, group: Group, t: float) -> int | None:
        times = [
            lp
            for term in self.terms
            for s in self._term_series(term, group)
            if (lp := s.last_point_at_or_before(t)) is not None
        ]
        return max(times) if times else None

    def value(self, group: Group, t: float, window_s: int | None = None) -> float | None:
        """The query's value for `group` at `t` over its window (or `window_s`)."""
        start = t - (window_s or self.q.window_s)
        if self.q.time_agg == "percentile":
            term = self.terms[0]
            pts = [v for s in self._term_series(term, group) for v in s.values_between(start, t)]
            return _aggregate(term.space, pts)
        if any(term.as_count for term in self.terms):

            def per_term(e: Expr) -> float | None:
                if isinstance(e, float):
                    return e
                if isinstance(e, Term):
                    v = _aggregate(self.q.time_agg, self._space_series(e, group, start, t))
                    return 0.0 if v is None and e.default_zero else v
                return _combine(e[0], per_term(e[1]), per_term(e[2]))

            return per_term(self.q.expr)
        stamps = {
            ts
            for term in self.terms
            for s in self._term_series(term, group)
            for ts, _ in s.points(start, t)
        }
        if any(term.default_zero for term in self.terms):
            first = int(start // self.grid_s + 1) * self.grid_s
            stamps |= set(range(max(first, 0), int(t) + 1, self.grid_s))
        combined = []
        for ts in sorted(stamps):
            v = self._at(self.q.expr, group, ts)
            if v is not None:
                combined.append(v)
        return _aggregate(self.q.time_agg, combined)

    def _space_series(self, term: Term, group: Group, start: float, end: float) -> list[float]:
        by_ts: dict[int, list[float]] = {}
        for s in self._term_series(term, group):
            for ts, v in s.points(start, end):
                by_ts.setdefault(ts, []).append(v)
        return [v for ts in sorted(by_ts) if (v := _aggregate(term.space, by_ts[ts])) is not None]

    def _at(self, e: Expr, group: Group, ts: int) -> float | None:
        if isinstance(e, float):
            return e
        if isinstance(e, Term):
            vals = [v for s in self._term_series(e, group) for _, v in s.points(ts - 1, ts)]
            agg = _aggregate(e.space, vals)
            return 0.0 if agg is None and e.default_zero else agg
        return _combine(e[0], self._at(e[1], group, ts), self._at(e[2], group, ts))


# --- monitors -------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """States of one monitor at the times asked, per group and overall."""

    monitor_id: str
    states: dict[int, dict[Group, str]] = field(default_factory=dict)
    values: dict[int, dict[Group, float | None]] = field(default_factory=dict)

    def overall(self, t: int) -> str:
        return overall_state(self.states.get(t, {}))

    def group_state(self, t: int, group: Group) -> str | None:
        return self.states.get(t, {}).get(group)


def parse_group(text: str) -> Group:
    """`function:execute_trade,drill:x` -> a group key."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, sep, v = part.partition(":")
        if not sep:
            raise ValueError(f"group {text!r}: expected key:value[,key:value]")
        pairs.append((k, v))
    return tuple(sorted(pairs))


class MonitorModel:
    """A monitor as the evaluator sees it: a value per group and time, and its thresholds."""

    def __init__(self, spec: MonitorSpec, slos: dict[str, SLOSpec]) -> None:
        self.spec = spec
        opts = spec.options
        unknown = sorted(set(opts) - _NOTIFY_ONLY)
        if unknown:
            raise NotTestable(f"options {unknown} change evaluation and are not modelled")
        if opts.get("require_full_window"):
            raise NotTestable("require_full_window: true is not modelled")
        if opts.get("timeout_h"):
            raise NotTestable("timeout_h (auto-resolve) is not modelled")
        th = opts.get("thresholds") or {}
        if set(th) - {"critical", "warning"}:
            raise NotTestable(f"thresholds {sorted(set(th) - {'critical', 'warning'})}")
        self.warning = th.get("warning")
        self.delay = int(opts.get("evaluation_delay") or 0)
        self.notify_no_data = bool(opts.get("notify_no_data"))
        if spec.burn_rate is not None:
            self.impl: MetricEvaluator | BurnRateEvaluator | None = None
            slo = slos.get(spec.burn_rate.slo)
            if slo is None:
                raise NotTestable(f"SLO {spec.burn_rate.slo!r} is not defined")
            self.comparator, self.critical = ">", spec.burn_rate.threshold
            self.window_s = duration_s(spec.burn_rate.long_window)
            self._slo = slo
        elif spec.type in ("query alert", "metric alert"):
            assert spec.query is not None
            self.q = parse_metric_query(spec.query)
            self.comparator, self.critical = self.q.comparator, self.q.threshold
            self.window_s = self.q.window_s
        else:
            raise NotTestable(f"monitor type {spec.type!r} is not modelled")
        if "critical" in th and float(th["critical"]) != self.critical:
            raise NotTestable("thresholds.critical differs from the query")
        ndt = opts.get("no_data_timeframe")
        self.no_data_s = int(ndt) * 60 if ndt else 2 * self.window_s

    def evaluator(self, series: list[Series]) -> MetricEvaluator | BurnRateEvaluator:
        if self.spec.burn_rate is not None:
            return BurnRateEvaluator(self.spec, self._slo, series)
        return MetricEvaluator(self.q, series)

    def judge(self, value: float) -> str:
        cmp = _CMP[self.comparator]
        if cmp(value, self.critical):
            return ALERT
        if self.warning is not None and cmp(value, float(self.warning)):
            return WARN
        return OK

    def run(self, series: list[Series], times: Iterable[int], step: int) -> Evaluation:
        """Evaluate every `step` seconds from 0 to the last of `times` (state carries over)."""
        ev = self.evaluator(series)
        wanted = sorted(set(times))
        end = wanted[-1] if wanted else 0
        grid = sorted(set(range(0, end + 1, max(step, 1))) | set(wanted))
        out = Evaluation(self.spec.id)
        state: dict[Group, str] = {}
        groups = ev.groups()
        for t in grid:
            vals = self.step(ev, groups, state, t)
            if t in wanted:
                out.states[t] = {g: s for g, s in state.items()}
                out.values[t] = vals
        return out

    def step(
        self,
        ev: MetricEvaluator | BurnRateEvaluator,
        groups: Iterable[Group],
        state: dict[Group, str],
        t: float,
    ) -> dict[Group, float | None]:
        """One evaluation at `t`: `state` (the previous one's) is updated in place."""
        at = t - self.delay
        vals: dict[Group, float | None] = {}
        for g in groups:
            v = ev.value(g, at)
            vals[g] = v
            if v is not None:
                state[g] = self.judge(v)
                continue
            last = ev.last_data(g, at)
            if last is None:
                if not g:  # a simple monitor starts in No Data
                    state.setdefault(g, NO_DATA)
                # a group exists only once it has reported
            elif self.notify_no_data and at - last >= self.no_data_s:
                state[g] = NO_DATA
            # otherwise the group keeps its previous state
        return vals


def overall_state(state: dict[Group, str]) -> str:
    """A multi-alert monitor's state is its worst group's; No Data before any group reported."""
    if not state:
        return NO_DATA
    return max(state.values(), key=lambda s: _SEVERITY[s])


class BurnRateEvaluator:
    """Burn rate of an SLO over a long and a short window; the value is min(long, short)."""

    def __init__(self, spec: MonitorSpec, slo: SLOSpec, series: list[Series]) -> None:
        br = spec.burn_rate
        assert br is not None
        target = next((t.target for t in slo.thresholds if t.timeframe == br.over), None)
        if target is None:
            raise NotTestable(f"SLO {slo.id!r} has no {br.over} target")
        self.budget = 1 - target / 100
        self.long_s, self.short_s = duration_s(br.long_window), duration_s(br.short_window)
        self.slo = slo
        self.series = series
        if slo.type == "metric":
            assert slo.numerator and slo.denominator
            self.num = self._sum_query(slo.numerator)
            self.den = self._sum_query(slo.denominator)
        else:
            ts = slo.time_slice
            assert ts is not None
            self.slice_s = ts.query_interval_seconds
            q = parse_metric_query(f"percentile(last_{self.slice_s // 60}m):{ts.query} > 0")
            if ts.query.split(":", 1)[0] not in _PCTS:
                raise NotTestable("time-slice SLIs are modelled for pNN queries only")
            self.slice_q = MetricEvaluator(q, series)
            self.cmp, self.limit = _CMP[ts.comparator], ts.threshold

    def _sum_query(self, text: str) -> MetricEvaluator:
        q = parse_metric_query(f"sum(last_1m):{text} > 0")
        if any(t.by for t in q.terms()) or not all(t.as_count for t in q.terms()):
            raise NotTestable("metric SLO queries are modelled as ungrouped .as_count() sums")
        return MetricEvaluator(q, self.series)

    def groups(self) -> set[Group]:
        return {()}

    def last_data(self, group: Group, t: float) -> int | None:
        ev = self.den if self.slo.type == "metric" else self.slice_q
        return ev.last_data(group, t)

    def _rate(self, t: float, window: int) -> float | None:
        if self.slo.type == "metric":
            good, total = self.num.value((), t, window), self.den.value((), t, window)
            if not total:
                return None
            return (1 - (good or 0) / total) / self.budget
        # every slice ending inside (t - window, t] counts, those before the data too:
        # a slice without data is good (uptime), as Datadog counts it
        first = (math.floor((t - window) / self.slice_s) + 1) * self.slice_s
        ends = list(range(first, int(t) + 1, self.slice_s))
        if not ends or self.last_data((), t) is None:
            return None
        bad = 0
        for e in ends:
            v = self.slice_q.value((), e)
            if v is not None and not self.cmp(v, self.limit):
                bad += 1
        return (bad / len(ends)) / self.budget

    def value(self, group: Group, t: float) -> float | None:
        long_r, short_r = self._rate(t, self.long_s), self._rate(t, self.short_s)
        if long_r is None or short_r is None:
            return None
        # both windows must burn: the lower of the two is what crosses the threshold
        return min(long_r, short_r)
