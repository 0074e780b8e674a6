"""The example nightly GitHub Actions workflow: it parses, names every secret, fails on exit 1."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from omnidrill.spec.loader import load_file

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
SECRET_REF = re.compile(r"\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}")


@pytest.fixture(scope="module")
def text() -> str:
    return WORKFLOW.read_text()


@pytest.fixture(scope="module")
def wf(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    # YAML 1.1 reads the key `on` as the boolean true
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return wf["jobs"]["drills"]["steps"]


def _documented_secrets(text: str) -> set[str]:
    header = text.split("\nname:", 1)[0]
    block = header.split("Secrets this workflow uses", 1)[1].split("\n#\n", 1)[0]
    return set(re.findall(r"^#\s+([A-Z][A-Z0-9_]+)\b", block, re.M))


def test_scheduled_and_manual(wf: dict[str, Any]) -> None:
    on = wf["on"]
    crons = [s["cron"] for s in on["schedule"]]
    assert crons and all(len(c.split()) == 5 for c in crons)
    assert "workflow_dispatch" in on
    assert wf["concurrency"]["cancel-in-progress"] is False


def test_every_secret_used_is_named_and_every_named_secret_is_used(text: str) -> None:
    used = set(SECRET_REF.findall(text))
    documented = _documented_secrets(text)
    assert used, "the workflow uses no secret at all"
    assert used == documented, (
        f"used but not named: {sorted(used - documented)}; "
        f"named but not used: {sorted(documented - used)}"
    )


def test_secrets_come_from_the_secret_store_only(wf: dict[str, Any]) -> None:
    envs = [wf["jobs"]["drills"].get("env", {})] + [s.get("env", {}) for s in _steps(wf)]
    for env in envs:
        for name, value in env.items():
            if name.isupper() and name != "EXIT_CODE":
                assert SECRET_REF.fullmatch(str(value)), f"{name} is not taken from secrets"


def test_staging_profile_gets_every_variable_it_needs(wf: dict[str, Any]) -> None:
    profile = load_file(ROOT / "targets" / "staging.yaml", kind="target", variables={}).model
    needed = {ref.env for _, ref in profile.secret_refs() if ref.env}
    given = set(wf["jobs"]["drills"]["env"])
    assert needed <= given, f"staging needs {sorted(needed - given)} from the secret store"


def test_commands_and_flags_exist(wf: dict[str, Any]) -> None:
    import typer

    from omnidrill.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    calls = [
        shlex.split(line.strip().rstrip("\\"))
        for step in _steps(wf)
        for line in step.get("run", "").replace("\\\n", " ").splitlines()
        if line.strip().startswith("omnidrill ")
    ]
    assert {c[1] for c in calls} >= {"validate", "run", "recover"}
    for call in calls:
        cmd = commands.get(call[1])
        assert cmd is not None, f"`omnidrill {call[1]}` is not a command"
        opts = {o for p in cmd.params for o in p.opts}
        for word in call[2:]:
            if word.startswith("--"):
                assert word.split("=")[0] in opts, f"`omnidrill {call[1]}` has no option {word}"


def test_the_run_step_keeps_going_to_upload_and_the_last_step_fails_the_build(
    wf: dict[str, Any],
) -> None:
    steps = _steps(wf)
    run = next(s for s in steps if s.get("id") == "run")
    assert "--notify-slack" in run["run"]
    assert SECRET_REF.fullmatch(run["env"]["SLACK_WEBHOOK_URL"])
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert "reports/" in upload["with"]["path"]
    last = steps[-1]
    assert last["if"] == "always()"
    assert "steps.run.outputs.exit_code" in last["env"]["EXIT_CODE"]
    for code, want in [("0", 0), ("1", 1), ("3", 3), ("4", 4), ("5", 5), ("", 2), ("2", 2)]:
        done = subprocess.run(
            ["bash", "-c", last["run"]],
            env={"EXIT_CODE": code, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert done.returncode == want, (code, done.stdout, done.stderr)
