"""One loader for every YAML kind: Jinja2 template, then YAML, then typed models."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from omnidrill.spec.errors import Problem, SpecError, display_path
from omnidrill.spec.kinds import KINDS, Kind, KindUnavailable, get_kind, kind_from_folder
from omnidrill.spec.template import render
from omnidrill.spec.yamlpos import Positions, dotted, parse_yaml

YAML_SUFFIXES = {".yaml", ".yml"}


@dataclass
class LoadedSpec:
    """A file that rendered, parsed and validated."""

    kind: str
    path: Path
    model: Any  # an instance of the kind's model
    source: str  # the rendered YAML text
    positions: Positions  # where each value stood in the rendered text


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
    rendered, problems = render(text, name, variables or {})
    if rendered is None:
        raise SpecError(problems)
    data, positions, problems = parse_yaml(rendered, name)
    if problems:
        raise SpecError(_mark_rendered(problems, text))
    spec_kind = _resolve_kind(path, name, data, kind)
    if isinstance(data, dict) and data.get("kind") in KINDS:
        data = {k: v for k, v in data.items() if k != "kind"}
    model_cls = spec_kind.model()
    if data is None:
        raise SpecError([Problem(file=name, line=1, message="the file is empty")])
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        problems = _problems_from(exc, name, data, positions, model_cls)
        raise SpecError(_mark_rendered(problems, text)) from None
    return LoadedSpec(
        kind=spec_kind.name, path=path, model=model, source=rendered, positions=positions
    )


def _mark_rendered(problems: list[Problem], template: str) -> list[Problem]:
    """Jinja2 blocks (loops, ifs) move lines: say that a line is in the rendered text."""
    if "{%" not in template:
        return problems
    note = " (line of the rendered template: Jinja2 blocks move lines)"
    return [replace(p, message=p.message + note) if p.line else p for p in problems]


def _resolve_kind(path: Path, name: str, data: Any, wanted: str | None) -> Kind:
    declared = data.get("kind") if isinstance(data, dict) else None
    if isinstance(declared, str) and declared in KINDS:
        if wanted and declared != wanted:
            raise SpecError(
                [Problem(file=name, field="kind", message=f"expected a {wanted}, found {declared}")]
            )
        return KINDS[declared]
    if wanted:
        return get_kind(wanted)
    by_folder = kind_from_folder(path)
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


def _problems_from(
    exc: ValidationError,
    file: str,
    data: Any,
    positions: Positions,
    model_cls: type[BaseModel],
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], data)
        kind = err["type"]
        if kind == "extra_forbidden":
            line, col = positions.nearest(path, key=True)
            field = str(path[-1]) if path else "?"
            msg = f"unknown field {field!r}"
            allowed = _allowed_fields(model_cls, path[:-1])
            close = difflib.get_close_matches(field, allowed, n=1)
            if close:
                msg += f"; did you mean {close[0]!r}?"
            if allowed:
                msg += f" (expected one of: {', '.join(sorted(allowed))})"
        elif kind == "missing":
            line, col = positions.nearest(path[:-1])
            msg = f"missing required field {path[-1]!r}" if path else "missing value"
        else:
            line, col = positions.nearest(path)
            msg = _expected(err["msg"])
            if kind not in {"value_error", "assertion_error"} or "input" in err:
                found = err.get("input")
                if not isinstance(found, dict | list):
                    msg += f", found {found!r}"
        problems.append(Problem(file=file, line=line, column=col, field=dotted(path), message=msg))
    return problems


def _expected(msg: str) -> str:
    for prefix, repl in (("Input should be ", "expected "), ("Value error, ", "")):
        if msg.startswith(prefix):
            return repl + msg[len(prefix) :]
    return msg


def _data_path(loc: Iterable[str | int], data: Any) -> tuple[str | int, ...]:
    """Keep the parts of a pydantic location that exist in the data (drop union tags)."""
    parts = list(loc)
    out: list[str | int] = []
    cur = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        in_dict = isinstance(cur, dict) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and part < len(cur)
        if in_dict or in_list:
            out.append(part)
            cur = cur[part]  # type: ignore[index]
        elif last and isinstance(part, str) and isinstance(cur, dict):
            out.append(part)  # a missing field: it is not in the data, by definition
    return tuple(out)


def _allowed_fields(model_cls: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """Field names accepted at path, following nested models (best effort)."""
    candidates: list[Any] = [model_cls]
    for part in path:
        nxt: list[Any] = []
        for c in candidates:
            for t in _flatten(c):
                if isinstance(part, int):
                    if typing.get_origin(t) in (list, tuple):
                        nxt.extend(typing.get_args(t)[:1])
                elif isinstance(t, type) and issubclass(t, BaseModel):
                    f = t.model_fields.get(part) or next(
                        (f for f in t.model_fields.values() if f.alias == part), None
                    )
                    if f is not None:
                        nxt.append(f.annotation)
                elif typing.get_origin(t) is dict:
                    nxt.extend(typing.get_args(t)[1:2])
        candidates = nxt
    names: list[str] = []
    for c in candidates:
        for t in _flatten(c):
            if isinstance(t, type) and issubclass(t, BaseModel):
                names += [f.alias or n for n, f in t.model_fields.items()]
    return sorted(set(names))


def _flatten(t: Any) -> list[Any]:
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(t)[0])
    if origin in (typing.Union, types.UnionType):
        return [x for a in typing.get_args(t) for x in _flatten(a)]
    return [t]


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
            problems.append(Problem(file=str(p), message="no such file or folder"))
    for f in files:
        try:
            loaded.append(load_file(f, variables=variables_for(f)))
        except SpecError as exc:
            problems += exc.problems
        except KindUnavailable as exc:
            problems.append(Problem(file=display_path(f), message=str(exc)))
    return loaded, problems
