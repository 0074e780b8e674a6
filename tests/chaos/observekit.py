"""A reference stack that sends its telemetry to an intake, and a profile that says so."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from chaos.drillkit import ROOT, Stack, start_stack
from omnidrill.observe.intake.server import ThreadedIntake


@contextlib.contextmanager
def observed_stack(
    tmp: Path,
    *args: str,
    metrics: bool = True,
    sentry: bool = True,
    detect_s: float = 15,
    resolve_s: float = 15,
    observe: dict[str, Any] | None = None,
) -> Iterator[tuple[Stack, ThreadedIntake]]:
    """`--fast` stack whose metrics (Datadog API client) and errors (sentry-sdk) go to an
    intake, unless told not to send them; its profile has `observe: {intake: URL}`."""
    intake = ThreadedIntake().start()
    stack_args = list(args)
    env: dict[str, str] = {}
    if metrics:
        stack_args.append("--datadog")
        env = {"DD_API_KEY": "intake-accepts-any-key", "DD_SITE": intake.url}
    if sentry:
        stack_args += ["--sentry-dsn", intake.dsn("public-key", "1")]
    try:
        with start_stack(tmp, *stack_args, env=env) as stack:
            profile = dict(stack.profile)
            profile["observe"] = observe or {"intake": intake.url, "env": "local"}
            profile["limits"] = {
                **profile["limits"],
                "detect_timeout_s": detect_s,
                "resolve_timeout_s": resolve_s,
            }
            path = tmp / "observed.yaml"
            path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
            yield Stack(path, profile, tmp), intake
    finally:
        intake.stop()


def project_copy(tmp: Path) -> Path:
    """chaos/, monitors/ and scenarios/ of the project, for a test to edit."""
    dest = tmp / "project"
    for folder in ("chaos", "monitors", "scenarios"):
        shutil.copytree(ROOT / folder, dest / folder)
    return dest


def o1_steps(drill: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The drill's O1 checks by monitor id."""
    return {
        s["detail"]["monitor"]: s
        for s in drill["steps"]
        if s["kind"] == "monitor.detected" and "monitor" in s["detail"]
    }
