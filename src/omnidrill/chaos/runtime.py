"""What a running drill carries: the target, named results, undo registration, interruption."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any

from omnidrill.chaos.client import DrillClient
from omnidrill.chaos.journal import Journal, iso
from omnidrill.chaos.ledger import Ledger, Undo
from omnidrill.chaos.undo import UndoResult, World
from omnidrill.profile import Resolved, TargetProfile

# Undos of what the guardrail watches: after someone took the wheel their conflicts are that
# takeover (the drill aborted, exit 3), not a surprise found while rolling back (exit 4).
TAKEOVER_KINDS = ("controls.restore", "lock.release")

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)*)\}")


class DrillAborted(Exception):
    """A halt, a guardrail, max_duration or a signal stopped the drill."""

    def __init__(self, why: str, by: str):
        super().__init__(why)
        self.why = why
        self.by = by


class DrillInconclusive(Exception):
    """No verdict can be given (a fault did not take effect, a service failed)."""


class DrillSkipped(Exception):
    """The target cannot be drilled for this (found out once running): skipped, with the reason."""


class StepNotRun(Exception):
    """A step cannot run (a named result it needs is missing)."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt."""


@dataclass
class StepResult:
    """One step as the journal records it."""

    phase: str
    index: int
    kind: str
    name: str
    clause: str | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    verdict: str = "running"  # passed | failed | done | skipped | inconclusive | error | aborted
    evidence: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    requests_total: int = 0

    def add_requests(self, summaries: list[dict[str, Any]], keep: int = 60) -> None:
        self.requests_total += len(summaries)
        room = keep - len(self.requests)
        if room > 0:
            self.requests.extend(summaries[:room])

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "index": self.index,
            "kind": self.kind,
            "name": self.name,
            "clause": self.clause,
            "started_at": iso(self.started),
            "ended_at": iso(self.ended),
            "started_ts": round(self.started, 3),
            "ended_ts": round(self.ended, 3) if self.ended else None,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "measurements": self.measurements,
            "detail": self.detail,
            "requests_total": self.requests_total,
            "requests": self.requests,
        }


class Runtime:
    """Everything the steps of one drill share."""

    def __init__(
        self,
        *,
        run_id: str,
        drill: str,
        resolved: Resolved,
        client: DrillClient,
        world: World,
        ledger: Ledger,
        journal: Journal,
        halt: threading.Event,
        deadline: float,
    ) -> None:
        self.run_id = run_id
        self.drill = drill
        self.resolved = resolved
        self.profile: TargetProfile = resolved.profile
        self.client = client
        self.world = world
        self.ledger = ledger
        self.journal = journal
        self.halt = halt
        self.halt_reason = ""
        self.deadline = deadline
        self.results: dict[str, Any] = {"run": {"id": run_id}}
        self.undos: list[Undo] = []
        self.active_faults: dict[str, dict[str, Any]] = {}  # proxy -> {"kind", ...}
        self.last_change_at: float | None = None  # monotonic end of the last state change
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="drill")
        self._seq = 0
        self.changes = 0  # state-changing steps so far (the test pause hook counts them)
        self.background: Any = None  # the drill's BackgroundLoad, when it has one
        self.load_phase = ""
        self.verifications: list[tuple[Future[Any], Any]] = []  # fault probes still running
        self.pre_step_rows: dict[str, dict[str, Any]] = {}
        self.guards: list[Any] = []  # callables returning a reason to abort, or None
        # What the drill holds on the controls row (field -> the value it set), watched for
        # someone else taking the wheel; `writing` is held around the drill's own writes.
        self.held: dict[str, Any] = {}
        self.writing = threading.Lock()
        self.conflicts: list[dict[str, Any]] = []  # undos that met someone else's change
        self.not_cleaned: list[str] = []  # what no undo could take back
        self.watching = False  # the guardrail looks (from the lock to the rollbacks)
        self.probing: dict[str, Any] = {}  # a probe's own write to the controls, in flight
        self.taken_over = False  # a guardrail saw someone else change what the drill holds
        self.trade_users: set[str] = set()  # user ids whose approval rows an undo rejects
        self.approvals: set[str] = set()  # approval ids the drill's trades were answered
        self.broadcast: list[str] = []  # hashes of transactions the drill's trades sent
        # Steps a later check counts sends from (`rpc.tx_present` `since`): each provider's
        # clock at its newest call, read as the step begins.
        self.mark_before: set[str] = set()
        self.provider_marks: dict[str, dict[str, float | None]] = {}

    def settle_verifications(self) -> None:
        """Wait for the probes that prove faults took effect; raise DrillInconclusive if not."""
        while self.verifications:
            probe, settle = self.verifications.pop(0)
            self.gather([probe])
            settle()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- interruption ---------------------------------------------------------------------

    def check_abort(self) -> None:
        if self.halt.is_set():
            raise DrillAborted(self.halt_reason or "halt requested", "halt")
        if time.monotonic() > self.deadline:
            raise DrillAborted("max_duration reached", "max_duration")
        for guard in self.guards:
            why = guard()
            if why:
                raise DrillAborted(why, "guardrail")

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once for a halt; raises DrillAborted."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            self.check_abort()
            left = end - time.monotonic()
            if left <= 0:
                return
            self.halt.wait(min(left, 0.05))

    def gather(self, futures: list[Future[Any]]) -> list[Any]:
        """Wait for futures while staying responsive to halts."""
        pending = set(futures)
        while pending:
            self.check_abort()
            _, pending = wait_futures(pending, timeout=0.05)
        return [f.result() for f in futures]

    # -- undo registration ----------------------------------------------------------------

    def register_undo(self, kind: str, params: dict[str, Any], label: str) -> Undo:
        """Write the undo to the ledger before the change it undoes is made."""
        self._seq += 1
        undo = self.ledger.register(self.run_id, self._seq, kind, params, label)
        self.undos.append(undo)
        self.journal.set_pending(
            [{"run": u.run, "seq": u.seq, "kind": u.kind, "label": u.label} for u in self.undos]
        )
        return undo

    def settle_undo(self, undo: Undo, result: UndoResult, by: str = "") -> None:
        """Record an undo that ran: done in the ledger (a conflict too: it is reported, never
        retried), its conflicts and what it could not clean kept for the journal."""
        self.ledger.done(undo, f"{by}{result.status}: {result.text()}")
        self.undos = [u for u in self.undos if u is not undo]
        seen = {(c["where"], c["field"], repr(c["found"])) for c in self.conflicts}
        for c in result.conflicts:
            if (c.where, c.field, repr(c.found)) in seen:
                continue  # the lock's release meets the same change as the controls' restore
            self.conflicts.append(
                {
                    **c.to_json(),
                    "undo": undo.kind,
                    "label": undo.label,
                    "taken_over": self.taken_over and undo.kind in TAKEOVER_KINDS,
                }
            )
        for item in result.not_cleaned:
            if item not in self.not_cleaned:
                self.not_cleaned.append(item)
        if result.conflicts:
            self.journal.event(
                "undo_conflict",
                result.text(),
                drill=self.drill,
                undo=undo.kind,
                conflicts=[c.to_json() for c in result.conflicts],
            )
        else:
            self.journal.event("rollback", result.note, drill=self.drill, undo=undo.kind)

    def mark_changed(self) -> None:
        self.last_change_at = time.monotonic()

    # -- named results --------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Replace ${id.path} references by the named results of earlier steps."""
        if isinstance(value, str):
            whole = _REF.fullmatch(value)
            if whole:
                return self.lookup(whole.group(1))
            return _REF.sub(lambda m: str(self.lookup(m.group(1))), value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def lookup(self, dotted: str) -> Any:
        head, *rest = dotted.split(".")
        if head not in self.results:
            raise StepNotRun(f"${{{dotted}}}: no earlier step has id {head!r} (or it did not run)")
        cur: Any = self.results[head]
        for i, part in enumerate(rest):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                cur = cur[int(part)]
            else:
                where = ".".join([head, *rest[:i]])
                raise StepNotRun(f"${{{dotted}}}: {where} has no {part!r}")
        return cur


def dig(obj: Any, dotted: str) -> tuple[bool, Any]:
    """(found, value) of a dotted field in a JSON document."""
    cur = obj
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur
