"""A drill's detection phase (CONTRACT O1, O2): the monitors that must trip, and the errors
that must reach Sentry.

The monitors a drill expects are those whose `tripped_by` names it. They must not alert
when it starts (part of its steady state), must alert within `limits.detect_timeout_s` of a
fault action (the fault is held at the end of the method until they do), and must be OK again
within `limits.resolve_timeout_s` after the rollbacks. Time to detect runs from the fault
action before the alert (a drill may bring several faults in turn: primary errors, then both
providers failing), time to resolve from the end of the rollbacks. Every answer that is
the target's own failure must be a Sentry event tagged with its trace id. Without an
`observe:` section in the profile both are skipped, with that reason, and nothing else
changes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnidrill import secrets
from omnidrill.chaos.client import Answer
from omnidrill.chaos.models import REFUSAL_MESSAGES, step_kind
from omnidrill.chaos.runtime import DrillInconclusive, StepResult
from omnidrill.errors import OmnidrillError
from omnidrill.observe.detection import ALERTING, MonitorStates, Reading, expected_monitors
from omnidrill.observe.evaluate import ALERT, NO_DATA, OK
from omnidrill.profile import Expect, Resolved

# Refusals the contract requires; they need not reach Sentry (O2).
BY_DESIGN = frozenset({"KILL_SWITCH", "SAFE_MODE", "OPERATOR_TAKEOVER", "RATE_LIMITED"})
# The target's own failures the contract names (O2); any other 5xx code counts too.
OWN_FAILURES = frozenset({"RPC_UNAVAILABLE", "RATE_LIMIT_UNAVAILABLE", "APPROVAL_UNAVAILABLE"})
TRICKLE_S = 1.0  # each function once a second on every instance while waiting: users go on
NO_OBSERVE = "the profile has no `observe:` section (where the target's telemetry goes)"
# Actions that bring a fault (a restore ends one; an approval is the method's own business).
FAULT_ACTIONS = frozenset({"controls.set", "fault.cut", "fault.toxic"})


def own_failure(a: Answer, expect: Expect) -> bool:
    """True for an answer that is the target's failure, not a refusal the contract requires."""
    if a.status is None:
        return False  # no answer at all: nothing the target could have reported
    code = a.code
    if expect.error_codes and code:
        if code in BY_DESIGN:
            return False
        return code in OWN_FAILURES or a.status >= 500
    if a.status < 500:
        return False
    body = a.body if isinstance(a.body, dict) else {}
    text = str(body.get("error") or body.get("message") or "")
    if any(m in text for m in REFUSAL_MESSAGES.values()):
        return False
    by_design = {
        expect.kill_switch_status,
        expect.safe_mode_status,
        expect.operator_takeover_status,
        expect.rate_limited_status,
    }
    # without codes a status shared with a required refusal cannot be told apart: not judged
    return a.status not in by_design


@dataclass
class Track:
    """One monitor over a drill: its state when the drill started and every change since."""

    id: str
    name: str
    expected: bool
    at_start: str = NO_DATA
    state: str = NO_DATA
    changes: list[tuple[float, str]] = field(default_factory=list)
    alerted_ts: float | None = None  # first Alert once the fault started
    resolved_ts: float | None = None  # OK again after its last Alert

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expected": self.expected,
            "at_start": self.at_start,
            "alerted_ts": _r(self.alerted_ts),
            "resolved_ts": _r(self.resolved_ts),
            "changes": [[_r(t), s] for t, s in self.changes],
        }


def _r(ts: float | None) -> float | None:
    return round(ts, 3) if ts is not None else None


@dataclass
class ObserveSetup:
    """Per run: where states come from (opened once), and the monitors of the environment."""

    states: MonitorStates | None
    skip_reason: str | None
    expected_by_drill: dict[str, list[str]]
    env: str | None
    events: Any = None  # IntakeClient or SentryApiEvents, for O2

    def close(self) -> None:
        if self.states is not None:
            self.states.close()
        close = getattr(self.events, "close", None)
        if close is not None:
            close()


def project_root(drill_file: str) -> Path:
    """The folder holding chaos/ and monitors/ for a drill file (else the working folder)."""
    here = Path(drill_file).resolve().parent.parent
    return here if (here / "monitors").is_dir() else Path.cwd()


def no_monitors(root: Path) -> str | None:
    """Why a profile's `observe:` cannot be judged here: the project has no monitors at all
    (a team's own drill folder run against `omnidrill up`'s profile, say)."""
    if any((root / "monitors" / "env").glob("*.yaml")):
        return None
    return (
        "the profile's observe: says where the target's telemetry goes, but there are no "
        f"monitors (monitors/env/*.yaml) under {root} to judge it by"
    )


def open_setup(resolved: Resolved, root: Path) -> ObserveSetup:
    """Read the profile's `observe:`; a bad setup (no monitors of its environment, undeployed
    ones) raises. Without `observe:`, or without any monitors, O1 and O2 are skipped."""
    from omnidrill.observe.compile import compile_monitors
    from omnidrill.observe.detection import open_states

    p = resolved.profile
    unjudged = NO_OBSERVE if p.observe is None else no_monitors(root)
    if unjudged:
        env = _listing_env(root, p.name, p.environment)
        compiled = compile_monitors(root, env) if env else None
        return ObserveSetup(None, unjudged, _by_drill(compiled), env)
    states, compiled = open_states(p, root)
    events: Any = None
    if p.observe.intake:
        from omnidrill.observe.intake.client import IntakeClient

        events = IntakeClient(p.observe.intake)
    elif p.observe.sentry is not None:
        from omnidrill.observe.sentry_api import SentryApiEvents

        s = p.observe.sentry
        events = SentryApiEvents(s.url, s.org, s.project, resolved.secret("observe.sentry.token"))
    return ObserveSetup(states, None, _by_drill(compiled), compiled.env, events)


def plan_lines(resolved: Resolved, file: str) -> list[str]:
    """What `--dry-run` says about O1: the monitors the drill expects and where they are read."""
    from omnidrill.observe.compile import compile_monitors
    from omnidrill.observe.detection import drill_windows, monitors_env

    p = resolved.profile
    root = project_root(file)
    obs = p.observe if not no_monitors(root) else None
    env = (
        monitors_env(obs.env, p.name, p.environment, root)
        if obs is not None
        else _listing_env(root, p.name, p.environment)
    )
    if env is None:
        return ["  monitors: none (no monitors/env/ under the project)"]
    compiled = compile_monitors(root, env)
    ids = expected_monitors(compiled, Path(file).stem)
    if not ids:
        return ["  monitors that must alert (O1): none name this drill in tripped_by"]
    lines = [f"  monitors that must alert (O1, tripped_by): {', '.join(ids)}"]
    lim = p.limits
    if obs is None:
        lines.append(f"    not checked: {NO_OBSERVE}")
    elif obs.intake:
        windows = drill_windows(compiled)
        shown = [f"{i} over {windows[i]} (drill window)" for i in ids if i in windows]
        lines.append(
            f"    {env} monitors evaluated at the intake {obs.intake} every "
            f"{obs.poll_s or 0.2:g} s" + (f"; {', '.join(shown)}" if shown else "")
        )
    else:
        lines.append(
            f"    live states of the {env} monitors in Datadog, read every {obs.poll_s or 10:g} s"
        )
    if obs is not None:
        lines.append(
            f"    alert within {lim.detect_timeout_s:g} s of a fault action (the last one held "
            f"until then), OK within {lim.resolve_timeout_s:g} s after the rollbacks"
        )
    return lines


def _listing_env(root: Path, name: str, environment: str) -> str | None:
    """Any environment will do to read `tripped_by` when nothing is evaluated."""
    folder = root / "monitors" / "env"
    for c in (name, environment, "staging"):
        if (folder / f"{c}.yaml").is_file():
            return c
    found = sorted(folder.glob("*.yaml"))
    return found[0].stem if found else None


def _by_drill(compiled: Any) -> dict[str, list[str]]:
    if compiled is None:
        return {}
    names = {n for d in compiled.monitors for n in d.spec.tripped_by}
    return {n: expected_monitors(compiled, n) for n in names}


class Detection:
    """O1 and O2 of one drill; the engine calls it at each phase."""

    def __init__(self, setup: ObserveSetup, resolved: Resolved, file: str) -> None:
        self.setup = setup
        self.profile = resolved.profile
        self.file = file
        self.drill = Path(file).stem
        self.expected = list(setup.expected_by_drill.get(self.drill, []))
        self.states = setup.states
        self.tracks: dict[str, Track] = {}
        self.faults: list[float] = []  # when each fault action of the method started
        self.rollbacks_ts: float | None = None
        self.answers: list[Answer] = []
        self.read_errors: list[str] = []
        self.source_errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_trickle = 0.0

    # -- what the drill is told -------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.states is not None

    def clauses(self) -> list[str]:
        return ["O1"] if self.expected else []

    def watch(self, answer: Answer) -> None:
        """Every answer the drill gets; the target's own failures are kept for O2."""
        if own_failure(answer, self.profile.expect):
            with self._lock:
                self.answers.append(answer)

    # -- steady state -----------------------------------------------------------------------

    def before(self, rt: Any, res: StepResult) -> bool:
        """Expected monitors do not alert when the drill starts (waits for a previous
        drill's alerts to resolve, up to resolve_timeout_s); then the states are followed."""
        res.clause = "O1"
        limit = self.profile.limits.resolve_timeout_s
        start = time.monotonic()
        while True:
            reading = self._read()
            waited = time.monotonic() - start
            if reading is None:
                if waited > min(limit, 10.0):  # the source failed, not the target: no verdict
                    raise DrillInconclusive(f"monitor states unreadable: {self.read_errors[-1]}")
                rt.sleep(self.states.poll_s)
                continue
            busy = [m for m in self.expected if reading.states.get(m) in ALERTING]
            if not busy:
                break
            if waited > limit:
                res.verdict = "failed"
                for m in busy:
                    res.evidence.append(
                        f"monitor {m} is {reading.states[m]} before the drill (waited "
                        f"{limit:g} s for it to resolve): an alert already firing cannot show "
                        "that this drill is detected"
                    )
                    res.evidence += self.states.evidence(m)
                return False
            rt.sleep(self.states.poll_s)
        res.verdict = "passed"
        res.detail["states"] = {m: reading.states.get(m, NO_DATA) for m in self.expected}
        res.measurements["waited_s"] = round(time.monotonic() - start, 3)
        self.follow(reading)
        return True

    def follow(self, first: Reading | None = None) -> None:
        """Follow every monitor's state from now on (noise is watched in every drill)."""
        if not self.active or self._thread is not None:
            return
        reading = first or self._read()
        for mid, state in (reading.states if reading else {}).items():
            self.tracks[mid] = Track(
                mid,
                self.states.names.get(mid, mid),
                mid in self.expected,
                state,
                state,  # type: ignore[union-attr]
            )
        self.source_errors = dict(reading.errors) if reading else {}
        self._thread = threading.Thread(target=self._follow, name="detection", daemon=True)
        self._thread.start()

    def _read(self) -> Reading | None:
        assert self.states is not None
        try:
            return self.states.read()
        except OmnidrillError as exc:
            self.read_errors.append(secrets.scrub(str(exc)))
            return None
        except Exception as exc:
            self.read_errors.append(secrets.scrub(f"{type(exc).__name__}: {exc}"))
            return None

    def _follow(self) -> None:
        assert self.states is not None
        while not self._stop.wait(self.states.poll_s):
            reading = self._read()
            if reading is not None:
                self._note(reading)

    def _note(self, reading: Reading) -> None:
        with self._lock:
            for mid, state in reading.states.items():
                t = self.tracks.get(mid)
                if t is None:
                    t = self.tracks[mid] = Track(
                        mid,
                        self.states.names.get(mid, mid),
                        mid in self.expected,  # type: ignore[union-attr]
                    )
                if state != t.state:
                    t.changes.append((reading.at, state))
                    t.state = state
                if not self.faults:
                    continue
                if state == ALERT:
                    t.alerted_ts = t.alerted_ts or reading.at
                    t.resolved_ts = None  # alerting again: resolved is the last return to OK
                elif state == OK and t.alerted_ts is not None and t.resolved_ts is None:
                    t.resolved_ts = reading.at
            for mid, why in reading.errors.items():
                self.source_errors.setdefault(mid, why)

    # -- the method -------------------------------------------------------------------------

    @property
    def fault_ts(self) -> float | None:
        """When the drill's first fault action started."""
        return self.faults[0] if self.faults else None

    def note_step(self, step: Any) -> None:
        """A fault action starts a clock of time to detect."""
        if step_kind(step) in FAULT_ACTIONS:
            self.faults.append(time.time())

    def fault_before(self, ts: float) -> float | None:
        """The fault action an alert at `ts` answers: the last one that started before it."""
        return max((f for f in self.faults if f <= ts), default=None)

    def await_alerts(self, rt: Any) -> None:
        """Hold the fault until every expected monitor alerted, or detect_timeout_s passed
        since the last fault action."""
        if not self.active or not self.expected or not self.faults:
            return
        deadline = self.faults[-1] + self.profile.limits.detect_timeout_s
        # detection may need longer than the drill's own max_duration: that is what is measured
        rt.deadline = max(rt.deadline, time.monotonic() + (deadline - time.time()) + 5)
        while time.time() < deadline and self._waiting_for_alerts():
            self._trickle(rt)
            rt.sleep(self.states.poll_s)  # type: ignore[union-attr]

    def _waiting_for_alerts(self) -> bool:
        with self._lock:
            return any(
                self.tracks.get(m) is None or self.tracks[m].alerted_ts is None
                for m in self.expected
                if m not in self.source_errors
            )

    def _trickle(self, rt: Any) -> None:
        """Every function once a second on every instance, as users would go on calling them:
        a monitor evaluates what the target reports, and a function nobody calls reports
        nothing (its group would keep its last state). Trades only where the profile allows."""
        if time.monotonic() - self._last_trickle < TRICKLE_S:
            return
        self._last_trickle = time.monotonic()
        functions = ["omnilink-agent", "wallet-balance"]
        if rt.profile.trade.allow_broadcast:
            functions.append("execute-trade")
        headers = rt.client.key_headers("anon", "both")
        jobs = [(i, f) for i in rt.profile.instances for f in functions]
        with rt.client.txs.batch():  # the round's transactions get consecutive nonces
            futures = [
                rt.pool.submit(
                    rt.client.send,
                    instance=i,
                    method="POST",
                    path=f"/functions/v1/{f}",
                    function=f,
                    body=rt.client.function_body(f, None, None),
                    headers=headers,
                    source="detection",
                )
                for i, f in jobs
            ]
            rt.gather(futures)

    # -- after the rollbacks ----------------------------------------------------------------

    def settle(self, rt: Any, rollbacks_ts: float | None) -> None:
        """Wait for every monitor that alerted to be OK again (resolve_timeout_s)."""
        self.rollbacks_ts = rollbacks_ts or time.time()
        if not self.active or self._thread is None:
            return
        lim = self.profile.limits
        detect_end = (self.faults[-1] if self.faults else self.rollbacks_ts) + lim.detect_timeout_s
        resolve_end = self.rollbacks_ts + lim.resolve_timeout_s
        wait_s = max(resolve_end, detect_end) - time.time()
        rt.deadline = max(rt.deadline, time.monotonic() + wait_s + 5)
        while True:
            now = time.time()
            with self._lock:
                alerted = [self.tracks[m] for m in self.expected if m in self.tracks]
                pending_ok = [t for t in alerted if t.alerted_ts and t.resolved_ts is None]
            if not pending_ok and (now >= detect_end or not self._waiting_for_alerts()):
                break
            if now >= max(resolve_end, detect_end):
                break
            self._trickle(rt)
            rt.sleep(self.states.poll_s)  # type: ignore[union-attr]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def o1_steps(self, out: Any, no_verdict: str | None) -> list[StepResult]:
        """One O1 check per expected monitor: detected in time, resolved in time."""
        lim = self.profile.limits
        if not self.active and self.expected:
            res = StepResult(
                phase="detection",
                index=0,
                kind="monitor.detected",
                name="the monitors this drill must trip alert, then resolve: "
                + ", ".join(self.expected),
                clause="O1",
                verdict="skipped",
            )
            res.evidence.append(f"O1 not checked: {self.setup.skip_reason}")
            res.detail["unobserved"] = True
            res.ended = time.time()
            return [res]
        steps = []
        for i, mid in enumerate(self.expected):
            t = self.tracks.get(mid) or Track(mid, mid, True)
            res = StepResult(
                phase="detection",
                index=i,
                kind="monitor.detected",
                name=f"monitor {mid} alerts within {lim.detect_timeout_s:g} s of the fault and "
                f"is OK within {lim.resolve_timeout_s:g} s of the rollbacks",
                clause="O1",
                started=self.fault_ts or time.time(),
            )
            res.detail["monitor"] = mid
            res.detail["title"] = t.name
            if no_verdict:
                res.verdict = "skipped"
                res.evidence.append(f"O1 not judged: {no_verdict}")
            elif mid in self.source_errors and t.alerted_ts is None:
                res.verdict = "skipped"
                res.evidence.append(f"{mid}: {self.source_errors[mid]}")
            else:
                self._judge(t, res)
            res.ended = time.time()
            steps.append(res)
        return steps

    def _judge(self, t: Track, res: StepResult) -> None:
        lim = self.profile.limits
        rb = self.rollbacks_ts
        res.measurements["resolution_s"] = self.states.poll_s  # type: ignore[union-attr]
        if not self.faults:
            res.verdict = "skipped"
            res.evidence.append("the drill changed nothing before it ended: no fault to detect")
            return
        if t.alerted_ts is None and self.read_errors:
            res.verdict = "inconclusive"  # the states could not be read: not the target's fault
            res.evidence.append(f"{t.id} never seen alerting, and reads failed: ")
            res.evidence += self.read_errors[-3:]
            return
        if t.alerted_ts is None:
            return self._fail(
                res,
                t,
                "undetected",
                f"undetected: monitor {t.id} ({t.name}) did not alert within "
                f"{lim.detect_timeout_s:g} s of the drill's fault actions (state {t.state})",
            )
        fault = self.fault_before(t.alerted_ts) or self.faults[0]
        ttd = t.alerted_ts - fault
        res.measurements["time_to_detect_s"] = round(ttd, 3)
        res.measurements["alerted_ts"] = round(t.alerted_ts, 3)
        res.measurements["fault_ts"] = round(fault, 3)
        if ttd > lim.detect_timeout_s:
            return self._fail(
                res,
                t,
                "late",
                f"monitor {t.id} alerted {ttd:.2f} s after the fault action before it, later "
                f"than detect_timeout_s {lim.detect_timeout_s:g} s",
            )
        if t.resolved_ts is None:
            return self._fail(
                res,
                t,
                "unresolved",
                f"monitor {t.id} was still {t.state} {lim.resolve_timeout_s:g} s after the "
                "rollbacks (resolve_timeout_s)",
            )
        ttr = max(0.0, t.resolved_ts - (rb or t.resolved_ts))
        res.measurements["time_to_resolve_s"] = round(ttr, 3)
        res.measurements["resolved_ts"] = round(t.resolved_ts, 3)
        if rb is not None and t.resolved_ts < rb:
            res.detail["resolved_before_rollbacks"] = True
        if ttr > lim.resolve_timeout_s:
            return self._fail(
                res,
                t,
                "late resolve",
                f"monitor {t.id} was OK again {ttr:.2f} s after the rollbacks, later than "
                f"resolve_timeout_s {lim.resolve_timeout_s:g} s",
            )
        res.verdict = "passed"
        res.detail["outcome"] = "detected"

    def _fail(self, res: StepResult, t: Track, outcome: str, why: str) -> None:
        """A failed O1 check: why, then what the source saw of the monitor's series."""
        res.verdict = "failed"
        res.detail["outcome"] = outcome
        res.evidence.append(why)
        res.evidence += self.states.evidence(t.id)  # type: ignore[union-attr]

    def noise(self) -> list[str]:
        """Monitors nobody expected that went into Alert during the drill."""
        with self._lock:
            return sorted(
                t.id
                for t in self.tracks.values()
                if not t.expected
                and t.at_start not in ALERTING
                and any(s == ALERT for _, s in t.changes)
            )

    def record(self) -> dict[str, Any]:
        """The drill's `detection` record in the journal."""
        states = self.states
        with self._lock:
            tracks = {m: t.to_json() for m, t in self.tracks.items() if t.expected or t.changes}
        return {
            "source": states.source if states else None,
            "env": self.setup.env,
            "skipped": self.setup.skip_reason,
            "poll_s": states.poll_s if states else None,
            "expected": self.expected,
            "titles": {m: (states.names.get(m, m) if states else m) for m in self.expected},
            "windows": states.windows(self.expected) if states else {},
            "detect_timeout_s": self.profile.limits.detect_timeout_s,
            "resolve_timeout_s": self.profile.limits.resolve_timeout_s,
            "fault_started_ts": _r(self.fault_ts),
            "fault_actions_ts": [_r(f) for f in self.faults],
            "rollbacks_done_ts": _r(self.rollbacks_ts),
            "monitors": tracks,
            "noise": self.noise() if states else [],
            "read_errors": self.read_errors[-5:],
        }

    # -- O2 ---------------------------------------------------------------------------------

    def o2_step(self, rt: Any) -> StepResult | None:
        """Each answer that was the target's own failure is a Sentry event with its trace id."""
        with self._lock:
            answers = list(self.answers)
        if not answers:
            return None
        codes: dict[str, int] = {}
        for a in answers:
            key = a.code or str(a.status)
            codes[key] = codes.get(key, 0) + 1
        shown = ", ".join(f"{k} x{n}" for k, n in sorted(codes.items()))
        res = StepResult(
            phase="detection",
            index=len(self.expected),
            kind="sentry.reported",
            name=f"each of the target's own failures ({len(answers)}: {shown}) is a Sentry "
            "event tagged with its trace id",
            clause="O2",
        )
        events = self.setup.events
        if events is None:
            res.verdict = "skipped"
            why = self.setup.skip_reason or (
                "observe.sentry is not set: the harness cannot read the target's Sentry events"
            )
            res.evidence.append(f"O2 not checked: {why}")
            res.detail["unobserved"] = self.setup.skip_reason is not None
            res.ended = time.time()
            return res
        wanted = {a.headers.get("x-trace-id", ""): a for a in answers}
        no_trace = [a for a in answers if not a.headers.get("x-trace-id")]
        wanted.pop("", None)
        deadline = max(a.started_at for a in answers) + self.profile.limits.detect_timeout_s
        found: set[str] = set()
        try:
            while True:
                found |= events.trace_ids(set(wanted) - found)
                if found >= set(wanted) or time.time() >= deadline:
                    break
                rt.sleep(0.25)
        except OmnidrillError as exc:
            res.verdict = "inconclusive"
            res.evidence.append(secrets.scrub(f"Sentry events could not be read: {exc}"))
            res.ended = time.time()
            return res
        missing = [a for t, a in wanted.items() if t not in found]
        res.measurements["answers"] = len(answers)
        res.measurements["reported"] = len(found)
        for a in missing[:20]:
            res.evidence.append(
                f"{a.method} {a.function or a.url} on {a.instance}: {a.status} {a.code or ''} "
                f"trace id {a.headers.get('x-trace-id')}: no Sentry event tagged with it"
            )
        for a in no_trace[:5]:
            res.evidence.append(
                f"{a.method} {a.function or a.url} on {a.instance}: {a.status} {a.code or ''} "
                "carries no X-Trace-ID, so no event can be tied to it"
            )
        res.verdict = "failed" if missing or no_trace else "passed"
        res.ended = time.time()
        return res


def check_setup_for(setup: ObserveSetup, file: str) -> None:
    """Live Datadog: a monitor the drill expects must be deployed (a clear error, not a pass)."""
    from omnidrill.observe.detection import DatadogStates

    if isinstance(setup.states, DatadogStates):
        setup.states.require_deployed(setup.expected_by_drill.get(Path(file).stem, []))
