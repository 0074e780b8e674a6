"""docs/contract.md matches what ships: every clause used has a section, every section is
checked by a shipped drill or scenario, and each "Checked by" line names exactly those files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "contract.md"
SHIPPED = sorted([*ROOT.glob("chaos/*.yaml"), *ROOT.glob("scenarios/*.yaml")])
# Clauses no drill lists in `contract:`: the detection phase checks them in every drill that a
# shipped monitor names in `tripped_by` (test_detection_checks_o1_o2_in_shipped_drills).
BY_DETECTION = {"O1", "O2"}


def sections() -> dict[str, str]:
    """Clause id -> its section's text."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^### ([A-Z]\d+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def checked_by(section: str) -> set[str]:
    line = next((ln for ln in section.splitlines() if ln.startswith("Checked by:")), "")
    return set(re.findall(r"`((?:chaos|scenarios)/[^`]+\.yaml)`", line))


def clauses_of(path: Path) -> tuple[set[str], set[str]]:
    """(the `contract:` list, every `clause:` of a check) of a drill or scenario file."""
    text = path.read_text(encoding="utf-8")
    listed = re.search(r"^contract:\s*\[([^\]]*)\]", text, flags=re.M)
    contract = {c.strip() for c in listed.group(1).split(",")} if listed else set()
    return contract, set(re.findall(r"^\s+clause:\s*([A-Z]\d+)\s*$", text, flags=re.M))


def test_every_clause_a_drill_or_scenario_uses_is_in_the_doc() -> None:
    documented = set(sections())
    missing = {
        f"{p.relative_to(ROOT)}: {c}"
        for p in SHIPPED
        for c in set.union(*clauses_of(p))
        if c not in documented
    }
    assert not missing, f"clauses used but not in docs/contract.md: {sorted(missing)}"


def test_every_clause_in_the_doc_is_checked_by_what_ships_and_says_by_what() -> None:
    shipped = {str(p.relative_to(ROOT)): clauses_of(p)[0] for p in SHIPPED}
    problems = []
    for clause, section in sections().items():
        actual = {f for f, listed in shipped.items() if clause in listed}
        if clause in BY_DETECTION:
            assert "detection phase" in section, f"{clause}: say the detection phase checks it"
            continue
        if not actual:
            problems.append(f"{clause}: no shipped drill or scenario checks it")
        elif checked_by(section) != actual:
            problems.append(
                f"{clause}: docs say checked by {sorted(checked_by(section))}, "
                f"the files that list it are {sorted(actual)}"
            )
    assert not problems, "\n".join(problems)


def test_report_titles_and_drill_ids_are_clauses_of_the_doc() -> None:
    from omnidrill.chaos.models import CLAUSE_RE
    from omnidrill.report.words import CLAUSE_TITLES

    documented = set(sections())
    assert set(CLAUSE_TITLES) <= documented
    for clause in documented - BY_DETECTION:
        assert CLAUSE_RE.match(clause), f"{clause} is documented but drills cannot name it"


def _order(clause: str) -> tuple[str, int]:
    return clause[0], int(clause[1:])


def test_readme_links_the_contract_and_lists_each_drills_clauses() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/contract.md" in readme
    for path in ROOT.glob("chaos/*.yaml"):
        listed = ", ".join(sorted(clauses_of(path)[0], key=_order))
        row = re.search(rf"^\| `chaos/{re.escape(path.name)}` \| ([^|]+) \|", readme, flags=re.M)
        assert row, f"README's drill table has no row for {path.name}"
        shown = ", ".join(sorted(re.findall(r"\b[A-Z]\d\b", row.group(1)), key=_order))
        assert shown == listed, f"{path.name}: README says {shown}, the file lists {listed}"


def test_detection_checks_o1_o2_in_shipped_drills() -> None:
    """O1 and O2 are judged by the detection phase of the drills shipped monitors name."""
    named: set[str] = set()
    for path in ROOT.glob("monitors/*.yaml"):
        for found in re.findall(r"tripped_by:\s*\[([^\]]*)\]", path.read_text(encoding="utf-8")):
            named |= {n.strip() for n in found.split(",") if n.strip() and "{" not in n}
    drills = {p.stem for p in ROOT.glob("chaos/*.yaml")}
    assert named & drills, "no shipped monitor names a shipped drill in tripped_by"
