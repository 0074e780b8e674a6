"""docs/drills.md cannot go stale: its example validates and passes, and it names every field."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from rich.console import Console

from chaos.drillkit import CHAOS, ROOT, start_stack
from omnidrill.chaos.models import (
    ACTIONS,
    CHECKS,
    Background,
    DrillFile,
    Expect,
    Guardrail,
    RequestSpec,
)
from omnidrill.profile import development_profile, template_variables
from omnidrill.spec.loader import load_file

DOC = ROOT / "docs" / "drills.md"
EXAMPLE = ROOT / "docs" / "examples" / "custom-drill.yaml"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _field_names(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def test_the_example_drill_validates() -> None:
    spec = load_file(EXAMPLE, variables=template_variables(development_profile(), {}))
    assert spec.kind == "drill"
    drill = spec.model
    assert isinstance(drill, DrillFile)
    assert drill.contract == ["C4", "C6"]
    # the rendered Jinja2 value: the development profile's controls_ttl_ms is 1000
    assert drill.method[1].within == pytest.approx(1.0)


def test_the_doc_shows_the_example_file_verbatim() -> None:
    body = EXAMPLE.read_text(encoding="utf-8")
    assert body in _doc(), "docs/drills.md must quote docs/examples/custom-drill.yaml unchanged"


def test_the_doc_names_every_action_check_and_field() -> None:
    doc = _doc()
    quoted = set(re.findall(r"`([^`\n]+)`", doc))
    missing = [k for k in [*ACTIONS, *CHECKS] if k not in quoted]
    assert not missing, f"actions or checks not documented in docs/drills.md: {missing}"
    models: list[type[BaseModel]] = [
        DrillFile,
        RequestSpec,
        Expect,
        Guardrail,
        Background,
        *ACTIONS.values(),
        *CHECKS.values(),
    ]
    undocumented = sorted(
        f"{m.__name__}.{f}" for m in models for f in _field_names(m) if f not in quoted
    )
    assert not undocumented, f"fields not documented in docs/drills.md: {undocumented}"


def test_the_doc_lists_every_standard_drill() -> None:
    doc = _doc()
    missing = [p.name for p in sorted(CHAOS.glob("*.yaml")) if f"`{p.name}`" not in doc]
    assert not missing, f"standard drills missing from the table in docs/drills.md: {missing}"


def test_the_chaos_readme_is_not_read_as_a_drill() -> None:
    from omnidrill.chaos.runner import expand

    assert (CHAOS / "README.md").exists()
    assert all(p.suffix == ".yaml" for p in expand([CHAOS]))


@pytest.mark.serial
def test_the_example_drill_passes_on_the_reference_stack(tmp_path: Path) -> None:
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.cliutil import load_profile

    with start_stack(tmp_path / "stack") as stack:
        profile = load_profile(str(stack.profile_path))
        buf = io.StringIO()
        report = tmp_path / "report"
        code = run(
            [EXAMPLE],
            profile,
            RunOptions(target=str(stack.profile_path), report_dir=report),
            printer=Progress(Console(file=buf, width=200, highlight=False)),
        )
    journal: dict[str, Any] = json.loads((report / "journal.json").read_text())
    record = journal["drills"][0]
    assert code == 0, buf.getvalue()
    assert record["verdict"] == "passed", buf.getvalue()
    assert record["clauses"] == {"C4": "passed", "C6": "passed"}
    assert record["measurements"]["time_to_effect_s"] is not None
    assert journal["pending_undos"] == []
