"""report.html of a real run: self-contained, scrubbed, and rendered by headless chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

from omnidrill import secrets
from omnidrill.report.html import render_html
from omnidrill.report.journal import load_journal, run_view

from .chromium import chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
XML_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_report_is_self_contained(real_run: tuple[int, Path]) -> None:
    html = (real_run[1].parent / "report.html").read_text()
    assert "<script" not in html.lower()
    assert "@import" not in html
    assert not re.search(r"url\((?!#)", html), "a url() that is not a reference inside the page"
    urls = set(re.findall(r"""(?:https?|ftp)://[^\s"'<>)]+""", html))
    # the only absolute URLs are XML namespace names (never fetched) and the stack's own
    # addresses quoted as evidence text
    assert {u for u in urls if not u.startswith("http://127.0.0.1:")} <= XML_NAMESPACES
    for attr in re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html):
        # a clause links to its section of the project's contract (navigation, not a resource)
        if re.fullmatch(r"[^'\"#]*docs/contract\.md#[a-z]\d", attr):
            continue
        assert attr.startswith("#"), f"a link or source leaves the page: {attr!r}"
    assert re.search(r'href="[^"]*docs/contract\.md#c2"', html), "clauses link the contract"
    assert html.count("<svg") == 3  # one timeline per drill


def test_secrets_are_scrubbed_from_every_report(real_run: tuple[int, Path], tmp_path: Path) -> None:
    from omnidrill.report import write_reports

    doc = load_journal(real_run[1])
    leaked = "sk_live_report_secret_0042"
    failing = next(d for d in doc["drills"] if d["verdict"] == "failed")
    step = next(s for s in failing["steps"] if s["verdict"] == "failed")
    step["evidence"].append(f"POST execute-trade: body has apikey {leaked}, expected nothing")
    step["requests"][0]["body"] = f'{{"error": "bad key {leaked}"}}'
    failing["reason"] = f"leak of {leaked}"
    (tmp_path / "journal.json").write_text(json.dumps(doc))
    secrets.register(leaked)
    try:
        written = write_reports(tmp_path / "journal.json")
    finally:
        secrets.forget_all()
    assert set(written.files) == {"html", "junit", "md"}
    for path in [*written.files.values(), tmp_path / "summary.json"]:
        text = path.read_text()
        assert leaked not in text, path.name
    assert "***" in written.files["html"].read_text()


def test_evidence_table_splits_request_expected_got(real_run: tuple[int, Path]) -> None:
    run = run_view(load_journal(real_run[1]))
    failing = next(d for d in run.drills if d.verdict == "failed")
    check = failing.failed_checks[0]
    structured = [e for e in check.evidence if e.expected is not None]
    assert structured, check.evidence
    first = structured[0]
    assert first.request and first.request.startswith("POST wallet-balance on http://127.0.0.1:")
    assert first.expected == "503" and first.got == "status 200"
    html = render_html(run)
    assert "<td>503</td><td>status 200</td>" in html


def test_chromium_renders_verdict_coverage_and_charts(real_run: tuple[int, Path]) -> None:
    page = real_run[1].parent / "report.html"
    with chromium() as browser:
        log = browser.load(page.as_uri())
        verdict = browser.evaluate("document.getElementById('verdict').innerText")
        verdict_attr = browser.evaluate("document.getElementById('verdict').dataset.verdict")
        coverage = browser.evaluate(
            "Array.from(document.querySelectorAll('#coverage tbody tr'))"
            ".map(r => [r.dataset.clause, r.dataset.verdict, r.cells[2].innerText])"
        )
        charts = browser.evaluate(
            "Array.from(document.querySelectorAll('.chart svg')).map(s => {"
            " const b = s.getBoundingClientRect();"
            " return [b.width, b.height, s.querySelectorAll('path, rect').length]; })"
        )
        first_section = browser.evaluate("document.querySelector('section.drill').dataset.verdict")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / "report-real-run.png")
    assert log.errors == []
    assert log.requests == [page.as_uri()], f"the page requested more: {log.requests}"
    assert verdict_attr == "aborted"
    assert verdict.startswith("omnidrill ABORTED (exit 3)")
    assert "1 FAILED" in verdict and "1 passed" in verdict
    rows = {c: (v, who) for c, v, who in coverage}
    assert set(rows) == {"C2", "C3", "C4", "C5"}
    assert rows["C2"][0] == "passed" and rows["C5"][0] == "passed"
    assert rows["C4"][0] == "failed" and "wrong on purpose" in rows["C4"][1]
    # C3's check passed before the guardrail stopped the drill: the clause held, the drill not
    assert rows["C3"][0] == "passed" and "the drill ABORTED" in rows["C3"][1]
    assert len(charts) == 3
    for width, height, shapes in charts:
        assert width > 300 and height > 200 and shapes > 10
    assert first_section == "aborted"  # worst first
    assert (ARTIFACTS / "report-real-run.png").stat().st_size > 10_000


def test_the_browser_check_catches_errors_and_requests(tmp_path: Path) -> None:
    """The harness itself: a page with a console error and a fetch is caught on both counts."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><p id=x>x</p><script>console.error('broken chart')</script>"
        "<img src='https://cdn.example.com/chart.png'></body></html>"
    )
    with chromium() as browser:
        log = browser.load(page.as_uri())
    assert any("broken chart" in e for e in log.errors)
    assert "https://cdn.example.com/chart.png" in log.requests


def test_every_action_rollback_and_abort_is_marked(real_run: tuple[int, Path]) -> None:
    from omnidrill.report.html import drill_chart

    run = run_view(load_journal(real_run[1]))
    aborted = next(d for d in run.drills if d.verdict == "aborted")
    _svg, marks = drill_chart(aborted)
    kinds = [(m.kind, m.label) for m in marks]
    actions = [s for s in aborted.steps if not s.is_check and s.phase == "method"]
    undos = [s for s in aborted.steps if s.phase == "undo"]
    assert [label for kind, label in kinds if kind == "action"] == [s.name for s in actions]
    assert [label for kind, label in kinds if kind == "rollback"] == [s.name for s in undos]
    assert any(kind == "abort" and "guardrail" in label for kind, label in kinds)
    assert "hold the takeover past the guardrail" in [s.name for s in actions]
    assert all(0 <= m.t <= (aborted.ended_ts or 0) - int(aborted.started_ts or 0) for m in marks)
