"""From pydantic's validation errors to one message per mistake, at the line that holds it.

Pydantic reports a value that fits no member of a union once per member, a misspelt field as
both missing and unknown, and a step with an unknown `action:` as a failed discriminator. A
user made one mistake each time: this module picks the most specific explanation, adds a
"did you mean" where a valid word is close, and says where the mistake is.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, RootModel, Tag, ValidationError

from omnidrill.spec.errors import Problem
from omnidrill.spec.suggest import closest, did_you_mean
from omnidrill.spec.yamlpos import Positions, dotted

Step = tuple[str, str | int]  # ("d", a key or index in the data) or ("b", a union branch)
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


@dataclass
class _Err:
    """One pydantic error, its location split into data steps and union branches."""

    steps: list[Step]
    err: dict[str, Any]
    work: list[Step] = field(default_factory=list)  # steps whose branches are not chosen yet

    @property
    def path(self) -> tuple[str | int, ...]:
        return tuple(p for k, p in self.steps if k == "d")


@dataclass
class _Merged:
    """Errors from every member of a union at one place: the value fits none of them."""

    path: tuple[str | int, ...]
    errs: list[_Err]


def problems_from(
    exc: ValidationError, file: str, data: Any, positions: Positions, model: type[BaseModel]
) -> list[Problem]:
    """One problem per mistake, each with line, column, field and what was expected."""
    errs = []
    for err in exc.errors(include_url=False):
        steps = _split(err["loc"], data, err["type"])
        errs.append(_Err(steps=steps, err=err, work=list(steps)))
    chosen = _select(errs)
    suggested: dict[tuple[str | int, ...], set[str]] = {}
    problems: list[Problem] = []
    for item in chosen:
        if isinstance(item, _Err) and item.err["type"] == "extra_forbidden":
            problem, hint = _unknown_field(item, file, data, positions, model)
            if hint:
                suggested.setdefault(item.path[:-1], set()).add(hint)
            problems.append(problem)
    for item in chosen:
        if isinstance(item, _Merged):
            problems.append(_merged(item, file, data, positions))
        elif item.err["type"] == "missing":
            if item.path and item.path[-1] in suggested.get(item.path[:-1], set()):
                continue  # the misspelt field already says "did you mean" this one
            line, col = positions.nearest(item.path[:-1])
            name = item.path[-1] if item.path else "?"
            problems.append(
                Problem(file, f"missing required field {name!r}", line, col, dotted(item.path))
            )
        elif item.err["type"] != "extra_forbidden":
            problems.append(_value_problem(item, file, data, positions, model))
    # a mistake inside a Jinja2 loop is rendered once per pass: one message for the one line
    unique = {(p.line, p.column, p.message, p.line or p.field): p for p in reversed(problems)}
    return sorted(unique.values(), key=lambda p: (p.line or 0, p.column or 0))


def _split(loc: tuple[str | int, ...], data: Any, etype: str) -> list[Step]:
    """Tell the parts of a location that are in the data from the union branches between them."""
    steps: list[Step] = []
    cur = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_list or (isinstance(cur, dict) and part in cur):
            steps.append(("d", part))
            cur = cur[part]  # type: ignore[index]
        elif last and etype == "missing" and isinstance(part, str):
            steps.append(("d", part))  # a missing field is not in the data, by definition
        else:
            steps.append(("b", part))
    return steps


def _select(errs: list[_Err]) -> list[_Err | _Merged]:
    """At each union, keep the member that got furthest into the data; merge when none did."""
    out: list[_Err | _Merged] = []
    groups: dict[tuple[Step, ...], list[_Err]] = {}
    for e in errs:
        i = next((n for n, s in enumerate(e.work) if s[0] == "b"), None)
        if i is None:
            out.append(e)
        else:
            groups.setdefault(tuple(e.work[:i]), []).append(e)
    for site, members in groups.items():
        i = len(site)
        by_branch: dict[str | int, list[_Err]] = {}
        for e in members:
            by_branch.setdefault(e.work[i][1], []).append(e)

        def depth(es: list[_Err], i: int = i) -> int:
            return max(sum(1 for k, _ in e.work[i + 1 :] if k == "d") for e in es)

        best = max(by_branch.values(), key=depth)
        if len(by_branch) > 1 and depth(best) == 0:
            out.append(_Merged(path=tuple(p for _, p in site), errs=members))
            continue
        for e in best:
            e.work = e.work[:i] + e.work[i + 1 :]
        out += _select(best)
    return out


# --- the types at a location ----------------------------------------------------------------


def _flatten(t: Any, tag: str | None = None) -> list[tuple[Any, str | None]]:
    """The members of a type (unions opened, Annotated unwrapped), each with its Tag if any."""
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        args = typing.get_args(t)
        tag = next((m.tag for m in args[1:] if isinstance(m, Tag)), tag)
        return _flatten(args[0], tag)
    if origin in (typing.Union, types.UnionType):
        return [x for a in typing.get_args(t) for x in _flatten(a, tag)]
    if isinstance(t, type) and issubclass(t, RootModel):
        return _flatten(t.model_fields["root"].annotation, tag)
    return [(t, tag)]


def _branch_is(t: Any, tag: str | None, part: str | int) -> bool:
    if not isinstance(part, str):
        return False
    if tag is not None:
        return tag == part
    origin = typing.get_origin(t)
    if origin is typing.Literal:
        return part.startswith("literal[")
    if origin is not None:
        return part.startswith(f"{getattr(origin, '__name__', '')}[")
    return isinstance(t, type) and part in (t.__name__, t.__name__.lower())


def _field_type(model: type[BaseModel], name: str) -> Any:
    f = model.model_fields.get(name) or next(
        (f for f in model.model_fields.values() if f.alias == name), None
    )
    return None if f is None else f.annotation


def _members_at(model: type[BaseModel], steps: list[Step]) -> list[tuple[Any, str | None]]:
    """The types a value at these steps may have (best effort: Any ends the walk)."""
    cands = _flatten(model)
    for kind, part in steps:
        if kind == "b":
            hit = [c for c in cands if _branch_is(c[0], c[1], part)]
            cands = hit or cands
            continue
        nxt: list[tuple[Any, str | None]] = []
        for t, _ in cands:
            origin = typing.get_origin(t)
            args = typing.get_args(t)
            if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(part, str):
                ann = _field_type(t, part)
                if ann is not None:
                    nxt += _flatten(ann)
            elif origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
                nxt += _flatten(args[0])
            elif origin is dict and len(args) == 2:
                nxt += _flatten(args[1])
        cands = nxt
    return cands


def _fields_of(members: list[tuple[Any, str | None]]) -> list[str]:
    names: list[str] = []
    for t, _ in members:
        if isinstance(t, type) and issubclass(t, BaseModel) and not issubclass(t, RootModel):
            names += [f.alias or n for n, f in t.model_fields.items()]
    return sorted(set(names))


def _keyed_tags(members: list[tuple[Any, str | None]]) -> dict[str, list[str]]:
    """Tags written `key:value` (a step's `action:` or `check:`): values per key."""
    keyed: dict[str, list[str]] = {}
    for _, tag in members:
        if tag is None or ":" not in tag:
            return {}
        key, _, value = tag.partition(":")
        keyed.setdefault(key, []).append(value)
    return dict(sorted(keyed.items()))


# --- messages ---------------------------------------------------------------------------------


def _data_at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _found(value: Any) -> str:
    if isinstance(value, dict | list):
        return ""
    text = repr(value)
    return f", found {text if len(text) <= 80 else text[:77] + '...'}"


def _expected(msg: str) -> str:
    for prefix, repl in (
        ("Input should be ", "expected "),
        ("Value error, ", ""),
        ("Assertion failed, ", ""),
    ):
        if msg.startswith(prefix):
            return repl + msg[len(prefix) :]
    return msg


def _literals(err: dict[str, Any]) -> list[str]:
    expected = str((err.get("ctx") or {}).get("expected", ""))
    quoted = _QUOTED.findall(expected)
    if quoted:
        return [f"'{q}'" for q in quoted]
    return [x for x in re.split(r", | or ", expected) if x]


def _unknown_field(
    e: _Err, file: str, data: Any, positions: Positions, model: type[BaseModel]
) -> tuple[Problem, str | None]:
    name = e.path[-1] if e.path else "?"
    allowed = _fields_of(_members_at(model, e.steps[:-1]))
    present = _data_at(data, e.path[:-1])
    taken = set(present) if isinstance(present, dict) else set()
    hint = closest(str(name), [a for a in allowed if a not in taken]) if allowed else None
    msg = f"unknown field {name!r}"
    if hint is not None:
        msg += f"; did you mean {hint!r}?"
    elif allowed:
        msg += f" (expected one of: {', '.join(allowed)})"
    line, col = positions.nearest(e.path, key=True)
    return Problem(file, msg, line, col, dotted(e.path)), hint


def _value_problem(
    e: _Err, file: str, data: Any, positions: Positions, model: type[BaseModel]
) -> Problem:
    members = _members_at(model, e.steps)
    keyed = _keyed_tags(members)
    if keyed and (not e.steps or e.steps[-1][0] == "d"):
        return _no_member(e.path, keyed, file, data, positions)
    err = e.err
    line, col = positions.nearest(e.path)
    if err["type"] == "literal_error":
        return Problem(
            file, _one_of(e.path, _literals(err), err.get("input")), line, col, dotted(e.path)
        )
    msg = _expected(err["msg"])
    if "input" in err and "found " not in msg:
        msg += _found(err["input"])
    return Problem(file, msg, line, col, dotted(e.path))


def _one_of(path: tuple[str | int, ...], forms: list[str], value: Any) -> str:
    """`unknown state 'Alrt'; did you mean 'Alert'?`, else every accepted form."""
    hint = did_you_mean(value, [f[1:-1] for f in forms if f.startswith("'")])
    if hint:
        label = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
        return f"unknown {label.replace('_', ' ')} {value!r}{hint}"
    listed = forms[0] if len(forms) == 1 else ", ".join(forms[:-1]) + " or " + forms[-1]
    return f"expected {listed}{_found(value)}"


def _no_member(
    path: tuple[str | int, ...],
    keyed: dict[str, list[str]],
    file: str,
    data: Any,
    positions: Positions,
) -> Problem:
    """A tagged union (a step's `action:`/`check:`, a scenario's `type:`) found no member."""
    value = _data_at(data, path)
    keys = " or ".join(f"`{k}:`" for k in keyed)
    choices = "; ".join(f"{k}: {', '.join(v)}" for k, v in keyed.items())
    line, col = positions.nearest(path)
    if not isinstance(value, dict):
        return Problem(
            file, f"expected a mapping with {keys}{_found(value)}", line, col, dotted(path)
        )
    given = [k for k in keyed if k in value]
    if len(given) > 1:
        msg = f"expected exactly one of {keys}, found {' and '.join(f'`{k}:`' for k in given)}"
        return Problem(file, msg, line, col, dotted(path))
    if not given:
        for key in value:
            hint = closest(str(key), keyed)
            if hint is not None:
                where = positions.nearest((*path, key), key=True)
                msg = f"unknown field {key!r}; did you mean {hint!r}?"
                return Problem(file, msg, *where, dotted((*path, key)))
        return Problem(file, f"missing {keys} ({choices})", line, col, dotted(path))
    key = given[0]
    word = value[key]
    at = positions.nearest((*path, key))
    where = dotted((*path, key))
    for other, values in keyed.items():
        if other != key and word in values:
            return Problem(file, f"{word!r} is a {other}: write `{other}: {word}`", *at, where)
    msg = f"unknown {key} {word!r}" if isinstance(word, str) else f"expected a {key} name"
    hint = did_you_mean(word, keyed[key])
    msg += hint if hint else f" (expected one of: {', '.join(keyed[key])})"
    if not isinstance(word, str):
        msg += _found(word)
    return Problem(file, msg, *at, where)


def _merged(m: _Merged, file: str, data: Any, positions: Positions) -> Problem:
    """A value that fits no member of a union: one line naming every accepted form."""
    literal: list[str] = []
    other: list[str] = []
    for e in m.errs:
        if e.err["type"] == "literal_error":
            literal += [v for v in _literals(e.err) if v not in literal]
        else:
            text = _expected(e.err["msg"]).removeprefix("expected ")
            if text not in other:
                other.append(text)
    line, col = positions.nearest(m.path)
    msg = _one_of(m.path, literal + other, _data_at(data, m.path))
    return Problem(file, msg, line, col, dotted(m.path))
