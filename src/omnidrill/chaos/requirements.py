"""What a drill needs from a profile; a drill that asks for more is skipped, never passed."""

from __future__ import annotations

from typing import Any

from omnidrill.chaos.models import DrillFile, RequestSpec
from omnidrill.profile import Resolved


def _trades(step: Any) -> bool:
    if not isinstance(step, RequestSpec) or step.function is None:
        return False
    f = step.function
    return f in ("each", "execute-trade") or (isinstance(f, list) and "execute-trade" in f)


def skip_reason(resolved: Resolved, drill: DrillFile) -> str | None:
    """Why this profile cannot run the drill, or None."""
    p = resolved.profile
    if drill.skip:
        return drill.skip
    steps = [*drill.steady_state, *drill.method, *drill.rollbacks]
    for step in steps:
        proxy = getattr(step, "proxy", None)
        if proxy and p.proxy(proxy) is None:
            return (
                f"the profile offers no fault path {proxy!r} (faults.proxies); "
                "this target cannot be drilled for it"
            )
    if any(getattr(s, "base", None) == "controls" for s in steps) and not p.controls.url:
        return (
            "the drill probes the control tables' REST surface and the profile names none "
            "(controls.url)"
        )
    needs_rpc = any(getattr(s, "check", "").startswith("rpc.") for s in steps)
    if needs_rpc and not (resolved.rpc_url("primary") or resolved.rpc_url("fallback")):
        return "the profile has no rpc_direct routes to verify transactions on"
    if any(_trades(s) for s in steps):
        if not p.trade.allow_broadcast:
            return "the drill sends trades and the profile has no trade.allow_broadcast"
        if p.trade.signer_key is not None and not (
            resolved.rpc_url("primary") or resolved.rpc_url("fallback")
        ):
            return (
                "the drill sends trades signed with trade.signer_key, and signing needs "
                "rpc_direct routes to read the chain id, nonce and fees"
            )
        cap = p.trade.max_amount_usd
        for s in steps:
            amount = (getattr(s, "body", None) or {}).get("amount_usd")
            if isinstance(amount, int | float) and amount > cap:
                return (
                    f"the drill trades {amount} USD, above the profile's "
                    f"trade.max_amount_usd ({cap})"
                )
    for req in drill.requires:
        if req == "rpc_direct" and not (
            resolved.rpc_url("primary") and resolved.rpc_url("fallback")
        ):
            return "the drill needs rpc_direct routes to both providers"
        if req == "trade" and not p.trade.allow_broadcast:
            return "the drill needs trade.allow_broadcast"
        if req.startswith("proxy:") and p.proxy(req.split(":", 1)[1]) is None:
            return f"the profile offers no fault path {req.split(':', 1)[1]!r}"
        if req.startswith("instances>=") and len(p.instances) < int(req.split(">=", 1)[1]):
            want = req.split(">=", 1)[1]
            return f"the drill needs {want} instances; the profile lists {len(p.instances)}"
    return None
