"""The catalogue of faulty variants against the standard suite: each variant's clause fails,
with evidence naming it, and every other clause still passes (or is skipped).

CI runs one variant per clause (`ci=True` in the catalogue; `serial`: `make test` runs
them after the others) through the drills that name its clause, precise within them;
`-m slow` runs every variant through the whole suite (by hand), as
benchmarks/mutation_score.py does with a score per clause. Drill-side variants run the drills,
rate-limit variants (R1-R6) the rate-limit scenario: patches of the one cannot reach the
other's clauses, and the mutation score runs both for every variant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.variantkit import CATALOGUE, RATE_CLAUSES, drills_covering, run_suite, variant_stack

CI_VARIANTS = sorted(n for n, v in CATALOGUE.items() if v.ci)


def test_the_catalogue_covers_every_drilled_clause_several_times() -> None:
    from collections import Counter

    per = Counter(v.clause for v in CATALOGUE.values())
    assert len(CATALOGUE) >= 40
    drilled = {"S1", "S2", *(f"C{i}" for i in range(1, 8)), "A1", "A2", "A3", "A4"}
    drilled |= {*(f"R{i}" for i in range(1, 8)), "I1", "I2", "P1", "P2", "P3", "P4"}
    assert set(per) == drilled
    assert sorted(v.clause for v in CATALOGUE.values() if v.ci) == sorted(drilled)
    for name, v in CATALOGUE.items():
        assert v.doc.startswith(f"{v.clause}"), f"{name}: its doc names its clause first"


def _judge(
    name: str, tmp_path: Path, pg_admin: str, redis_url: str, prefix: str, whole: bool
) -> None:
    """`whole`: every drill (precision over the suite); else the drills naming the clause."""
    v = CATALOGUE[name]
    rate = v.clause in RATE_CLAUSES
    drills: bool | list[Path] = not rate if whole else drills_covering({v.clause})
    with variant_stack(tmp_path / "stack", name, pg_admin, redis_url, prefix) as stack:
        result = run_suite(stack, tmp_path / "report", drills=drills, scenario=rate)
    shown = f"{name}: {result.clauses}\n{result.evidence}\n{result.output[-3000:]}"
    assert result.code == 1, shown
    assert result.clauses.get(v.clause) == "failed", shown
    assert result.evidence.get(v.clause), "the evidence names the clause"
    assert result.wrong({v.clause, *v.also}) == {}, shown
    assert result.journal.get("pending_undos") in ([], None), "every undo ran"


@pytest.mark.serial
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("name", CI_VARIANTS)
def test_one_variant_per_clause_fails_that_clause_only(
    name: str, tmp_path: Path, pg_admin: str, redis_url: str, redis_prefix: str
) -> None:
    _judge(name, tmp_path, pg_admin, redis_url, redis_prefix, whole=False)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_variant_fails_its_clause_only_over_the_whole_suite(
    name: str, tmp_path: Path, pg_admin: str, redis_url: str, redis_prefix: str
) -> None:
    _judge(name, tmp_path, pg_admin, redis_url, redis_prefix, whole=True)
