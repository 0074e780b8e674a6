"""Rendering of YAML files as Jinja2 templates, keeping a map from rendered text to template text.

Jinja2 blocks (`{% for %}`, `{% if %}`) move lines and expressions change columns, so a YAML
error in the rendered text would point at the wrong place. Before rendering, every run of
template text gets an invisible marker holding its offset in the template, and every `{{ }}` a
marker holding the offset of its `{{`; rendering carries them through loops and conditions;
reading them back gives, for each rendered line and column, the template line and column.
"""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

from omnidrill.spec.errors import Problem

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # YAML, not HTML
)

# Markers: one private-use character for the kind, two for the offset (base 2048).
_DATA, _EXPR = "\ue000", "\ue001"
_DIGIT0, _BASE = 0xF000, 2048
_MARK_RE = re.compile("[\ue000\ue001][\uf000-\uf7ff]{2}")
_PRIVATE_RE = re.compile("[\ue000-\uf8ff]")
_OPENER_RE = re.compile(r"\{([{%#])([-+]?)")
_CLOSERS = {"{": "}}", "%": "%}", "#": "#}"}
_RAW_RE = re.compile(r"\s*raw\s*[-+]?%\}")
_ENDRAW_RE = re.compile(r"\{%[-+]?\s*endraw\s*([-+]?)%\}")
# Constructs whose output templates may inspect (captured blocks, macros, filters): checked.
_CAPTURES = ("endset", "endfilter", "macro", "endcall")


@dataclass
class LineMap:
    """Where each rendered line and column came from in the template (1-based both ways)."""

    source_line_starts: list[int]
    # per rendered line: (rendered column, template offset, advances with the text?)
    segments: list[list[tuple[int, int, bool]]] = field(default_factory=list)

    def to_source(self, line: int, column: int | None) -> tuple[int, int | None]:
        """The template line and column of a rendered line and column."""
        if not self.segments:
            return line, column
        segs = self.segments[min(max(line, 1), len(self.segments)) - 1]
        col0 = (column or 1) - 1
        i = bisect.bisect_right([s[0] for s in segs], col0) - 1
        rcol, offset, advances = segs[max(i, 0)]
        if advances:
            offset += col0 - rcol
        src_line = bisect.bisect_right(self.source_line_starts, offset)
        src_col = offset - self.source_line_starts[src_line - 1] + 1
        return src_line, (src_col if column is not None else None)


def _mark(offset: int, kind: str) -> str:
    return kind + chr(_DIGIT0 + offset // _BASE) + chr(_DIGIT0 + offset % _BASE)


def _tag_end(text: str, pos: int, closer: str) -> int | None:
    """Index just past the closer of a tag whose body starts at pos (strings, brackets skipped)."""
    depth = 0
    i = pos
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"" and closer != "#}":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if depth == 0:
            for lead in ("-", "+", ""):
                if text.startswith(lead + closer, i):
                    end = i + len(lead) + len(closer)
                    if lead == "-":  # Jinja2 eats the whitespace after `-}}`
                        while end < n and text[end].isspace():
                            end += 1
                    return end
        if closer != "#}":
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(depth - 1, 0)
        i += 1
    return None


def _with_markers(text: str) -> str | None:
    """The template with offset markers in its text runs and before its expressions."""
    out: list[str] = []
    pos = 0
    n = len(text)
    while pos <= n:
        m = _OPENER_RE.search(text, pos)
        data_end = m.start() if m else n
        data = text[pos:data_end]
        out.append(_mark(pos, _DATA))
        if m is None:
            out.append(data)
            break
        kind, sign = m.group(1), m.group(2)
        if kind == "{":
            # before the whitespace that `{{-` strips, so the stripping still happens
            keep = len(data.rstrip()) if sign == "-" else len(data)
            out += [data[:keep], _mark(m.start(), _EXPR), data[keep:]]
        else:
            out.append(data)
        end = _tag_end(text, m.end(), _CLOSERS[kind])
        if end is None:
            return None  # let Jinja2 report the unclosed tag
        out.append(text[m.start() : end])
        pos = end
        if kind == "%" and _RAW_RE.match(text, m.end()):
            close = _ENDRAW_RE.search(text, pos)
            if close is None:
                return None
            out += [_mark(pos, _DATA), text[pos : close.end()]]
            pos = close.end()
    return "".join(out)


class _Reader:
    """Walks rendered text with markers: drops them, and notes where each line came from."""

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.lines: list[list[tuple[int, int, bool]]] = [[(0, 0, True)]]
        self.col = 0  # in the current rendered line
        self.offset = 0  # in the template, of the next character
        self.advances = True  # template text moves on with the output; an expression's does not

    def marker(self, tag: str) -> None:
        self.offset = (ord(tag[1]) - _DIGIT0) * _BASE + ord(tag[2]) - _DIGIT0
        self.advances = tag[0] == _DATA
        self.lines[-1].append((self.col, self.offset, self.advances))

    def text(self, chunk: str) -> None:
        self.plain.append(chunk)
        start = 0
        while (nl := chunk.find("\n", start)) >= 0:
            if self.advances:
                self.offset += nl + 1 - start
            self.col = 0
            self.lines.append([(0, self.offset, self.advances)])
            start = nl + 1
        if self.advances:
            self.offset += len(chunk) - start
        self.col += len(chunk) - start


def _read_markers(marked: str, source: str) -> tuple[str, LineMap]:
    """The rendered text without markers, and its map back to the template."""
    reader = _Reader()
    idx = 0
    for m in _MARK_RE.finditer(marked):
        reader.text(marked[idx : m.start()])
        reader.marker(m.group())
        idx = m.end()
    reader.text(marked[idx:])
    starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]
    return "".join(reader.plain), LineMap(source_line_starts=starts, segments=reader.lines)


def _render_plain(text: str, file: str, variables: Mapping[str, Any]) -> str:
    # Compiled under the file's name so tracebacks point at template lines.
    code = _ENV.compile(text, name=file, filename=file)
    template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
    return template.render(**variables)


def render(
    text: str, file: str, variables: Mapping[str, Any]
) -> tuple[str | None, list[Problem], LineMap | None]:
    """Render text; the map is None when rendering moved nothing (or could not be traced)."""
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text, [], None
    marked = None
    if len(text) < _BASE * _BASE and not _PRIVATE_RE.search(text):
        marked = _with_markers(text)
    if marked is not None:
        try:
            rendered, line_map = _read_markers(_render_plain(marked, file, variables), text)
        except Exception:  # the plain rendering below reports it
            pass
        else:
            if not any(c in text for c in _CAPTURES):
                return rendered, [], line_map
            if rendered == _render_plain(text, file, variables):
                return rendered, [], line_map
    try:
        return _render_plain(text, file, variables), [], None
    except jinja2.TemplateSyntaxError as exc:
        return (
            None,
            [Problem(file=file, line=exc.lineno, message=f"template syntax error: {exc.message}")],
            None,
        )
    except jinja2.UndefinedError as exc:
        known = ", ".join(sorted(variables)) or "(none)"
        message = (
            f"undefined template variable: {exc.message}; the variables are {known}, "
            "plus any --var k=v"
        )
        return None, [Problem(file=file, line=_template_line(file), message=message)], None
    except Exception as exc:  # a filter or test raised: still the template's fault
        problem = Problem(file=file, line=_template_line(file), message=f"template error: {exc}")
        return None, [problem], None


def _template_line(file: str) -> int | None:
    """Jinja2 rewrites tracebacks to template lines; take the deepest frame in this template."""
    tb = sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
