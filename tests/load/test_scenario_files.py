"""Scenario files through the one spec loader: the shipped ones load, mistakes name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnidrill.load.models import LoadScenario, RateLimitScenario
from omnidrill.load.runner import load_scenario
from omnidrill.profile import development_profile, template_variables
from omnidrill.spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
type: load
name: t
users: 2
duration: 5s
tasks:
  - function: wallet-balance
    body: {address: "${address}"}
thresholds:
  all:
    - "p95 < 300ms"
    - "error_rate < 1%"
"""


def variables(forwarded_for: bool = True, broadcast: bool = True) -> dict:
    p = development_profile()
    p.clients.forwarded_for = forwarded_for
    p.trade.allow_broadcast = broadcast
    return template_variables(p, {})


@pytest.mark.parametrize("name", ["smoke", "nightly", "rate-limit", "steady-read"])
@pytest.mark.parametrize("trusting", [True, False])
def test_shipped_scenarios_load(name: str, trusting: bool) -> None:
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml", variables(trusting, trusting))
    assert sc.name == name
    if isinstance(sc, LoadScenario):
        assert (sc.clients > 1) == trusting
    else:
        assert isinstance(sc, RateLimitScenario) and sc.contract == [
            "R1",
            "R2",
            "R3",
            "R4",
            "R5",
            "R6",
        ]


def test_nightly_trades_only_where_broadcasts_are_allowed() -> None:
    with_trades = load_scenario(ROOT / "scenarios/nightly.yaml", variables(True, True))
    without = load_scenario(ROOT / "scenarios/nightly.yaml", variables(True, False))
    assert "execute-trade" in [t.label for t in with_trades.tasks]
    assert "execute-trade" not in [t.label for t in without.tasks]


def problems(tmp_path: Path, text: str) -> list[str]:
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    path = folder / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_scenario(path)
    return [p.format() for p in exc.value.problems]


def test_good_file_loads(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(GOOD)
    sc = load_scenario(tmp_path / "ok.yaml")
    assert isinstance(sc, LoadScenario) and sc.duration == 5.0


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ('"error_rate < 1%"', '"errors < 1%"', 11, "unknown metric 'errors'"),
        ('"p95 < 300ms"', '"p95 << 300ms"', 10, "malformed threshold"),
        ('"p95 < 300ms"', '"p95 < 300 parsecs"', 10, "unit 'parsecs'"),
        ("  all:", "  wallet-balanse:", 9, "unknown task(s) wallet-balanse"),
        ("users: 2", "uesrs: 2", 3, "unknown field 'uesrs'"),
        ("duration: 5s", "duration: soon", 4, "expected a duration"),
        ("${address}", "${adress}", 6, "unknown generator(s) ${adress}"),
        ("function: wallet-balance", "function: wallet", 6, "unknown function 'wallet'"),
        (
            "type: load",
            "type: soak",
            1,
            "unknown type 'soak' (expected one of: load, rate_limit, canary)",
        ),
    ],
)
def test_mistakes_name_the_line(tmp_path: Path, old: str, new: str, line: int, words: str) -> None:
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new))
    assert any(f"bad.yaml:{line}:" in p and words in p for p in found), found


def test_rate_limit_scenario_checks_its_clauses(tmp_path: Path) -> None:
    text = "type: rate_limit\nname: r\ncontract: [R1, R9]\n"
    found = problems(tmp_path, text)
    assert any("bad.yaml:3:" in p and "contract" in p for p in found), found
    found = problems(tmp_path, "type: rate_limit\nname: r\ncontract: [R1]\nfunction: healthz\n")
    assert any("rate-limited one" in p for p in found), found
