"""One mistake, one message: a bad input per line of the table, the first line of what
`omnidrill validate` says, and its exit code. Every kind of YAML file has its rows; each starts
from a shipped file, so line numbers are those of real files (templated ones included)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

RunCli = Callable[..., tuple[int, str, str]]

# (shipped file, text replaced (first occurrence), replacement, first line of the error)
CASES: list[tuple[str, str, str, str]] = [
    # --- drills -------------------------------------------------------------------------------
    (
        "chaos/kill-switch.yaml",
        "function: each",
        "function: wallet-balanse",
        "19:15: steady_state[0].function: unknown function 'wallet-balanse'; "
        "did you mean 'wallet-balance'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "action: controls.set",
        "action: control.set",
        "44:13: method[3].action: unknown action 'control.set'; did you mean 'controls.set'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "action: controls.set",
        "action: http",
        "44:13: method[3].action: 'http' is a check: write `check: http`",
    ),
    (
        "chaos/kill-switch.yaml",
        "action: controls.set",
        "action: controls.set\n    check: http",
        "44:5: method[3]: expected exactly one of `action:` or `check:`, "
        "found `action:` and `check:`",
    ),
    (
        "chaos/kill-switch.yaml",
        "  - check: http\n    name: every function answers 200",
        "  - chek: http\n    name: every function answers 200",
        "17:5: steady_state[0].chek: unknown field 'chek'; did you mean 'check'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "  - check: http\n    name: every function answers 200",
        "  - name: every function answers 200",
        "17:5: steady_state[0]: missing `check:` (check: http, rpc.tx_absent, rpc.tx_present, "
        "audit.changed, approval.status, approval.none, controls.unchanged, load)",
    ),
    (
        "chaos/kill-switch.yaml",
        "    poll: 100ms",
        "    pol: 100ms",
        "56:5: method[4].pol: unknown field 'pol'; did you mean 'poll'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "contract: [C2, C5, C6, C7]",
        "contract: [C2, C5, C6, C99]",
        "12:24: contract[3]: expected a contract clause like C2, A1, P3, S1, found 'C99'",
    ),
    (
        "chaos/kill-switch.yaml",
        "expect: {refusal: KILL_SWITCH}",
        "expect: {refusal: KILL_SWICH}",
        "58:23: method[4].expect.refusal: unknown refusal 'KILL_SWICH'; "
        "did you mean 'KILL_SWITCH'?",
    ),
    (
        "chaos/kill-switch.yaml",
        "set: {omnihub_kill_switch: true}",
        "set: {omnihub_kill_swich: true}",
        "47:10: method[3].set: unknown column 'omnihub_kill_swich'; "
        "did you mean 'omnihub_kill_switch'?",
    ),
    (  # the column is the template's: `{{ 199 + 1 }}` renders 3 characters, not 13
        "chaos/kill-switch.yaml",
        "    expect: {status: 200}",
        "    expect: {status: {{ 199 + 1 }}, same_answer: true}",
        "21:37: steady_state[0].expect.same_answer: unknown field 'same_answer'; "
        "did you mean 'same_answers'?",
    ),
    (  # approval-flow has Jinja2 blocks: the line is the template's
        "chaos/approval-flow.yaml",
        "    status: pending\n    fields: {risk_level: critical}",
        "    status: pendng\n    fields: {risk_level: critical}",
        "205:13: method[21].status: unknown status 'pendng'; did you mean 'pending'?",
    ),
    # --- scenarios ----------------------------------------------------------------------------
    (
        "scenarios/smoke.yaml",
        "spawn_rate: 10",
        "spawn_rat: 10",
        "8:1: spawn_rat: unknown field 'spawn_rat'; did you mean 'spawn_rate'?",
    ),
    (
        "scenarios/smoke.yaml",
        "    weight: 3",
        "    wieght: 3",
        "14:5: tasks[0].wieght: unknown field 'wieght'; did you mean 'weight'?",
    ),
    (
        "scenarios/smoke.yaml",
        "type: load",
        "type: lod",
        "4:7: type: unknown type 'lod'; did you mean 'load'?",
    ),
    (
        "scenarios/smoke.yaml",
        "type: load",
        "typ: load",
        "4:1: typ: unknown field 'typ'; did you mean 'type'?",
    ),
    (
        "scenarios/smoke.yaml",
        "  - function: wallet-balance",
        "  - function: wallet-balanse",
        "13:5: tasks[0]: unknown function 'wallet-balanse'; did you mean 'wallet-balance'?",
    ),
    (  # a two-line Jinja2 comment with `{#-` above: lines moved, the line is the template's
        "scenarios/nightly.yaml",
        "thresholds:",
        "thresholdz:",
        "29:1: thresholdz: unknown field 'thresholdz'; did you mean 'thresholds'?",
    ),
    (
        "scenarios/rate-limit.yaml",
        "flood_factor:",
        "flood_facter:",
        "{line}:1: flood_facter: unknown field 'flood_facter'; did you mean 'flood_factor'?",
    ),
    # --- monitors, dashboards, monitor tests (templated) --------------------------------------
    (  # line 42 of 42 was reported at :98 before the line map
        "monitors/tests/controls.yaml",
        "      - {monitor: kill-switch-on, at: 10m, state: OK}",
        "      - {monitor: kill-switch-on, at: 10m, stat: OK}",
        "42:44: tests[4].expect[4].stat: unknown field 'stat'; did you mean 'state'?",
    ),
    (  # inside a loop run three times: one message for the one line
        "monitors/tests/controls.yaml",
        "at: 8m, state: Alert}",
        "at: 8m, state: Alrt}",
        "24:66: tests[1].expect[1].state: unknown state 'Alrt'; did you mean 'Alert'?",
    ),
    (
        "monitors/controls.yaml",
        "    priority: 4",
        "    priorty: 4",
        "12:5: monitors[0].priorty: unknown field 'priorty'; did you mean 'priority'?",
    ),
    (
        "monitors/slos.yaml",
        "timeframe: 30d",
        "timeframe: monthly",
        "{line}:{col}: {field}: expected '7d', '30d' or '90d', found 'monthly'",
    ),
    (
        "dashboards/approvals.yaml",
        "    layout_type: ordered",
        "    layout_typ: ordered",
        "5:5: dashboards[0].layout_typ: unknown field 'layout_typ'; did you mean 'layout_type'?",
    ),
    # --- target profiles ----------------------------------------------------------------------
    (
        "targets/staging.yaml",
        "environment: staging",
        "environment: stagin",
        "5:14: environment: unknown environment 'stagin'; did you mean 'staging'?",
    ),
    (
        "targets/staging.yaml",
        "anon: {env: OMNIHUB_STAGING_ANON_KEY}",
        "anon: {evn: OMNIHUB_STAGING_ANON_KEY}",
        "8:10: keys.anon.evn: unknown field 'evn'; did you mean 'env'?",
    ),
    (  # str | {env: NAME}: the member the value was meant for explains it
        "targets/staging.yaml",
        "primary: {env: OMNIHUB_STAGING_RPC_PRIMARY_URL}",
        "primary: {evn: OMNIHUB_STAGING_RPC_PRIMARY_URL}",
        "34:13: rpc_direct.primary.evn: unknown field 'evn'; did you mean 'env'?",
    ),
]


def _expected(shipped: Path, file: str, old: str, new: str, want: str) -> str:
    """Fill {line}/{col}/{field} for rows whose position depends on the shipped file."""
    text = (shipped / file).read_text()
    before = text[: text.index(old)]
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    if "{field}" in want:
        return want.format(
            line=line, col=col + len("timeframe: "), field="slos[0].thresholds[0].timeframe"
        )
    return want.format(line=line, col=col)


@pytest.mark.parametrize(("file", "old", "new", "want"), CASES, ids=[c[3][:50] for c in CASES])
def test_one_mistake_one_message(
    shipped: Path, omnidrill_cli: RunCli, file: str, old: str, new: str, want: str
) -> None:
    text = (shipped / file).read_text()
    assert old in text, f"{file} changed: {old!r} is not in it any more"
    bad = Path(file).with_name("bad-" + Path(file).name)
    (shipped / bad).write_text(text.replace(old, new, 1))
    try:
        code, _out, err = omnidrill_cli("validate", str(bad), cwd=shipped)
    finally:
        (shipped / bad).unlink()
    lines = err.splitlines()
    assert code == 2
    assert lines[0] == f"{bad}:{_expected(shipped, file, old, new, want)}", err
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
