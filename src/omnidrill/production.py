"""The production guard: one rule for every command that sends traffic to a target or changes it.

A profile with `environment: production` is refused unless `--confirm` names it; `validate`,
`report`, `recover` and `halt` are exempt (they send no load and only ever undo).
"""

from __future__ import annotations

from omnidrill.errors import RunRefused
from omnidrill.profile import TargetProfile


def require_confirmation(
    profile: TargetProfile, confirm: str | None, flag: str = "--confirm"
) -> None:
    """Refuse (exit 2) a production profile that `confirm` does not name; nothing is sent."""
    if profile.environment != "production" or confirm == profile.name:
        return
    given = f" (given: {confirm!r})" if confirm else ""
    raise RunRefused(
        f"target {profile.name!r} is a production profile: pass {flag} {profile.name} to send "
        f"traffic to it{given}; nothing was sent"
    )
