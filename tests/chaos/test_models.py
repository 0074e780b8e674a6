"""The drill format: precise errors for each mistake, and every shipped drill validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.drillkit import CHAOS
from omnidrill.chaos.models import DrillFile, parse_duration
from omnidrill.profile import development_profile, template_variables
from omnidrill.spec.errors import SpecError
from omnidrill.spec.loader import load_file

HEAD = """title: t
description: d
contract: [C2]
steady_state:
  - check: http
    function: each
    expect: {status: 200}
"""
METHOD_OK = """method:
  - action: controls.set
    id: on_
    set: {omnihub_kill_switch: true}
  - check: http
    clause: C2
    function: each
    expect: {refusal: KILL_SWITCH}
"""


def load(tmp_path: Path, text: str) -> DrillFile:
    path = tmp_path / "chaos" / "d.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    ctx = template_variables(development_profile(), {})
    return load_file(path, variables=ctx).model  # type: ignore[no-any-return]


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        load(tmp_path, text)
    return [p.format() for p in err.value.problems]


@pytest.mark.parametrize("path", sorted(CHAOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_drill_validates_and_names_its_clauses(path: Path) -> None:
    ctx = template_variables(development_profile(), {})
    drill = load_file(path, variables=ctx).model
    assert isinstance(drill, DrillFile)
    assert drill.contract and drill.tags and drill.description


def test_a_valid_drill_loads(tmp_path: Path) -> None:
    drill = load(tmp_path, HEAD + METHOD_OK)
    assert [type(s).__name__ for s in drill.method] == ["ControlsSet", "HttpCheck"]


def test_unknown_action_is_one_error_with_a_suggestion(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + METHOD_OK.replace("controls.set", "controls.sett"))
    assert len(found) == 1
    assert found[0].startswith("chaos/d.yaml:9:") or ":9:" in found[0]
    assert found[0].endswith(
        "method[0].action: unknown action 'controls.sett'; did you mean 'controls.set'?"
    )


def test_typo_in_a_field_suggests_the_right_one(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        HEAD
        + METHOD_OK.replace(
            "    function: each\n    expect: {r", "    functoin: each\n    expect: {r"
        ),
    )
    assert any("unknown field 'functoin'" in p and "did you mean 'function'" in p for p in found)


def test_wrong_control_column_and_type(tmp_path: Path) -> None:
    bad = METHOD_OK.replace("omnihub_kill_switch: true", "OMNIHUB_KILL_SWITCH: true")
    assert any("unknown column 'OMNIHUB_KILL_SWITCH'" in p for p in problems(tmp_path, HEAD + bad))
    bad = METHOD_OK.replace("omnihub_kill_switch: true", "allowed_operations: true")
    assert any("allowed_operations expects a list" in p for p in problems(tmp_path, HEAD + bad))


def test_clauses_must_be_listed_and_proven(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + METHOD_OK.replace("clause: C2", "clause: C3"))
    assert any("not listed in `contract`" in p for p in found)
    found = problems(tmp_path, HEAD + METHOD_OK.replace("    clause: C2\n", ""))
    assert any("no check proves" in p for p in found)
    found = problems(tmp_path, HEAD.replace("[C2]", "[Z9]") + METHOD_OK)
    assert any("expected a contract clause" in p for p in found)


def test_references_must_name_earlier_steps(tmp_path: Path) -> None:
    text = HEAD + METHOD_OK + "  - check: audit.changed\n    clause: C2\n    of: later\n"
    assert any("names no earlier step id" in p for p in problems(tmp_path, text))


def test_durations() -> None:
    assert parse_duration("100ms") == pytest.approx(0.1)
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("2m") == 120
    assert parse_duration(3) == 3.0
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration("soon")


def test_a_step_cannot_be_both_action_and_check(tmp_path: Path) -> None:
    text = HEAD + METHOD_OK.replace(
        "  - action: controls.set\n", "  - action: controls.set\n    check: http\n"
    )
    assert any("exactly one of `action:`" in p for p in problems(tmp_path, text))
