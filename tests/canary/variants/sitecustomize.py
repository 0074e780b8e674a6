"""A canary that breaks the contract, for tests/canary only (nothing here ships).

Put this folder on PYTHONPATH and set OMNIDRILL_CANARY_FAULT=kill_switch_code_after_first in
the environment of the reference stack: every functions instance but the first (each is a
process of its own, named in OMNIHUB_PART) answers the kill switch with another code (C2),
while its latency and errors stay those of the baseline.
"""

from __future__ import annotations

import os

if (
    os.environ.get("OMNIDRILL_CANARY_FAULT") == "kill_switch_code_after_first"
    and os.environ.get("OMNIHUB_PART", "functions-0").startswith("functions-")
    and os.environ.get("OMNIHUB_PART", "functions-0") != "functions-0"
):
    from omnihub_ref import functions as _fn

    _judge = _fn.Functions._judge

    async def _judged(self, *a, **kw):  # type: ignore[no-untyped-def]
        answer = await _judge(self, *a, **kw)
        if answer.code == "KILL_SWITCH":
            return _fn.refuse(503, "MAINTENANCE", "down for maintenance")
        return answer

    _fn.Functions._judge = _judged
