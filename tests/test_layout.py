"""The harness never imports the reference stack it judges, and the stack reaches the harness's
intake by its command and over HTTP only."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "src" / "omnidrill"
STACK = HARNESS.parent / "omnihub_ref"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_harness_module_imports_the_reference_stack() -> None:
    offenders = [
        f"{path.relative_to(HARNESS.parent)} imports {name}"
        for path in sorted(HARNESS.rglob("*.py"))
        for name in _imported_modules(path)
        if name == "omnihub_ref" or name.startswith("omnihub_ref.")
    ]
    assert offenders == []


def test_the_reference_stack_never_imports_the_intake() -> None:
    offenders = [
        f"{path.relative_to(STACK.parent)} imports {name}"
        for path in sorted(STACK.rglob("*.py"))
        for name in _imported_modules(path)
        if name.startswith("omnidrill.observe.intake")
    ]
    assert offenders == []


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from omnihub_ref.stack import StackOptions\n")
    assert "omnihub_ref.stack" in _imported_modules(sample)
