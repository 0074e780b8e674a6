"""A file under scenarios/: its `type` picks the model (load, rate_limit or canary)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, RootModel, Tag

from omnidrill.canary.models import CanaryScenario
from omnidrill.load.models import LoadScenario, RateLimitScenario

Scenario = LoadScenario | RateLimitScenario | CanaryScenario


def _scenario_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return None if kind is None else f"type:{kind}"


# Tags are `key:value` so that the loader can name the key in "unknown type 'lod'" messages.
ScenarioSpec = Annotated[
    Annotated[LoadScenario, Tag("type:load")]
    | Annotated[RateLimitScenario, Tag("type:rate_limit")]
    | Annotated[CanaryScenario, Tag("type:canary")],
    Discriminator(
        _scenario_type,
        custom_error_type="scenario_type",
        custom_error_message="expected `type: load`, `type: rate_limit` or `type: canary`",
    ),
]


class ScenarioFile(RootModel[ScenarioSpec]):
    """A file under scenarios/: its `type` picks the model."""
