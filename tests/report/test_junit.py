"""junit.xml of a real run, read back by junitparser: exactly the run's suites, cases, failures."""

from __future__ import annotations

import json
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from omnidrill.errors import ExitCode
from omnidrill.report.journal import ACTION_KINDS


def _checks(drill: dict) -> list[dict]:
    return [s for s in drill["steps"] if s["kind"] not in ACTION_KINDS and s["phase"] != "undo"]


def test_junit_has_exactly_the_runs_suites_cases_and_failures(real_run: tuple[int, Path]) -> None:
    code, journal_path = real_run
    assert code == ExitCode.ABORTED
    journal = json.loads(journal_path.read_text())
    verdicts = {Path(d["file"]).stem: d["verdict"] for d in journal["drills"]}
    assert verdicts == {"passing": "passed", "failing": "failed", "aborted": "aborted"}

    xml = JUnitXml.fromfile(str(journal_path.parent / "junit.xml"))
    suites = {s.name: s for s in xml}
    assert list(suites) == ["passing", "failing", "aborted"]
    for drill in journal["drills"]:
        name = Path(drill["file"]).stem
        suite = suites[name]
        cases = list(suite)
        checks = _checks(drill)
        by_name = {c.name: c for c in cases}
        for step in checks:
            case = next(c for n, c in by_name.items() if n.endswith(f": {step['name']}"))
            kinds = {type(r) for r in case.result}
            if step["verdict"] == "failed":
                assert kinds == {Failure}, (name, step["name"])
                failure = case.result[0]
                assert failure.message == "; ".join(step["evidence"])
                assert step["clause"] in failure.type
                assert all(e in failure.text for e in step["evidence"])
            elif step["verdict"] == "passed":
                assert case.is_passed, (name, step["name"])
        assert suite.failures == sum(s["verdict"] == "failed" for s in checks)
        extra = [c for c in cases if c.name == "drill"]
        if drill["verdict"] == "aborted":
            assert len(extra) == 1 and isinstance(extra[0].result[0], Error)
            assert extra[0].result[0].message == drill["reason"]
        else:
            assert extra == []
        assert suite.tests == len(checks) + len(extra)

    assert suites["passing"].failures == 0 and suites["passing"].errors == 0
    assert suites["failing"].failures == 1
    failed = next(c for c in suites["failing"] if not c.is_passed)
    assert "expected 503" in failed.result[0].message
    assert suites["aborted"].errors == 1
    assert xml.failures == 1 and xml.errors == 1 and xml.skipped == 0
    props = {p.name: p.value for p in suites["passing"].properties()}
    assert props["clauses"] == "C2,C5"
    assert props["time_to_effect"].endswith("s)")  # value with its resolution


def test_skipped_and_control_characters(real_run: tuple[int, Path], tmp_path: Path) -> None:
    from omnidrill.report.journal import load_journal, run_view
    from omnidrill.report.junit import render_junit

    doc = load_journal(real_run[1])
    doc["drills"][0]["verdict"] = "skipped"
    doc["drills"][0]["reason"] = "the profile offers no proxy redis"
    doc["drills"][0]["steps"] = []
    failed = next(s for s in doc["drills"][1]["steps"] if s["verdict"] == "failed")
    failed["evidence"][0] += " body \x00\x1b[31m"
    out = tmp_path / "junit.xml"
    out.write_text(render_junit(run_view(doc)))
    xml = JUnitXml.fromfile(str(out))
    first = next(iter(xml))
    case = next(iter(first))
    assert isinstance(case.result[0], Skipped)
    assert case.result[0].message == "the profile offers no proxy redis"
    broken = next(c for c in list(xml)[1] if not c.is_passed)
    assert "body \ufffd\ufffd[31m" in broken.result[0].message
