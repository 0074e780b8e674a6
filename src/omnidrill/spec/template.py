"""Rendering of YAML files as Jinja2 templates, with errors that name the template line."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import jinja2

from omnidrill.spec.errors import Problem

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # YAML, not HTML
)


def render(text: str, file: str, variables: Mapping[str, Any]) -> tuple[str | None, list[Problem]]:
    """Render text; on failure return the problem with the template line it happened on."""
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text, []
    try:
        # Compiled under the file's name so tracebacks point at template lines.
        code = _ENV.compile(text, name=file, filename=file)
        template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
        return template.render(**variables), []
    except jinja2.TemplateSyntaxError as exc:
        return None, [
            Problem(file=file, line=exc.lineno, message=f"template syntax error: {exc.message}")
        ]
    except jinja2.UndefinedError as exc:
        known = ", ".join(sorted(variables)) or "(none)"
        return None, [
            Problem(
                file=file,
                line=_template_line(file),
                message=(
                    f"undefined template variable: {exc.message}; the variables are {known}, "
                    "plus any --var k=v"
                ),
            )
        ]
    except Exception as exc:  # a filter or test raised: still the template's fault
        return None, [
            Problem(file=file, line=_template_line(file), message=f"template error: {exc}")
        ]


def _template_line(file: str) -> int | None:
    """Jinja2 rewrites tracebacks to template lines; take the deepest frame in this template."""
    tb = sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
