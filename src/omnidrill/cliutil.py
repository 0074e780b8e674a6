"""Helpers shared by the CLI commands of every area: parsing flags, loading profiles."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from omnidrill.errors import UsageError
from omnidrill.profile import TargetProfile, profile_path
from omnidrill.spec.loader import load_file


def parse_vars(pairs: Iterable[str]) -> dict[str, Any]:
    """`--var k=v` pairs; values read as YAML scalars (20 is a number, true a boolean)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE with NAME a plain identifier")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value if isinstance(value, str | int | float | bool) else raw
    return out


def load_profile(arg: str, variables: dict[str, Any] | None = None) -> TargetProfile:
    """Load a profile given as a path or as a name under targets/."""
    path = profile_path(arg)
    if not path.exists():
        raise UsageError(
            f"target profile {arg!r} not found (looked for {path}); give a path or a name "
            "of a file under targets/"
        )
    spec = load_file(path, kind="target", variables=variables or {})
    return spec.model  # type: ignore[no-any-return]


def is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
