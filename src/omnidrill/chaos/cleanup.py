"""What a drill's trades leave on the target: approval rows (undone: rejected while pending) and
broadcast transactions (listed: no undo takes a transaction back)."""

from __future__ import annotations

from typing import Any

from omnidrill.chaos.client import Answer
from omnidrill.chaos.runtime import Runtime

TRADE = "execute-trade"


def before_trades(rt: Runtime, jobs: list[dict[str, Any]]) -> None:
    """Before trades go out: an undo per user id that names the run, so every approval row
    they cause is found again, even after a crash, even one whose id never came back."""
    for job in jobs:
        body = job.get("body")
        user = body.get("user_id") if isinstance(body, dict) else None
        if job.get("function") != TRADE or not isinstance(user, str) or rt.run_id not in user:
            continue
        if user not in rt.trade_users:
            rt.trade_users.add(user)
            rt.register_undo(
                "approvals.reject",
                {"user_id": user, "run": rt.run_id},
                f"reject approvals left pending by {user}",
            )


def after_trades(rt: Runtime, answers: list[Answer]) -> None:
    """Every approval a trade was answered with gets its undo (unless its user's covers it);
    every transaction the target says it sent is listed."""
    for a in answers:
        if a.function != TRADE:
            continue
        body = a.body if isinstance(a.body, dict) else {}
        aid = body.get("approval_id")
        user = (a.request_body or {}).get("user_id")
        if isinstance(aid, str) and aid not in rt.approvals:
            rt.approvals.add(aid)
            if user not in rt.trade_users:
                rt.register_undo(
                    "approvals.reject",
                    {"id": aid, "run": rt.run_id},
                    f"reject approval {aid} if still pending",
                )
        if a.status == 200 and a.tx_hash and a.tx_hash not in rt.broadcast:
            rt.broadcast.append(a.tx_hash)


def after_rollback(rt: Runtime) -> None:
    """Trades after the rollbacks (the recovery check) get undos of their own."""
    rt.trade_users.clear()
    rt.approvals.clear()


def left_behind(rt: Runtime) -> list[str]:
    if not rt.broadcast:
        return []
    return [
        f"{len(rt.broadcast)} transaction(s) broadcast by the drill's trades (a chain keeps "
        f"them): {', '.join(rt.broadcast)}"
    ]
