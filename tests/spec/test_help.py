"""Help text: `-h` on every command, flags shown as flags, a flag's stray value explained."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer

from omnidrill.cli import app

RunCli = Callable[..., tuple[int, str, str]]


def _commands(cmd: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


# `up` replaces the process with the reference stack's command: it is run apart, below
COMMANDS = [c for c in _commands(typer.main.get_command(app)) if c[:1] != ("up",)]


def test_every_command_is_listed() -> None:
    names = {c[0] for c in COMMANDS if c}
    assert {"run", "load", "validate", "faultproxy", "monitors", "report", "halt"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "omnidrill")
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_everywhere_with_flags_shown_as_flags(
    omnidrill_cli: RunCli, tmp_path: Path, command: tuple[str, ...], flag: str
) -> None:
    code, out, err = omnidrill_cli(*command, flag, cwd=tmp_path)
    assert code == 0, err
    assert "Usage: omnidrill" in out
    assert "<bool>" not in out


def test_up_help_too(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "omnidrill.cli", "up", "-h"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "Usage: omnidrill up" in res.stdout and "<bool>" not in res.stdout


def test_a_value_after_a_flag_is_explained(omnidrill_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "dev.yaml").write_text(
        "name: dev\nbase_url: http://127.0.0.1:9\nkeys: {anon: {value: a}, service_role: "
        "{value: s}}\ncontrols: {url: http://127.0.0.1:9/rest/v1}\n"
    )
    (tmp_path / "chaos").mkdir()
    code, _out, err = omnidrill_cli(
        "run", "chaos", "--target", "dev", "--dry-run", "true", cwd=tmp_path
    )
    assert code == 2
    assert err.splitlines()[0] == (
        "error: true: no such file or folder (flags such as --dry-run take no value: "
        "drop the 'true' after it)"
    )


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (["run"], "Usage: omnidrill run [OPTIONS] {PATH}..."),
        (["load"], "Usage: omnidrill load [OPTIONS] {PATH}..."),
        (["validate"], "Usage: omnidrill validate [OPTIONS] [PATH]..."),
        (["schema"], "Usage: omnidrill schema [OPTIONS] {KIND}"),
        (["report"], "Usage: omnidrill report [OPTIONS] {JOURNAL}"),
    ],
)
def test_arguments_are_named_for_what_they_take(
    omnidrill_cli: RunCli, tmp_path: Path, command: list[str], usage: str
) -> None:
    code, out, _err = omnidrill_cli(*command, "-h", cwd=tmp_path)
    assert code == 0
    assert usage in out
