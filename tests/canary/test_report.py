"""A canary through `omnidrill run` to its reports: the journal row, report.html (both sides per
metric, drawn), a JUnit case per metric, summary.md, and the exit code."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml

from load.helpers import fake_profile, fake_target
from omnidrill.chaos.runner import RunOptions, run
from omnidrill.profile import TargetProfile

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.serial  # load with latency differences: alone, not beside other tests

SCENARIO = """\
type: canary
name: fake-canary
load:
  users: 4
  duration: 5s
  pacing: {per_user_rps: 25}
  clients: 20
  tasks:
    - {function: wallet-balance, body: {address: "${address}"}}
warmup: 1s
metrics:
  - {function: wallet-balance, measure: p50, tolerance: 20%}
  - {function: wallet-balance, measure: p99, tolerance: 20%}
  - {function: wallet-balance, measure: error_rate, tolerance: 1%}
"""


def test_a_slower_canary_in_every_report(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "canary.yaml").write_text(SCENARIO)
    with ExitStack() as stack:
        ports = [stack.enter_context(fake_target(delay_ms=d))[0] for d in (3, 7)]
        profile = TargetProfile.model_validate(fake_profile(ports))
        opts = RunOptions(target="fake", report_dir=tmp_path / "report")
        code = run([folder / "canary.yaml"], profile, opts)
    assert code == 1
    journal = json.loads((tmp_path / "report" / "journal.json").read_text())
    row = journal["scenarios"][0]
    assert row["verdict"] == "failed" and row["result"]["type"] == "canary"
    statuses = {m["metric"]: m["status"] for m in row["result"]["metrics"]}
    # p99 needs 1000 requests a side: 5 s of this load has fewer, so it is not judged
    assert statuses == {
        "wallet-balance p50": "worse",
        "wallet-balance p99": "inconclusive",
        "wallet-balance error_rate": "pass",
    }

    html = (tmp_path / "report" / "report.html").read_text()
    assert 'data-canary-verdict="fail"' in html
    assert html.count("<svg") >= 2  # the p50 and the error rate drawn (p99 has nothing yet)
    assert "needs 1000" in html and 'data-metric="wallet-balance p50" data-status="worse"' in html

    cases = {
        c.name: c
        for suite in JUnitXml.fromfile(str(tmp_path / "report" / "junit.xml"))
        for c in suite
    }
    assert isinstance(cases["metric wallet-balance p50"].result[0], Failure)
    assert isinstance(cases["metric wallet-balance p99"].result[0], Error)
    assert cases["metric wallet-balance error_rate"].is_passed

    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| fake-canary | ❌ FAILED | 1/3 |" in summary and "canary fail" in summary


def test_drills_on_a_canary_of_its_own_profile(tmp_path: Path, _state_dir: Path) -> None:
    """The canary on another profile: its drills run under that profile's lock and ledger (a
    drill it cannot run is skipped with the reason, and the canary still judged)."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    green = tmp_path / "green.yaml"
    sides = f"warmup: 1s\ncanary: {{profile: {green}}}\nbaseline: {{}}\n"
    drill = ROOT / "chaos" / "rpc-primary-outage.yaml"  # needs a fault-proxy path: skipped here
    p99 = "  - {function: wallet-balance, measure: p99, tolerance: 20%}\n"  # too few requests
    text = SCENARIO.replace("warmup: 1s\n", sides).replace(p99, "") + f"drills: [{drill}]\n"
    (folder / "canary.yaml").write_text(text)
    with ExitStack() as stack:
        ports = [stack.enter_context(fake_target(delay_ms=3))[0] for _ in range(2)]
        green.write_text(json.dumps({**fake_profile([ports[1]]), "name": "green"}))
        profile = TargetProfile.model_validate(fake_profile([ports[0]]))
        opts = RunOptions(target="fake", report_dir=tmp_path / "report")
        code = run([folder / "canary.yaml"], profile, opts)
    journal = json.loads((tmp_path / "report" / "journal.json").read_text())
    assert code == 0, journal["scenarios"]
    assert journal["drills"][0]["verdict"] == "skipped"
    assert "(on the canary: " in journal["drills"][0]["title"]
    assert journal["scenarios"][0]["result"]["drills"][0]["verdict"] == "skipped"
    assert (_state_dir / "locks" / "green.lock").exists()
