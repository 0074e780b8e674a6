"""Where the baseline and the canary are: instances of one profile, or two profiles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omnidrill.canary.models import CanaryScenario, Side
from omnidrill.errors import UsageError
from omnidrill.profile import TargetProfile

ProfileLoader = Callable[[str], TargetProfile]


@dataclass(frozen=True)
class SideTarget:
    """One side: its profile narrowed to its instances (what its drills and load reach)."""

    name: str  # baseline | canary
    profile: TargetProfile
    instances: list[str]
    own_profile: bool  # a profile of its own, not --target's

    def describe(self) -> str:
        where = ", ".join(self.instances)
        return f"{self.name}: {where} (profile {self.profile.name})"


def side_target(name: str, side: Side, default: TargetProfile, load: ProfileLoader) -> SideTarget:
    profile = load(side.profile) if side.profile else default
    every = list(profile.instances) or [profile.base_url]
    if side.instances is None:
        chosen = every
    else:
        chosen = []
        for i in side.instances:
            if not -len(every) <= i < len(every):
                listed = ", ".join(f"{n}: {u}" for n, u in enumerate(every))
                raise UsageError(
                    f"{name}.instances: {i} is outside profile {profile.name!r}, which has "
                    f"{len(every)} instance(s) ({listed}); 0 is the first, -1 the last"
                )
            chosen.append(every[i])
    chosen = list(dict.fromkeys(chosen))
    narrowed = profile.model_copy(update={"base_url": chosen[0], "instances": chosen})
    return SideTarget(name, narrowed, chosen, side.profile is not None)


def resolve_sides(
    scenario: CanaryScenario, profile: TargetProfile, load: ProfileLoader
) -> tuple[SideTarget, SideTarget]:
    """Both sides of an active canary (or the canary's target for its drills); a side that
    shares an instance with the other is refused: it would compare a version with itself."""
    baseline = side_target("baseline", scenario.baseline, profile, load)
    canary = side_target("canary", scenario.canary, profile, load)
    shared = sorted(set(baseline.instances) & set(canary.instances))
    if shared:
        raise UsageError(
            f"baseline and canary share {', '.join(shared)}: give each side its own "
            "instances (e.g. baseline: {instances: [0]}, canary: {instances: [-1]}) "
            "or its own profile"
        )
    return baseline, canary
