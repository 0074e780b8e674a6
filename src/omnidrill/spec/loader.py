"""One loader for every YAML kind: Jinja2 template, then YAML, then typed models."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from omnidrill.spec.errors import Problem, SpecError, display_path
from omnidrill.spec.explain import problems_from
from omnidrill.spec.kinds import KINDS, Kind, KindUnavailable, get_kind, kind_from_folder
from omnidrill.spec.template import LineMap, render
from omnidrill.spec.yamlpos import Positions, parse_yaml

YAML_SUFFIXES = {".yaml", ".yml"}


@dataclass
class LoadedSpec:
    """A file that rendered, parsed and validated."""

    kind: str
    path: Path
    model: Any  # an instance of the kind's model
    source: str  # the rendered YAML text
    positions: Positions  # where each value stood in the file (template lines, not rendered)


def load_file(
    path: Path | str,
    *,
    kind: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> LoadedSpec:
    """Load one file; raise SpecError listing every problem found in it."""
    path = Path(path)
    name = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(file=name, message=f"cannot read the file: {exc}")]) from None
    if path.suffix not in YAML_SUFFIXES:
        raise SpecError([Problem(file=name, message=_not_yaml(path))])
    rendered, problems, line_map = render(text, name, variables or {})
    if rendered is None:
        raise SpecError(problems)
    data, positions, problems = parse_yaml(rendered, name)
    if line_map is not None:
        positions = positions.mapped(line_map.to_source)
        problems = [_at_source(p, line_map) for p in problems]
    elif "{%" in text:
        positions.rendered = True
    if problems:
        raise SpecError(_mark_rendered(problems, positions))
    spec_kind = _resolve_kind(path, name, data, kind)
    if isinstance(data, dict) and data.get("kind") in KINDS:
        data = {k: v for k, v in data.items() if k != "kind"}
    model_cls = spec_kind.model()
    if data is None:
        raise SpecError([Problem(file=name, line=1, message="the file is empty")])
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        problems = problems_from(exc, name, data, positions, model_cls)
        raise SpecError(_mark_rendered(problems, positions)) from None
    return LoadedSpec(
        kind=spec_kind.name, path=path, model=model, source=rendered, positions=positions
    )


def wrong_kind(found: str, wanted: str | tuple[str, ...]) -> str:
    """`this is a drill, not a scenario: use `omnidrill run``."""
    names = (wanted,) if isinstance(wanted, str) else wanted
    return f"this is a {found}, not a {' or '.join(names)}: {KINDS[found].used_by}"


def _not_yaml(path: Path) -> str:
    kinds = ", ".join(f"{k.folder}/" for k in KINDS.values())
    return f"not a YAML file of a known kind (expected a .yaml or .yml file under {kinds})"


def _at_source(problem: Problem, line_map: LineMap) -> Problem:
    if problem.line is None:
        return problem
    line, column = line_map.to_source(problem.line, problem.column)
    return replace(problem, line=line, column=column)


def _mark_rendered(problems: list[Problem], positions: Positions) -> list[Problem]:
    """Where the rendering could not be traced back, say that a line is in the rendered text."""
    if not positions.rendered:
        return problems
    note = " (line of the rendered template: Jinja2 blocks move lines)"
    return [replace(p, message=p.message + note) if p.line else p for p in problems]


def _resolve_kind(path: Path, name: str, data: Any, wanted: str | None) -> Kind:
    declared = data.get("kind") if isinstance(data, dict) else None
    by_folder = kind_from_folder(path)
    found = KINDS[declared] if isinstance(declared, str) and declared in KINDS else by_folder
    if wanted and found is not None and found.name != wanted:
        raise SpecError([Problem(file=name, message=wrong_kind(found.name, wanted))])
    if found is not None and declared in KINDS:
        return found
    if wanted:
        return get_kind(wanted)
    if by_folder is None:
        raise SpecError(
            [
                Problem(
                    file=name,
                    message=(
                        "cannot tell the kind of this file: put it under one of "
                        + ", ".join(f"{k.folder}/" for k in KINDS.values())
                        + " or add a top-level `kind:` ("
                        + ", ".join(KINDS)
                        + ")"
                    ),
                )
            ]
        )
    return by_folder


def no_such_path(path: Path) -> str:
    """`no such file or folder`, with the likely cause: a flag's value, or a near name."""
    from omnidrill.spec.suggest import closest

    if str(path).lower() in {"true", "false", "yes", "no", "on", "off", "1", "0"}:
        return (
            "no such file or folder (flags such as --dry-run take no value: "
            f"drop the {str(path)!r} after it)"
        )
    folder = path.parent
    near = closest(path.name, [p.name for p in folder.iterdir()]) if folder.is_dir() else None
    if near is not None:
        return f"no such file or folder; did you mean {str(folder / near)!r}?"
    return "no such file or folder"


def discover(root: Path) -> list[Path]:
    """Every YAML file in the standard folders under root (direct children only)."""
    found: list[Path] = []
    for kind in KINDS.values():
        folder = root / kind.folder
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.suffix in YAML_SUFFIXES)
    return found


def validate_paths(
    paths: Iterable[Path], variables_for: typing.Callable[[Path], Mapping[str, Any]]
) -> tuple[list[LoadedSpec], list[Problem]]:
    """Load each file (folders are searched for YAML); collect every problem instead of stopping."""
    loaded: list[LoadedSpec] = []
    problems: list[Problem] = []
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            # only files whose folder names a kind: monitors/env/*.yaml are variables, not specs
            files += sorted(
                x
                for x in p.rglob("*")
                if x.suffix in YAML_SUFFIXES and kind_from_folder(x) is not None
            )
        elif p.exists():
            files.append(p)
        else:
            problems.append(Problem(file=str(p), message=no_such_path(p)))
    for f in files:
        try:
            loaded.append(load_file(f, variables=variables_for(f)))
        except SpecError as exc:
            problems += exc.problems
        except KindUnavailable as exc:
            problems.append(Problem(file=display_path(f), message=str(exc)))
    return loaded, problems
