"""`omnidrill validate` names file, line, column, field and what was expected, and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOOD_PROFILE = """\
name: demo
environment: dev
base_url: http://127.0.0.1:54321
keys:
  anon: {value: anon-key-demo}
  service_role: {value: service-role-demo}
controls:
  kind: postgrest
  url: http://127.0.0.1:54321/rest/v1
limits:
  rate_limit: {{ rate }}
"""


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "targets").mkdir()
    return tmp_path


def write(project: Path, name: str, text: str) -> Path:
    path = project / "targets" / name
    path.write_text(text)
    return path


def test_valid_profile_with_var(project: Path) -> None:
    write(project, "demo.yaml", GOOD_PROFILE)
    res = run_cli("validate", "--var", "rate=20", cwd=project)
    assert res.returncode == 0, res.stderr
    assert "1 file(s) valid" in res.stdout


def test_typo_in_field_name(project: Path) -> None:
    text = GOOD_PROFILE.replace("rate_limit: {{ rate }}", "rate_limt: 20")
    write(project, "typo.yaml", text)
    res = run_cli("validate", cwd=project)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("targets/")]
    assert lines == [
        "targets/typo.yaml:11:3: limits.rate_limt: unknown field 'rate_limt'; did you mean "
        "'rate_limit'?"
    ]


def test_wrong_type(project: Path) -> None:
    text = GOOD_PROFILE.replace("rate_limit: {{ rate }}", "rate_limit: lots")
    write(project, "type.yaml", text)
    res = run_cli("validate", cwd=project)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("targets/")]
    assert len(lines) == 1
    assert lines[0].startswith(
        "targets/type.yaml:11:15: limits.rate_limit: expected a valid integer"
    )
    assert "found 'lots'" in lines[0]


def test_bad_indent(project: Path) -> None:
    text = GOOD_PROFILE.replace("  url: http://127.0.0.1:54321/rest/v1", "   url: http://x/rest/v1")
    write(project, "indent.yaml", text)
    res = run_cli("validate", "--var", "rate=5", cwd=project)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("targets/")]
    assert len(lines) == 1
    assert lines[0].startswith("targets/indent.yaml:9:7: invalid YAML:")
    assert "indentation" in lines[0]


def test_undefined_template_variable(project: Path) -> None:
    write(project, "undef.yaml", GOOD_PROFILE)
    res = run_cli("validate", cwd=project)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("targets/")]
    assert len(lines) == 1
    assert lines[0].startswith("targets/undef.yaml:11: undefined template variable: 'rate'")


def test_four_broken_files_one_error_each(project: Path) -> None:
    write(project, "a.yaml", GOOD_PROFILE.replace("rate_limit: {{ rate }}", "rate_limt: 1"))
    write(project, "b.yaml", GOOD_PROFILE.replace("{{ rate }}", "many"))
    write(project, "c.yaml", GOOD_PROFILE.replace("  anon:", "   anon:"))
    write(project, "d.yaml", GOOD_PROFILE.replace("{{ rate }}", "{{ missing_var }}"))
    res = run_cli("validate", cwd=project)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("targets/")]
    assert [ln.split(":")[0] for ln in lines] == [
        "targets/a.yaml",
        "targets/b.yaml",
        "targets/c.yaml",
        "targets/d.yaml",
    ]
    assert "4 problem(s) in 4 file(s)" in res.stderr


def test_missing_file_is_a_problem(project: Path) -> None:
    res = run_cli("validate", "nope.yaml", cwd=project)
    assert res.returncode == 2
    assert "nope.yaml: no such file or folder" in res.stderr


def test_unknown_kind_folder(project: Path) -> None:
    other = project / "elsewhere.yaml"
    other.write_text("a: 1\n")
    res = run_cli("validate", str(other), cwd=project)
    assert res.returncode == 2
    assert "cannot tell the kind of this file" in res.stderr


def test_kind_key_overrides_folder(project: Path) -> None:
    other = project / "profile-anywhere.yaml"
    other.write_text("kind: target\n" + GOOD_PROFILE.replace("{{ rate }}", "7"))
    res = run_cli("validate", str(other), cwd=project)
    assert res.returncode == 0, res.stderr


def test_bad_var_flag(project: Path) -> None:
    res = run_cli("validate", "--var", "novalue", cwd=project)
    assert res.returncode == 2
    assert "expected NAME=VALUE" in res.stderr


def test_unknown_schema_kind(project: Path) -> None:
    res = run_cli("schema", "nonsense", cwd=project)
    assert res.returncode == 2
    assert "unknown kind 'nonsense'" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["run"], "Missing argument"),
        (["up", "--instances", "x"], "Invalid value for '--instances'"),
        (["validate", "--target"], "requires an argument"),
    ],
)
def test_usage_errors_exit_2_with_a_message_not_a_traceback(
    project: Path, args: list[str], message: str
) -> None:
    res = run_cli(*args, cwd=project)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_up_refuses_a_bad_contract_environment_variable_before_starting(project: Path) -> None:
    import os

    env = {**os.environ, "TRUST_FORWARDED_FOR": "maybe"}
    res = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "up", "--profile-out", "p.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 2
    assert "TRUST_FORWARDED_FOR" in res.stderr and "valid boolean" in res.stderr
    assert not (project / "p.yaml").exists()
