"""One mistake, one message: a bad input per line of the table, the first line of what
`omnidrill validate` says, and its exit code. Every kind of YAML file has its rows; each starts
from a shipped file, so line numbers are those of real files (templated ones included)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., tuple[int, str, str]]

# (shipped file, text replaced (first occurrence), replacement, where in the replacement the
# message points, the message after `file:line:column: `). The line and column are found in the
# template text itself, so each row holds wherever the shipped file grows; `[N]` stands for any
# list index (steps are added to shipped drills), every other character is compared exactly.
CASES: list[tuple[str, str, str, str, str]] = [
    # --- drills -------------------------------------------------------------------------------
    (
        "chaos/kill-switch.yaml",
        "function: each",
        "function: wallet-balanse",
        "wallet-balanse",
        "steady_state[N].function: unknown function 'wallet-balanse'; "
        "did you mean 'wallet-balance'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "action: controls.set",
        "action: control.set",
        "control.set",
        "method[N].action: unknown action 'control.set'; did you mean 'controls.set'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "action: controls.set",
        "action: http",
        "http",
        "method[N].action: 'http' is a check: write `check: http`",
    ),
    (
        "chaos/kill-switch.yaml",
        "action: controls.set",
        "action: controls.set\n    check: http",
        "action",
        "method[N]: expected exactly one of `action:` or `check:`, found `action:` and `check:`",
    ),
    (
        "chaos/kill-switch.yaml",
        "  - check: http\n    name: every function answers 200",
        "  - chek: http\n    name: every function answers 200",
        "chek",
        "steady_state[N].chek: unknown field 'chek'; did you mean 'check'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "  - check: http\n    name: every function answers 200",
        "  - name: every function answers 200",
        "name",
        "steady_state[N]: missing `check:` (check: http, rpc.tx_absent, rpc.tx_present, "
        "rpc.served, audit.changed, approval.status, approval.none, controls.unchanged, load)",
    ),
    (
        "chaos/kill-switch.yaml",
        "    poll: 100ms",
        "    pol: 100ms",
        "pol",
        "method[N].pol: unknown field 'pol'; did you mean 'poll'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "contract: [C2, C5, C6, C7]",
        "contract: [C2, C5, C6, C99]",
        "C99",
        "contract[N]: expected a contract clause like C2, A1, P3, S1, found 'C99'",
    ),
    (
        "chaos/kill-switch.yaml",
        "expect: {refusal: KILL_SWITCH}",
        "expect: {refusal: KILL_SWICH}",
        "KILL_SWICH",
        "method[N].expect.refusal: unknown refusal 'KILL_SWICH'; did you mean 'KILL_SWITCH'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "set: {omnihub_kill_switch: true}",
        "set: {omnihub_kill_swich: true}",
        "{",
        "method[N].set: unknown column 'omnihub_kill_swich'; did you mean 'omnihub_kill_switch'?",
    ),
    (  # the column is the template's: `{{ 199 + 1 }}` renders 3 characters, not 13
        "chaos/kill-switch.yaml",
        "    expect: {status: 200}",
        "    expect: {status: {{ 199 + 1 }}, same_answer: true}",
        "same_answer",
        "steady_state[N].expect.same_answer: unknown field 'same_answer'; "
        "did you mean 'same_answers'?",
    ),
    (  # approval-flow has Jinja2 blocks: the line is the template's
        "chaos/approval-flow.yaml",
        "    status: pending\n    fields: {risk_level: critical}",
        "    status: pendng\n    fields: {risk_level: critical}",
        "pendng",
        "method[N].status: unknown status 'pendng'; did you mean 'pending'?",
    ),
    # --- scenarios ----------------------------------------------------------------------------
    (
        "scenarios/smoke.yaml",
        "spawn_rate: 10",
        "spawn_rat: 10",
        "spawn_rat",
        "spawn_rat: unknown field 'spawn_rat'; did you mean 'spawn_rate'?",
    ),
    (
        "scenarios/smoke.yaml",
        "    weight: 3",
        "    wieght: 3",
        "wieght",
        "tasks[N].wieght: unknown field 'wieght'; did you mean 'weight'?",
    ),
    (
        "scenarios/smoke.yaml",
        "type: load",
        "type: lod",
        "lod",
        "type: unknown type 'lod'; did you mean 'load'?",
    ),
    (
        "scenarios/smoke.yaml",
        "type: load",
        "typ: load",
        "typ",
        "typ: unknown field 'typ'; did you mean 'type'?",
    ),
    (
        "scenarios/smoke.yaml",
        "  - function: wallet-balance",
        "  - function: wallet-balanse",
        "function",
        "tasks[N]: unknown function 'wallet-balanse'; did you mean 'wallet-balance'?",
    ),
    (  # a two-line Jinja2 comment with `{#-` above: lines moved, the line is the template's
        "scenarios/nightly.yaml",
        "thresholds:",
        "thresholdz:",
        "thresholdz",
        "thresholdz: unknown field 'thresholdz'; did you mean 'thresholds'?",
    ),
    (
        "scenarios/rate-limit.yaml",
        "flood_factor:",
        "flood_facter:",
        "flood_facter",
        "flood_facter: unknown field 'flood_facter'; did you mean 'flood_factor'?",
    ),
    # --- monitors, dashboards, monitor tests (templated) --------------------------------------
    (  # the last line of the file was reported at :98 before the line map
        "monitors/tests/controls.yaml",
        "      - {monitor: kill-switch-on, at: 10m, state: OK}",
        "      - {monitor: kill-switch-on, at: 10m, stat: OK}",
        "stat",
        "tests[N].expect[N].stat: unknown field 'stat'; did you mean 'state'?",
    ),
    (  # inside a loop run three times: one message for the one line
        "monitors/tests/controls.yaml",
        "at: 8m, state: Alert}",
        "at: 8m, state: Alrt}",
        "Alrt",
        "tests[N].expect[N].state: unknown state 'Alrt'; did you mean 'Alert'?",
    ),
    (
        "monitors/controls.yaml",
        "    priority: 4",
        "    priorty: 4",
        "priorty",
        "monitors[N].priorty: unknown field 'priorty'; did you mean 'priority'?",
    ),
    (
        "monitors/slos.yaml",
        "timeframe: 30d",
        "timeframe: monthly",
        "monthly",
        "slos[N].thresholds[N].timeframe: expected '7d', '30d' or '90d', found 'monthly'",
    ),
    (
        "dashboards/approvals.yaml",
        "    layout_type: ordered",
        "    layout_typ: ordered",
        "layout_typ",
        "dashboards[N].layout_typ: unknown field 'layout_typ'; did you mean 'layout_type'?",
    ),
    # --- target profiles ----------------------------------------------------------------------
    (
        "targets/staging.yaml",
        "environment: staging",
        "environment: stagin",
        "stagin",
        "environment: unknown environment 'stagin'; did you mean 'staging'?",
    ),
    (
        "targets/staging.yaml",
        "anon: {env: OMNIHUB_STAGING_ANON_KEY}",
        "anon: {evn: OMNIHUB_STAGING_ANON_KEY}",
        "evn",
        "keys.anon.evn: unknown field 'evn'; did you mean 'env'?",
    ),
    (  # str | {env: NAME}: the member the value was meant for explains it
        "targets/staging.yaml",
        "primary: {env: OMNIHUB_STAGING_RPC_PRIMARY_URL}",
        "primary: {evn: OMNIHUB_STAGING_RPC_PRIMARY_URL}",
        "evn",
        "rpc_direct.primary.evn: unknown field 'evn'; did you mean 'env'?",
    ),
]


def _position(text: str, old: str, new: str, at: str) -> tuple[int, int]:
    """Line and column (1-based) of `at` in `new`, once `new` replaced the first `old` of text."""
    offset = text.index(old) + new.index(at)
    broken = text.replace(old, new, 1)
    line = broken.count("\n", 0, offset) + 1
    return line, offset - (broken.rfind("\n", 0, offset) + 1) + 1


@pytest.mark.parametrize(
    ("file", "old", "new", "at", "want"), CASES, ids=[c[4][:50] for c in CASES]
)
def test_one_mistake_one_message(
    shipped: Path, omnidrill_cli: RunCli, file: str, old: str, new: str, at: str, want: str
) -> None:
    text = (shipped / file).read_text()
    assert old in text, f"{file} changed: {old!r} is not in it any more"
    bad = Path(file).with_name("bad-" + Path(file).name)
    broken = text.replace(old, new, 1)
    (shipped / bad).write_text(broken)
    try:
        code, _out, err = omnidrill_cli("validate", str(bad), cwd=shipped)
    finally:
        (shipped / bad).unlink()
    line, col = _position(text, old, new, at)
    pattern = re.escape(f"{bad}:{line}:{col}: {want}").replace(r"\[N\]", r"\[\d+\]")
    lines = err.splitlines()
    assert code == 2
    assert re.fullmatch(pattern, lines[0]), err
    assert lines[1:] == ["1 problem(s) in 1 file(s)"], err


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (
            ["validate", "README.md"],
            "README.md: not a YAML file of a known kind (expected a .yaml or .yml file under "
            "targets/, chaos/, scenarios/, monitors/, dashboards/, monitors/tests/)",
        ),
        (
            ["load", "chaos/kill-switch.yaml", "--target", "staging"],
            "error: chaos/kill-switch.yaml: this is a drill, not a scenario: use `omnidrill run`",
        ),
        (
            ["load", "scenarios/canary.yaml", "--target", "staging"],
            "error: scenario 'canary' is a canary: run it with `omnidrill run`",
        ),
        (
            ["validate", "elsewhere.yaml"],
            "elsewhere.yaml: cannot tell the kind of this file: put it under one of targets/, "
            "chaos/, scenarios/, monitors/, dashboards/, monitors/tests/ or add a top-level "
            "`kind:` (target, drill, scenario, monitor, dashboard, monitor_test)",
        ),
    ],
)
def test_a_file_of_the_wrong_kind_says_what_takes_it(
    shipped: Path, omnidrill_cli: RunCli, args: list[str], want: str
) -> None:
    (shipped / "README.md").write_text("# not YAML\n`code`\n")
    (shipped / "elsewhere.yaml").write_text("a: 1\n")
    code, _out, err = omnidrill_cli(*args, cwd=shipped)
    assert code == 2
    assert err.splitlines()[0] == want
    assert not (shipped / "reports").exists(), "a refused command writes no run folder"


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["schema", "drll"], "error: unknown kind 'drll'; did you mean 'drill'?"),
        (
            ["monitors", "validate", "--env", "stagin"],
            "error: no environment 'stagin': monitors/env/stagin.yaml does not exist (have: "
            "production, staging); did you mean 'staging'?",
        ),
        (
            ["run", "chaos/kill-swich.yaml", "-t", "staging"],
            "error: chaos/kill-swich.yaml: no such file or folder; did you mean "
            "'chaos/kill-switch.yaml'?",
        ),
        (
            ["validate", "chaos/kill-swich.yaml"],
            "chaos/kill-swich.yaml: no such file or folder; did you mean 'chaos/kill-switch.yaml'?",
        ),
        (
            ["validate", "--var", "target=1"],
            "error: --var 'target=1': `target` is the profile in templates; pick a name",
        ),
        (
            ["report", "nowhere", "--format", "htm"],
            "error: unknown report format 'htm': expected any of html, junit, md; did you mean "
            "'html'?",
        ),
    ],
)
def test_a_mistyped_name_on_the_command_line_gets_a_suggestion(
    shipped: Path, omnidrill_cli: RunCli, args: list[str], want: str
) -> None:
    code, _out, err = omnidrill_cli(*args, cwd=shipped)
    assert code == 2, err
    assert err.splitlines()[0] == want
