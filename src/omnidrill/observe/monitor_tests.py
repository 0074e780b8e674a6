"""Running monitor unit tests (monitors/tests/*.yaml) against the compiled monitors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnidrill.observe.compile import Compiled, compile_monitors
from omnidrill.observe.evaluate import (
    MonitorModel,
    NotTestable,
    Series,
    duration_s,
    expand_values,
    parse_group,
    parse_series_name,
)
from omnidrill.observe.models import MonitorTestFile
from omnidrill.observe.source import (
    Problem,
    SourceFile,
    SpecError,
    env_variables,
    files_of,
    load,
)
from omnidrill.spec.errors import display_path


@dataclass
class Failure:
    """An expectation that did not hold: where, when, which state was wanted and found."""

    file: str
    test: str
    monitor: str
    at: str
    group: str | None
    expected: str
    found: str
    value: float | None

    def __str__(self) -> str:
        grp = f" group {self.group}" if self.group else ""
        val = f" (value {self.value:.6g})" if self.value is not None else ""
        return (
            f"{self.file}: test {self.test!r}: monitor {self.monitor}{grp} at {self.at}: "
            f"expected {self.expected}, found {self.found}{val}"
        )


@dataclass
class TestReport:
    checked: int = 0
    failures: list[Failure] = field(default_factory=list)
    not_testable: dict[str, str] = field(default_factory=dict)  # monitor id -> reason
    blocked: list[str] = field(default_factory=list)  # expectations on not-testable monitors
    untested: list[str] = field(default_factory=list)  # monitors no test mentions

    @property
    def ok(self) -> bool:
        return not self.failures and not self.blocked


def _where(src: SourceFile, loc: tuple[str | int, ...]) -> str:
    """file:line, or the line in the rendered text where it could not be traced to the file."""
    line = src.line_of(loc)
    shifted = src.positions.rendered
    return f"{display_path(src.path)}" + (f" (rendered line {line})" if shifted else f":{line}")


def run_tests(
    root: Path,
    env: str,
    variables: dict[str, Any] | None = None,
    files: list[Path] | None = None,
    compiled: Compiled | None = None,
) -> TestReport:
    """Run every test file (or `files`) against the monitors of `env`.

    `compiled`: the monitors of `env` already compiled (its variables are then the ones used).
    """
    if compiled is None:
        variables = variables if variables is not None else env_variables(root, env)
        compiled = compile_monitors(root, env, variables)
    variables = compiled.variables
    monitors, slos = compiled.monitor_specs(), compiled.slo_specs()
    report = TestReport()
    models: dict[str, MonitorModel] = {}
    for mid, spec in monitors.items():
        try:
            models[mid] = MonitorModel(spec, slos)
        except NotTestable as exc:
            report.not_testable[mid] = str(exc)
    problems: list[Problem] = []
    mentioned: set[str] = set()
    for path in files if files is not None else files_of(root, "monitor_test"):
        try:
            src = load(path, "monitor_test", variables)
        except SpecError as exc:
            problems += exc.problems
            continue
        model: MonitorTestFile = src.model
        for ti, case in enumerate(model.tests):
            loc = ("tests", ti)
            try:
                step = duration_s(case.interval)
                series = []
                for si, inp in enumerate(case.input_series):
                    try:
                        metric, tags = parse_series_name(inp.series)
                        values = expand_values(inp.values)
                    except ValueError as exc:
                        problems.append(src.problem((*loc, "input_series", si), str(exc)))
                        continue
                    series.append(Series(metric, tags, values, step))
            except ValueError as exc:
                problems.append(src.problem((*loc, "interval"), str(exc)))
                continue
            by_monitor: dict[str, list[tuple[int, Any, str]]] = {}
            for ei, exp in enumerate(case.expect):
                if exp.monitor not in monitors:
                    msg = f"no monitor {exp.monitor!r} (have: {', '.join(sorted(monitors))})"
                    problems.append(src.problem((*loc, "expect", ei, "monitor"), msg))
                    continue
                if exp.group is not None:
                    try:
                        parse_group(exp.group)
                    except ValueError as exc:
                        problems.append(src.problem((*loc, "expect", ei, "group"), str(exc)))
                        continue
                mentioned.add(exp.monitor)
                where = _where(src, (*loc, "expect", ei))
                by_monitor.setdefault(exp.monitor, []).append((duration_s(exp.at), exp, where))
            for mid, exps in by_monitor.items():
                if mid in report.not_testable:
                    report.blocked += [
                        f"{src.path}: test {case.name!r}: monitor {mid} is not testable: "
                        f"{report.not_testable[mid]}"
                    ]
                    continue
                try:
                    ev = models[mid].run(series, [t for t, _, _ in exps], step=60)
                except NotTestable as exc:
                    report.blocked.append(
                        f"{src.path}: test {case.name!r}: monitor {mid} cannot be evaluated "
                        f"on these series: {exc}"
                    )
                    continue
                for t, exp, where in exps:
                    report.checked += 1
                    if exp.group is None:
                        found = ev.overall(t)
                        vals = [v for v in ev.values.get(t, {}).values() if v is not None]
                        value = max(vals) if len(vals) == 1 else None
                    else:
                        g = parse_group(exp.group)
                        found = ev.group_state(t, g) or "absent (the group never reported)"
                        value = ev.values.get(t, {}).get(g)
                    if found != exp.state:
                        report.failures.append(
                            Failure(
                                where,
                                case.name,
                                mid,
                                exp.at,
                                exp.group,
                                exp.state,
                                found,
                                value,
                            )
                        )
    if problems:
        raise SpecError(problems)
    report.untested = sorted(set(monitors) - mentioned)
    return report
