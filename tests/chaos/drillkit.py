"""Helpers of the chaos tests: reference stacks (correct and faulty) and a drill runner."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
CHAOS = ROOT / "chaos"
FAULTINJECT = Path(__file__).resolve().parent / "faultinject"

# Pieces of the test drills: the steady state of read-only functions, and steps that turn the
# kill switch on and see it refuse.
STEADY_READS = """steady_state:
  - check: http
    function: read-only
    expect: {status: 200}
"""
KILL_SWITCH_ON = """  - action: controls.set
    set: {omnihub_kill_switch: true}
  - check: http
    clause: C2
    function: read-only
    within: 2s
    expect: {refusal: KILL_SWITCH}
"""


def wait_step(seconds: float) -> str:
    return f"  - action: wait\n    for: {seconds:g}s\n"


# A drill's steps that turn the kill switch on and hold it for 30 s, so that something can stop
# the drill midway; the tests put their own header first. A str.format template: {{ is {.
HOLD_KILL_SWITCH = (
    (STEADY_READS + "method:\n" + KILL_SWITCH_ON + wait_step(30))
    .replace("{", "{{")
    .replace("}", "}}")
)


@dataclass
class Stack:
    profile_path: Path
    profile: dict[str, Any]
    tmp: Path


@contextlib.contextmanager
def start_stack(
    tmp: Path,
    *args: str,
    fault: str | None = None,
    env: dict[str, str] | None = None,
    observe: bool = True,
) -> Iterator[Stack]:
    """The reference stack (`--fast`, OS-chosen ports); `fault` replaces one behaviour.

    Its profile is the one `omnidrill up` wrote: `observe:` names the stack's intake, so drills
    judge O1 and O2. `observe=False` leaves that section out (O1 and O2 skipped), for tests
    that judge other clauses over many drills: waiting for each drill's monitors to resolve
    costs a few seconds a drill."""
    from omnidrill.launch import launch_stack

    env = dict(env or {})
    if fault:
        env["OMNIDRILL_FAULT"] = fault
        env["OMNIDRILL_FAULT_STATE"] = str(tmp / "fault-state")
        env["OMNIDRILL_FAULT_PROFILE"] = str(tmp / "profile.yaml")  # where launch_stack has it
        env["PYTHONPATH"] = os.pathsep.join(
            [str(FAULTINJECT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    with launch_stack(["--fast", "--base-port", "0", *args], tmp, env=env) as (path, profile):
        stack = Stack(path, profile, tmp)
        yield stack if observe else unobserved(stack)


def declared(stack: Stack, overrides: dict[str, Any]) -> Stack:
    """The stack with a profile that declares more (`expect`, `limits`), merged per section."""
    data = json.loads(json.dumps(stack.profile))
    for section, values in overrides.items():
        data[section] = {**(data.get(section) or {}), **values}
    path = stack.tmp / "declared.yaml"
    path.write_text(yaml.safe_dump(data))
    return Stack(path, data, stack.tmp)


def unobserved(stack: Stack) -> Stack:
    """The stack with a profile that has no `observe:` section, as a target without telemetry."""
    data = {k: v for k, v in stack.profile.items() if k != "observe"}
    path = stack.tmp / "unobserved.yaml"
    path.write_text(yaml.safe_dump(data))
    return Stack(path, data, stack.tmp)


@dataclass
class RunResult:
    code: int
    journal: dict[str, Any]
    output: str

    def drill(self, name: str) -> dict[str, Any]:
        return next(d for d in self.journal["drills"] if Path(d["file"]).stem == name)

    def failed_clauses(self, name: str) -> set[str]:
        return {e["clause"] for e in self.drill(name)["evidence"] if e["clause"]}

    def evidence_text(self, name: str) -> str:
        return json.dumps(self.drill(name)["evidence"])


def run_drills(
    stack: Stack,
    *drills: str,
    report: Path,
    strict: bool = False,
    chaos: Path = CHAOS,
    **opts: Any,
) -> RunResult:
    """Run standard drills (or those of another `chaos` folder) in this process, as
    `omnidrill run` would."""
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.cliutil import load_profile

    profile = load_profile(str(stack.profile_path))
    buf = io.StringIO()
    printer = Progress(Console(file=buf, width=200, highlight=False))
    paths = [chaos / f"{d}.yaml" for d in drills]
    code = run(
        paths,
        profile,
        RunOptions(target=str(stack.profile_path), report_dir=report, strict=strict, **opts),
        printer=printer,
    )
    journal = json.loads((report / "journal.json").read_text())
    return RunResult(code, journal, buf.getvalue())


def omnidrill_cmd() -> list[str]:
    return [sys.executable, "-m", "omnidrill.cli"]
