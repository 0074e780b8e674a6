"""The standard suite against one faulty variant of the reference stack, clause by clause.

Shared by the catalogue's tests (tests/chaos/test_variants.py) and the mutation score
(benchmarks/mutation_score.py): a variant is caught when its clause fails, and precise when
every other clause of the suite does not (passed or skipped).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from chaos.drillkit import CHAOS, FAULTINJECT, ROOT, Stack, declared, start_stack

sys.path.insert(0, str(FAULTINJECT))
from omnidrill_variants import BYPASSES, CATALOGUE, ELSEWHERE_PROFILE, Variant

RATE_LIMIT = ROOT / "scenarios" / "rate-limit.yaml"
DRILLS = sorted(CHAOS.glob("*.yaml"))
RATE_CLAUSES = {"R1", "R2", "R3", "R4", "R5", "R6"}  # the rate-limit scenario's
WORST = ["failed", "inconclusive", "not_checked", "skipped", "passed"]

__all__ = [
    "BYPASSES",
    "CATALOGUE",
    "ELSEWHERE_PROFILE",
    "SuiteResult",
    "Variant",
    "declared",
    "drills_covering",
    "run_suite",
    "variant_stack",
]


@contextlib.contextmanager
def variant_stack(
    tmp: Path, name: str, pg_admin_dsn: str, redis_url: str, redis_prefix: str, *extra: str
) -> Iterator[Stack]:
    """The reference stack on a database of its own and a Redis prefix of its own, two
    instances, with the variant `name` patched in ('' for the correct stack)."""
    import psycopg
    from psycopg import sql

    db = f"omnidrill_v_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(pg_admin_dsn, autocommit=True, connect_timeout=5)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    base, _, _ = pg_admin_dsn.rpartition("/")
    # rpc_timeout 2 s and controls_timeout 1 s (the contract's defaults, not --fast's 0.8 s and
    # 0.5 s): a machine busy with other suites must not turn the stack's own Redis and control
    # reads into outages
    args = ["--instances", "2", "--postgres", f"{base}/{db}", "--redis", redis_url]
    args += ["--rpc-timeout-ms", "2000", "--controls-timeout-ms", "1000"]
    args += ["--redis-prefix", f"{redis_prefix}{name or 'correct'}:{uuid.uuid4().hex[:6]}:"]
    args += list(extra)
    try:
        # no `observe:`: a variant is judged on its own clause, O1 on the correct stack
        # (test_detection, the demo); every drill of every variant would otherwise wait a few
        # seconds for its monitors to resolve
        with start_stack(tmp, *args, fault=name or None, observe=False) as stack:
            yield stack
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.close()


@dataclass
class SuiteResult:
    code: int
    journal: dict[str, Any]
    output: str
    clauses: dict[str, str] = field(default_factory=dict)  # clause -> worst verdict
    evidence: dict[str, list[str]] = field(default_factory=dict)

    def note(self, clause: str, verdict: str, why: str = "") -> None:
        old = self.clauses.get(clause)
        if old is None or WORST.index(verdict) < WORST.index(old):
            self.clauses[clause] = verdict
        if why and verdict in ("failed", "inconclusive", "not_checked"):
            self.evidence.setdefault(clause, []).append(why)

    def wrong(self, expected: set[str]) -> dict[str, str]:
        """Clauses other than `expected` that failed (a false alarm, were the target correct
        there). Inconclusive ones are not counted: they say no verdict could be given (a burst
        slower than a tenth of a window on a busy machine), never that the target is wrong."""
        return {
            c: v for c, v in sorted(self.clauses.items()) if c not in expected and v == "failed"
        }


def drills_covering(clauses: set[str]) -> list[Path]:
    """The standard drills whose `contract:` names any of `clauses`."""
    import re

    found = []
    for path in DRILLS:
        m = re.search(r"^contract:\s*\[([^\]]*)\]", path.read_text(), re.M)
        if m and clauses & {c.strip() for c in m.group(1).split(",")}:
            found.append(path)
    return found


def run_suite(
    stack: Stack, report: Path, drills: bool | list[Path] = True, scenario: bool = True
) -> SuiteResult:
    """Run the standard drills (all, or those given) and/or the rate-limit scenario, as
    `omnidrill run` would."""
    from omnidrill.chaos.console import Progress
    from omnidrill.chaos.runner import RunOptions, run
    from omnidrill.cliutil import load_profile

    chosen = drills if isinstance(drills, list) else DRILLS if drills else []
    paths = [*chosen, *([RATE_LIMIT] if scenario else [])]
    buf = io.StringIO()
    code = run(
        paths,
        load_profile(str(stack.profile_path)),
        RunOptions(target=str(stack.profile_path), report_dir=report),
        printer=Progress(Console(file=buf, width=200, highlight=False)),
    )
    journal = json.loads((report / "journal.json").read_text())
    out = SuiteResult(code, journal, buf.getvalue())
    for d in journal["drills"]:
        clauses = d.get("clauses") or {}
        for clause, verdict in clauses.items():
            why = [
                f"{Path(d['file']).name}: {e['step']}: {'; '.join(e['evidence'][:2])}"
                for e in d["evidence"]
                if e.get("clause") == clause
            ]
            out.note(clause, verdict, " | ".join(why) or f"{Path(d['file']).name}: {d['reason']}")
        if d["verdict"] in ("failed", "inconclusive") and "failed" not in clauses.values():
            # a drill that failed with no clause failing (its steady state did not hold) fails
            # every clause it names; an inconclusive one leaves them without a verdict
            for clause in d["contract"]:
                out.note(clause, d["verdict"], f"{Path(d['file']).name}: {d['reason']}")
    for s in journal.get("scenarios", []):
        for v in (s.get("result") or {}).get("verdicts", []):
            out.note(v["clause"], v["status"], f"{s['name']}: {v['summary']}")
        if not (s.get("result") or {}).get("verdicts"):
            for clause in RATE_CLAUSES:
                out.note(clause, "inconclusive", f"{s['name']}: {s.get('reason')}")
    return out
