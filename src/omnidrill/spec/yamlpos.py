"""YAML parsing that remembers where every key and value stood in the text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from omnidrill.spec.errors import Problem

Path_ = tuple[str | int, ...]
# libyaml's parser when PyYAML has it: the same nodes and marks, several times faster
_FAST: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Positions:
    """Line and column (1-based) of values and of mapping keys, by their path in the data."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    rendered: bool = False  # lines are those of the rendered template (blocks moved them)

    def mapped(self, to_source: Callable[[int, int], tuple[int, int | None]]) -> Positions:
        """The same positions moved through a map (rendered text to template text)."""

        def move(table: dict[Path_, tuple[int, int]]) -> dict[Path_, tuple[int, int]]:
            out = {}
            for path, (line, col) in table.items():
                src_line, src_col = to_source(line, col)
                out[path] = (src_line, src_col if src_col is not None else col)
            return out

        return Positions(values=move(self.values), keys=move(self.keys))

    def nearest(self, path: Path_, *, key: bool = False) -> tuple[int | None, int | None]:
        """Position of path, or of its closest ancestor that has one."""
        table = self.keys if key else self.values
        for n in range(len(path), -1, -1):
            hit = table.get(path[:n]) or self.values.get(path[:n])
            if hit:
                return hit
        return None, None


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, file: str):
        self.loader = loader
        self.file = file
        self.pos = Positions()
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.pos.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    self._problem(key_node, path, "a mapping key must be a plain scalar")
                    continue
                if key in out:
                    self._problem(key_node, (*path, key), f"duplicate key {key!r}")
                self.pos.keys[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _problem(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.problems.append(
            Problem(
                file=self.file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
                field=dotted(path),
                message=message,
            )
        )


def dotted(path: Path_) -> str:
    """`steps[2].expect.status` from ("steps", 2, "expect", "status")."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_yaml(text: str, file: str) -> tuple[Any, Positions, list[Problem]]:
    """Parse one YAML document; syntax errors come back as problems with line and column."""
    try:
        return _parse(text, file, _FAST)
    except yaml.YAMLError:
        pass  # the pure-Python parser names the offending character: it tells the error
    try:
        return _parse(text, file, yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return (
            None,
            Positions(),
            [
                Problem(
                    file=file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    message=f"invalid YAML: {what} (check the indentation and the quoting here)",
                )
            ],
        )
    except yaml.YAMLError as exc:
        return None, Positions(), [Problem(file=file, message=f"invalid YAML: {exc}")]


def _parse(text: str, file: str, loader_cls: type[Any]) -> tuple[Any, Positions, list[Problem]]:
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Positions(), []
        builder = _Builder(loader, file)
        data = builder.build(node, ())
        return data, builder.pos, builder.problems
    finally:
        loader.dispose()
