"""Positions in templated files are the template's own lines and columns, not the rendered ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnidrill.observe.source import validation_variables
from omnidrill.profile import development_profile, template_variables
from omnidrill.spec.loader import load_file
from omnidrill.spec.template import render

ROOT = Path(__file__).resolve().parents[2]
TEMPLATED = sorted(
    p.relative_to(ROOT)
    for folder in ("targets", "chaos", "scenarios", "monitors", "monitors/tests", "dashboards")
    for p in (ROOT / folder).glob("*.yaml")
    if "{{" in p.read_text() or "{%" in p.read_text()
)


def test_the_shipped_templated_files_are_found() -> None:
    with_blocks = [p for p in TEMPLATED if "{%" in (ROOT / p).read_text()]
    assert len(with_blocks) >= 10, with_blocks  # 14 when this test was written


@pytest.mark.parametrize("rel", TEMPLATED, ids=str)
def test_every_key_of_a_shipped_template_points_at_its_text(rel: Path) -> None:
    """Each mapping key's position, read in the template, is that key (or the `{{` making it)."""
    context = template_variables(development_profile(), {})
    if rel.parts[0] in ("monitors", "dashboards"):
        context = validation_variables(ROOT, context)
    spec = load_file(ROOT / rel, variables=context)
    lines = (ROOT / rel).read_text().splitlines()
    assert not spec.positions.rendered
    checked = 0
    for path, (line, col) in spec.positions.keys.items():
        at = lines[line - 1][col - 1 :]
        key = str(path[-1])
        assert at.startswith((key, f'"{key}', f"'{key}", "{{")), (path, line, col, at)
        checked += 1
    assert checked > 5


def _where(text: str, rendered_line: int, rendered_col: int) -> tuple[int, int | None]:
    rendered, problems, line_map = render(text, "t.yaml", {"items": ["a", "b"], "x": "X"})
    assert rendered is not None and not problems and line_map is not None
    return line_map.to_source(rendered_line, rendered_col)


@pytest.mark.parametrize(
    ("template", "rendered_at", "source_at"),
    [
        # a loop: the second pass maps back to the loop's body; what follows, to its line
        ("{% for i in items %}\n- {{ i }}: 1\n{% endfor %}\nlast: 1\n", (4, 6), (2, 12)),
        ("{% for i in items %}\n- {{ i }}: 1\n{% endfor %}\nlast: 1\n", (6, 1), (4, 1)),
        # an expression's output maps to its `{{`; text after it keeps its template column
        ("{% for i in items %}\n- {{ i }}: 1\n{% endfor %}\nlast: 1\n", (4, 3), (2, 3)),
        ("a: {{ x }}{{ x }}, b: 1\n", (1, 8), (1, 20)),
        # whitespace control strips text on both sides of a tag
        ("a:\n  {%- for i in items %}\n  - {{ i -}}\n  {% endfor %}\nz: 1\n", (3, 3), (3, 3)),
        ("a:\n  {%- for i in items %}\n  - {{ i -}}\n  {% endfor %}\nz: 1\n", (4, 1), (5, 1)),
        # a comment over several lines
        ("{# one\n two\n three #}\nkey: 1\n", (2, 1), (4, 1)),
        # `}}` inside a string does not end the expression
        ("a: {{ '}}' }}\nb: 1\n", (2, 1), (2, 1)),
        # raw text is text
        ("{% raw %}{{ not }}{% endraw %}: 1\nb: 1\n", (1, 10), (1, 31)),
    ],
)
def test_line_map_cases(
    template: str, rendered_at: tuple[int, int], source_at: tuple[int, int]
) -> None:
    assert _where(template, *rendered_at) == source_at


def test_a_captured_block_that_would_change_the_output_is_not_traced() -> None:
    """`{% set %}` blocks capture text (markers too): when that would change the result, the
    plain rendering is used and positions are said to be those of the rendered text."""
    text = "{% set s %}abc{% endset %}n: {{ s | length }}\n"
    rendered, problems, line_map = render(text, "t.yaml", {})
    assert rendered == "n: 3\n" and not problems and line_map is None


def test_rendering_errors_still_name_the_template_line() -> None:
    rendered, problems, _ = render("a: 1\nb: {{ nope }}\n", "t.yaml", {"x": 1})
    assert rendered is None
    assert problems[0].format().startswith("t.yaml:2: undefined template variable: 'nope'")


@pytest.mark.parametrize("rel", TEMPLATED, ids=str)
def test_libyaml_and_the_python_parser_place_every_value_alike(rel: Path) -> None:
    """Files are parsed with libyaml for speed; the positions must be the pure parser's."""
    import yaml

    from omnidrill.spec import yamlpos

    context = template_variables(development_profile(), {})
    if rel.parts[0] in ("monitors", "dashboards"):
        context = validation_variables(ROOT, context)
    rendered, _, _ = render((ROOT / rel).read_text(), str(rel), context)
    assert rendered is not None
    fast = yamlpos._parse(rendered, str(rel), yamlpos._FAST)
    pure = yamlpos._parse(rendered, str(rel), yaml.SafeLoader)
    assert fast[0] == pure[0]
    assert fast[1] == pure[1]
