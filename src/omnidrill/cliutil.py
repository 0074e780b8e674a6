"""Helpers shared by the CLI commands of every area: options, parsing flags, loading profiles."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from omnidrill.errors import UsageError

if TYPE_CHECKING:
    from omnidrill.profile import TargetProfile


def usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage errors; recent Typer vendors its own click, whose errors are TyperException."""
    import click

    own = getattr(typer, "TyperException", None)
    return (click.ClickException, own) if isinstance(own, type) else (click.ClickException,)


def show_flags_as_flags() -> None:
    """Help shows `--dry-run`, not `--dry-run <bool>`: a flag takes no value, and a `<bool>`
    after it leads people to write `--dry-run true` (then read as a path)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_as_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and not self.count else shown(self, ctx)

    display_type_rich.flags_as_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

# Options several commands share. The area CLIs import this module when the CLI starts, so YAML,
# pydantic and the spec loader are imported inside the functions that need them.
TargetOption = Annotated[
    str, typer.Option("--target", "-t", help="profile: a path, or a name under targets/")
]
VarOption = Annotated[
    list[str] | None,
    typer.Option("--var", help="template variable NAME=VALUE (repeatable)", metavar="NAME=VALUE"),
]
ConfirmOption = Annotated[
    str | None,
    typer.Option(
        "--confirm",
        metavar="NAME",
        help="the profile's name: required to send traffic to a production profile",
    ),
]
ReportDirOption = Annotated[
    Path | None,
    typer.Option("--report-dir", help="the run's folder (default reports/<UTC>-<target>/)"),
]


def parse_vars(pairs: Iterable[str]) -> dict[str, Any]:
    """`--var k=v` pairs; values read as YAML scalars (20 is a number, true a boolean)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE with NAME a plain identifier")
        if key.strip() == "target":  # it would hide the profile from every template
            raise UsageError(f"--var {pair!r}: `target` is the profile in templates; pick a name")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value if isinstance(value, str | int | float | bool) else raw
    return out


def load_profile(arg: str, variables: dict[str, Any] | None = None) -> TargetProfile:
    """Load a profile given as a path or as a name under targets/."""
    from omnidrill.profile import missing_profile_message, profile_path
    from omnidrill.spec.loader import load_file

    path = profile_path(arg)
    if not path.is_file():
        raise UsageError(missing_profile_message(arg))
    spec = load_file(path, kind="target", variables=variables or {})
    return spec.model  # type: ignore[no-any-return]
