"""Loading monitor, dashboard and monitor-test YAML through the shared spec loader.

Environments: `monitors/env/<env>.yaml` holds the Jinja2 variables of one environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from omnidrill.errors import UsageError
from omnidrill.spec.errors import Problem, SpecError, display_path
from omnidrill.spec.loader import load_file
from omnidrill.spec.yamlpos import Positions, dotted

Loc = tuple[str | int, ...]
FOLDERS = {"monitor": "monitors", "dashboard": "dashboards", "monitor_test": "monitors/tests"}


@dataclass
class SourceFile:
    """A validated file: its model and where each field was written."""

    path: Path
    kind: str
    model: Any
    positions: Positions

    def line_of(self, loc: Loc) -> int | None:
        return self.positions.nearest(loc)[0]

    def problem(self, loc: Loc, message: str) -> Problem:
        """A Problem at the closest known position of `loc`."""
        line, col = self.positions.nearest(loc)
        if line is not None and self.positions.rendered:
            message += " (the line is in the rendered template: Jinja2 blocks move lines)"
        return Problem(
            file=display_path(self.path), message=message, line=line, column=col, field=dotted(loc)
        )


def load(path: Path, kind: str, variables: dict[str, Any] | None = None) -> SourceFile:
    """Render, parse and validate one file of `kind`; SpecError names file, line and field."""
    spec = load_file(path, kind=kind, variables=variables or {})
    return SourceFile(path=path, kind=kind, model=spec.model, positions=spec.positions)


def env_variables(root: Path, env: str) -> dict[str, Any]:
    """The Jinja2 variables of an environment: monitors/env/<env>.yaml plus `env` itself."""
    folder = root / "monitors" / "env"
    path = folder / f"{env}.yaml"
    if not path.is_file():
        from omnidrill.spec.suggest import did_you_mean

        avail = sorted(p.stem for p in folder.glob("*.yaml"))
        raise UsageError(
            f"no environment {env!r}: {path} does not exist (have: {', '.join(avail)})"
            + did_you_mean(env, avail)
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of variables, found {type(data).__name__}")
    return {**data, "env": env}


def is_production(variables: dict[str, Any]) -> bool:
    """An environment file says `production: true` for environments that page people."""
    return bool(variables.get("production"))


def files_of(root: Path, kind: str) -> list[Path]:
    """The YAML files of a kind, in a stable order."""
    base = root / FOLDERS[kind]
    return sorted([*base.glob("*.yaml"), *base.glob("*.yml")])


OBSERVE_KINDS = frozenset(FOLDERS)


def validation_variables(root: Path, context: dict[str, Any]) -> dict[str, Any]:
    """Variables for `omnidrill validate` on monitor/dashboard/test files: the environment
    named by `--var env=NAME` (staging when absent), then the general context on top."""
    env = str(context.get("env") or "staging")
    return {**env_variables(root, env), **context, "env": env}


__all__ = [
    "OBSERVE_KINDS",
    "Problem",
    "SourceFile",
    "SpecError",
    "env_variables",
    "files_of",
    "load",
    "validation_variables",
]
