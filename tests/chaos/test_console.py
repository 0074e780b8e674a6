"""The closing table of a run reads in a CI log that is no terminal: 80 columns, one line a
drill (short names; full titles are in the report), and which monitors alerted after how long."""

from __future__ import annotations

import io

from rich.console import Console

from omnidrill.chaos.console import Progress
from omnidrill.chaos.engine import DrillOutcome
from omnidrill.chaos.runtime import StepResult

TITLES = {
    "chaos/kill-switch.yaml": "Kill switch refuses every function on every instance",
    "chaos/rpc-primary-outage.yaml": "Primary RPC provider down: traffic fails over, then returns",
    "chaos/controls-outage.yaml": "Control-plane outage fails closed, whether refused or slow",
}


def _outcome(file: str, detected: dict[str, float | None]) -> DrillOutcome:
    out = DrillOutcome(file=file, title=TITLES[file], contract=["C1", "C2", "C5", "C6", "O1"])
    out.verdict = "failed" if None in detected.values() else "passed"
    out.measurements = {
        "time_to_effect_s": 0.216,
        "time_to_recover_s": 0.031,
        "time_to_detect_s": min((v for v in detected.values() if v is not None), default=None),
        "time_to_resolve_s": 2.5,
    }
    for mid, ttd in detected.items():
        step = StepResult("detection", 0, "monitor.detected", f"monitor {mid}", clause="O1")
        step.detail["monitor"] = mid
        if ttd is None:
            step.detail["outcome"] = "undetected"
        else:
            step.measurements["time_to_detect_s"] = ttd
        out.steps.append(step)
    out.detection = {"expected": list(detected), "skipped": None}
    return out


def test_the_closing_table_fits_80_columns_of_a_ci_log() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=False, color_system=None)
    outcomes = [
        _outcome("chaos/kill-switch.yaml", {"kill-switch-on": 0.39, "agent-error-rate": 1.4}),
        _outcome("chaos/rpc-primary-outage.yaml", {"rpc-errors": None}),
        _outcome("chaos/controls-outage.yaml", {"controls-failsafe": 0.31}),
    ]
    Progress(console).table(outcomes, [{"name": "scenarios/smoke.yaml", "verdict": "passed"}], "j")
    lines = buf.getvalue().splitlines()
    table = lines[: lines.index(next(ln for ln in lines if ln.startswith("seconds:")))]
    assert all(len(ln) <= 80 for ln in table), table
    assert not any("…" in ln for ln in table), "nothing is cut short"
    for name in ("kill-switch", "rpc-primary-outage", "controls-outage", "smoke"):
        rows = [ln for ln in table if ln.lstrip().startswith(name + " ")]
        assert len(rows) == 1, (name, table)  # one line a drill: nothing wraps
    assert not any("Kill switch refuses" in ln for ln in table), "full titles are the report's"
    assert "C1-C2,C5-C6,O1" in table[3], "clauses in ranges, to stay narrow"
    text = buf.getvalue()
    assert (
        "monitors kill-switch: 2/2 alerted: kill-switch-on 0.39 s, agent-error-rate 1.40 s" in text
    )
    assert "monitors rpc-primary-outage: 0/1 alerted: rpc-errors undetected" in text


def test_a_long_list_left_behind_is_cut_short_on_the_console_not_in_the_journal() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=False, color_system=None)
    out = _outcome("chaos/kill-switch.yaml", {"kill-switch-on": 0.39})
    hashes = [f"0x{i:064x}" for i in range(34)]
    out.not_cleaned = [f"34 transaction(s) broadcast by the drill's trades: {', '.join(hashes)}"]
    Progress(console).table([out], [], "j")
    text = buf.getvalue()
    assert hashes[2] in text and hashes[3] not in text
    assert "and 31 more (the journal lists all)" in text
    assert hashes[33] in out.not_cleaned[0], "the outcome (and so the journal) keeps every one"
