"""The base every YAML model derives from: unknown fields are errors, never silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """A typed part of a YAML file; a typo in a field name is an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)
