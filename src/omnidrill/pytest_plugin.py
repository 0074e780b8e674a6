"""pytest plugin: `pytest --omnidrill-target targets/staging.yaml chaos/` runs drills as tests.

Each drill file is one test item, run through the engine exactly as `omnidrill run` runs it
(its own journal and reports); each check of the drill is reported as a sub-result (pytest's
built-in subtests). A drill that fails, aborts, is inconclusive or fails a rollback fails its
item; a drill the target cannot run is skipped with the reason.

Inert unless `--omnidrill-target` is given: without it nothing is collected, nothing imported.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

YAML_SUFFIXES = {".yaml", ".yml"}
_DECLARES_DRILL = re.compile(r"^kind:\s*drill\s*(#.*)?$", re.M)
_PROFILE_KEY = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("omnidrill", "omnidrill drills as tests")
    group.addoption(
        "--omnidrill-target",
        metavar="PROFILE",
        default=None,
        help="run drill YAML files as tests against this target profile (a path or a name)",
    )
    group.addoption(
        "--omnidrill-var",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="template variable for profiles and drills (repeatable)",
    )
    group.addoption(
        "--omnidrill-report-dir",
        metavar="DIR",
        default=None,
        help="folder for each drill's run folder (default reports/)",
    )
    group.addoption(
        "--omnidrill-confirm",
        metavar="NAME",
        default=None,
        help="the profile's name: required to run drills against a production profile",
    )
    group.addoption(
        "--omnidrill-strict",
        action="store_true",
        default=False,
        help="skipped checks count as failures",
    )


def pytest_configure(config: pytest.Config) -> None:
    target = config.getoption("omnidrill_target")
    if not target:
        return
    from omnidrill.cliutil import load_profile, parse_vars
    from omnidrill.errors import OmnidrillError
    from omnidrill.production import require_confirmation

    try:
        variables = parse_vars(config.getoption("omnidrill_var") or [])
        profile = load_profile(target, variables)
    except OmnidrillError as exc:
        raise pytest.UsageError(f"--omnidrill-target {target}: {exc}") from None
    try:
        require_confirmation(profile, config.getoption("omnidrill_confirm"), "--omnidrill-confirm")
    except OmnidrillError as exc:
        # The same refusal and exit code (2) as `omnidrill run`, before any drill is collected.
        pytest.exit(f"--omnidrill-target {target}: {exc}", returncode=int(exc.exit_code))
    config.stash[_PROFILE_KEY] = (target, profile, variables)
    config.addinivalue_line("markers", "omnidrill: a drill run by the omnidrill plugin")


def _is_drill(path: Path) -> bool:
    from omnidrill.spec.kinds import kind_from_folder

    if path.suffix not in YAML_SUFFIXES:
        return False
    kind = kind_from_folder(path)
    if kind is not None and kind.name == "drill":
        return True
    try:
        head = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(_DECLARES_DRILL.search(head))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _PROFILE_KEY not in parent.config.stash or not _is_drill(file_path):
        return None
    return DrillFileCollector.from_parent(parent, path=file_path)


class DrillFileCollector(pytest.File):
    """A drill YAML file: loaded (templates rendered for the target) into one test item."""

    def collect(self) -> list[pytest.Item]:
        from omnidrill.profile import template_variables
        from omnidrill.spec.loader import load_file

        _target, profile, variables = self.config.stash[_PROFILE_KEY]
        drill = load_file(
            self.path, kind="drill", variables=template_variables(profile, variables)
        ).model
        item = DrillItem.from_parent(self, name=self.path.stem, callobj=_run_drill_test)
        item.drill = drill
        item.add_marker(pytest.mark.omnidrill)
        for clause in drill.contract:
            item.keywords[clause] = True
        for tag in drill.tags:
            item.keywords[tag] = True
        item.user_properties.append(("clauses", ",".join(drill.contract)))
        return [item]


class DrillItem(pytest.Function):
    """One drill as a test; its checks are sub-results."""

    drill: Any = None

    def reportinfo(self) -> tuple[Path, int | None, str]:
        title = getattr(self.drill, "title", self.name)
        return self.path, None, f"drill {self.name}: {title}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, DrillFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class DrillFailed(AssertionError):
    """The drill did not pass: its verdict, reason and the evidence of its failed checks."""


def _report_dir(config: pytest.Config, target_name: str, stem: str) -> Path:
    root = config.invocation_params.dir / (config.getoption("omnidrill_report_dir") or "reports")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return root / f"{stamp}-{target_name}-{stem}"


def _run_drill_test(request: pytest.FixtureRequest, subtests: pytest.Subtests) -> None:
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.report.journal import read_run

    item = request.node
    config = request.config
    target, profile, variables = config.stash[_PROFILE_KEY]
    report_dir = _report_dir(config, profile.name, item.path.stem)
    opts = RunOptions(
        target=target,
        report_dir=report_dir,
        strict=bool(config.getoption("omnidrill_strict")),
        confirm=config.getoption("omnidrill_confirm"),
        variables=variables,
    )
    code = run([item.path], profile, opts)
    run_view = read_run(report_dir / "journal.json")
    item.user_properties.append(("report", str(report_dir / "report.html")))
    item.user_properties.append(("exit_code", str(code)))
    drill = run_view.drills[0] if run_view.drills else None
    if drill is None:
        raise DrillFailed(f"the run wrote no drill to its journal (exit {code})")
    for m in drill.measures:
        item.user_properties.append((m.what.replace(" ", "_"), m.text()))
    for check in drill.checks:
        with subtests.test(msg=check.label, **({"clause": check.clause} if check.clause else {})):
            if check.verdict == "skipped":
                pytest.skip(check.evidence[0].text if check.evidence else "skipped")
            if check.verdict not in ("passed", "done"):
                lines = [e.text for e in check.evidence] or [check.verdict]
                raise DrillFailed(f"{check.verdict}: " + "\n".join(lines))
    if drill.verdict == "skipped":
        pytest.skip(f"drill skipped: {drill.reason}")
    if drill.verdict != "passed" or code != 0:
        failed = [
            f"  {c.label}" + (f" [{c.clause}]" if c.clause else "") + ": " + e.text
            for c in drill.failed_checks
            for e in c.evidence[:3]
        ]
        raise DrillFailed(
            f"drill {drill.title!r} {drill.verdict} (exit {code}): {drill.reason}\n"
            + "\n".join(failed)
            + f"\nreport: {report_dir / 'report.html'}"
        )
