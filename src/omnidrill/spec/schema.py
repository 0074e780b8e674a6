"""JSON Schema of every kind, for editors (yaml-language-server) and for `omnidrill schema`."""

from __future__ import annotations

import json
from pathlib import Path

from omnidrill.spec.kinds import KINDS, KindUnavailable, get_kind

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_for(kind_name: str) -> dict:
    """The JSON Schema of one kind, with a title and a description."""
    kind = get_kind(kind_name)
    schema = kind.model().model_json_schema(mode="validation")
    schema = {"$schema": SCHEMA_DIALECT, **schema}
    schema["title"] = f"omnidrill {kind.name}"
    schema.setdefault("description", f"{kind.description} (files under {kind.folder}/)")
    return schema


def schema_text(kind_name: str) -> str:
    return json.dumps(schema_for(kind_name), indent=2, sort_keys=True) + "\n"


def available_kinds() -> list[str]:
    """Kinds whose model this version has."""
    out = []
    for name in KINDS:
        try:
            KINDS[name].model()
        except KindUnavailable:
            continue
        out.append(name)
    return out


def schema_file(root: Path, kind_name: str) -> Path:
    return root / "schemas" / f"{kind_name}.schema.json"


def write_schemas(root: Path) -> list[Path]:
    """Write schemas/<kind>.schema.json for every available kind."""
    written = []
    for name in available_kinds():
        path = schema_file(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(schema_text(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written in write_schemas(Path.cwd()):
        print(written)
