"""The shipped JSON Schemas are current and validate every committed profile."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from omnidrill.spec.schema import available_kinds, schema_file, schema_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", available_kinds())
def test_shipped_schema_is_current(kind: str) -> None:
    shipped = schema_file(ROOT, kind)
    assert shipped.exists(), f"{shipped} missing: run `make schemas`"
    assert shipped.read_text() == schema_text(kind), f"{shipped} is stale: run `make schemas`"


@pytest.mark.parametrize("profile", sorted((ROOT / "targets").glob("*.yaml")), ids=lambda p: p.name)
def test_target_schema_validates_committed_profiles(profile: Path) -> None:
    schema = json.loads(schema_text("target"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(profile.read_text()), schema)


def test_target_schema_rejects_a_typo() -> None:
    schema = json.loads(schema_text("target"))
    bad = yaml.safe_load((ROOT / "targets" / "staging.yaml").read_text())
    bad["limits"]["rate_limt"] = 3
    with pytest.raises(jsonschema.ValidationError, match="rate_limt"):
        jsonschema.validate(bad, schema)
