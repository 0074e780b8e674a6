"""Verification of the rate-limit clauses R1-R6 (CONTRACT section 4) from outside, with evidence.

It is a protocol more than a load: a few clients (addresses from 198.18.0.0/15, sent as
X-Forwarded-For) run side by side for `flood_windows` windows:

- a flooding client sends `flood_factor` x limit per window, spread over every instance
  (R1 average, R3 headers; after its first refusal it asks for health (R6) and at the end waits
  the last Retry-After it got and asks again (R3));
- a quiet client sends `quiet_share` x limit per window, evenly (R2);
- once the flood is refused, a fresh client sends half the limit (R4);
- meanwhile, one after the other: a health flood of a fresh client (R6); a burst client sends
  `burst_factor` x limit within a tenth of a window to one instance, fresh (sliding_window) or
  right after the reset its Retry-After announced (fixed_window) (R1); the same spread over
  every instance (R5). A burst slower than a tenth of a window makes its clause inconclusive.
  One request in five of R1's burst carries a wrong key and one a body that fails validation:
  every answer but a 429 counts (section 4), so the burst's non-429 answers are exactly
  `limit`. R5's burst sends valid requests only: it judges the total across instances.

Where the profile does not trust X-Forwarded-For, this machine is one client: the roles take
turns (health, quiet, burst, flood, spread burst), with two quiet windows between them for a
sliding window, and R4 is reported skipped.

Only admitted requests count; bypass headers are never sent here. The harness makes plain
HTTP requests from threads (not Locust): the point is exact control of who sends what, when.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from omnidrill.load.generators import fill
from omnidrill.load.models import RateLimitScenario
from omnidrill.load.plan import Target, client_addresses

HEALTH = "/functions/v1/healthz"
BURST_ATTEMPTS = 3
WRONG_KEY = "omnidrill-wrong-key-0000000000000000"
# One request in five of a burst has a wrong key, one a body that fails validation: answered
# 401s and 400s use up the budget as 200s do, so the non-429 answers are still exactly `limit`.
BURST_KINDS = ("ok", "wrong_key", "ok", "bad_body", "ok")


@dataclass
class Hit:
    """One request and its answer, as evidence."""

    client: str
    path: str
    instance: str
    t0: float  # epoch, sent
    t1: float  # epoch, answered
    status: int  # 0: no answer
    retry_after: str | None
    code: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.t0, 3),
            "ms": round((self.t1 - self.t0) * 1000, 1),
            "instance": self.instance,
            "status": self.status,
            "retry_after": self.retry_after,
            "code": self.code,
            **({"error": self.error} if self.error else {}),
        }


class Prober:
    """Sends requests as a chosen client and records every answer."""

    def __init__(self, scenario: RateLimitScenario, target: Target, limited_status: int) -> None:
        self.scenario, self.target = scenario, target
        self.limited = limited_status
        self.path = f"/functions/v1/{scenario.function}"
        key = target.anon_key
        # Never the bypass headers: they exist to skip the very limit checked here.
        self.headers = {**target.headers, "apikey": key, "Authorization": f"Bearer {key}"}
        self.http = httpx.Client(
            timeout=10.0,
            verify=target.verify_tls,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

    def send(self, client: str, instance: str, health: bool = False, kind: str = "ok") -> Hit:
        """One request as `client`; kind `wrong_key` or `bad_body` asks for a 401 or a 400,
        which count against the limit like any other answer (CONTRACT section 4)."""
        path = HEALTH if health else self.path
        # client "" is this machine itself (a target that does not trust X-Forwarded-For).
        headers = {**self.headers, "X-Forwarded-For": client} if client else dict(self.headers)
        if kind == "wrong_key":
            headers |= {"apikey": WRONG_KEY, "Authorization": f"Bearer {WRONG_KEY}"}
        t0 = time.time()
        try:
            if health:
                r = self.http.get(instance + path, headers=headers)
            else:
                body = fill(self.scenario.body, {"client_ip": client, "user_id": client})
                r = self.http.post(
                    instance + path, headers=headers, json={} if kind == "bad_body" else body
                )
        except httpx.HTTPError as exc:
            return Hit(client, path, instance, t0, time.time(), 0, None, None, type(exc).__name__)
        code = None
        if r.status_code >= 400:
            try:
                code = r.json().get("code")
            except (ValueError, AttributeError):
                code = None
        return Hit(
            client,
            path,
            instance,
            t0,
            time.time(),
            r.status_code,
            r.headers.get("retry-after"),
            code,
        )

    def is_limited(self, hit: Hit) -> bool:
        return hit.status == self.limited

    def close(self) -> None:
        self.http.close()


def _paced(rate: float, duration: float, step: Any, stop: threading.Event | None = None) -> float:
    """Call step(i) at `rate` per second, evenly, for `duration` seconds; return the span."""
    start = time.monotonic()
    i = 0
    while True:
        due = start + i / rate
        if due - start >= duration or (stop is not None and stop.is_set()):
            break
        time.sleep(max(0.0, due - time.monotonic()))
        step(i)
        i += 1
    return time.monotonic() - start


def _retry_after_s(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _windows(hits: list[Hit], window_s: float, prober: Prober) -> dict[str, dict[str, int]]:
    """Admitted and refused counts per window, windows aligned to the epoch as Upstash's are."""
    out: dict[int, Counter[str]] = {}
    for h in hits:
        w = int(h.t0 // window_s)
        out.setdefault(w, Counter())["refused" if prober.is_limited(h) else "admitted"] += 1
    return {
        f"{w * window_s:.0f}": {"admitted": c["admitted"], "refused": c["refused"]}
        for w, c in sorted(out.items())
    }


class Check:
    """One run of the protocol: collects hits per role, then judges each clause."""

    def __init__(self, scenario: RateLimitScenario, target: Target) -> None:
        self.s, self.t = scenario, target
        self.limit = scenario.limit or target.rate_limit
        self.window = float(scenario.window_s or target.rate_window_s)
        self.algorithm = target.rate_algorithm
        self.instances = target.instances or [target.base_url]
        self.p = Prober(scenario, target, target.status("rate_limited"))
        names = ["flood", "quiet", "r4", "burst", "r5", "r6"]
        # Without X-Forwarded-For trust this machine is one client: the roles take turns.
        self.single = not target.forwarded_for
        addresses = [""] * len(names) if self.single else client_addresses(len(names))
        self.client = dict(zip(names, addresses, strict=True))
        roles = [*names, "flood_health", "honour_fill", "honour"]
        self.hits: dict[str, list[Hit]] = {n: [] for n in roles}
        self.flood_refused = threading.Event()
        self.notes: dict[str, Any] = {}

    # -- the clients ---------------------------------------------------------------------
    def flood(self) -> None:
        rate = self.s.flood_factor * self.limit / self.window
        duration = self.s.flood_windows * self.window
        ip = self.client["flood"]

        def step(i: int) -> None:
            hit = self.p.send(ip, self.instances[i % len(self.instances)])
            self.hits["flood"].append(hit)
            if self.p.is_limited(hit) and not self.flood_refused.is_set():
                self.flood_refused.set()
                for j in range(3):
                    inst = self.instances[j % len(self.instances)]
                    self.hits["flood_health"].append(self.p.send(ip, inst, health=True))

        span = _paced(rate, duration, step)
        self.notes["flood"] = {"rate_per_s": rate, "span_s": round(span, 3)}
        refused = [h for h in self.hits["flood"] if self.p.is_limited(h)]
        if self.hits["flood"] and not self.p.is_limited(self.hits["flood"][-1]):
            refused = self._refill(ip)
        if refused:
            wait = _retry_after_s(refused[-1].retry_after)
            if wait is not None and 1 <= wait <= math.ceil(self.window):
                # Honour the last announced Retry-After from the moment it was answered.
                time.sleep(max(0.0, refused[-1].t1 + wait - time.time()))
                self.hits["honour"].append(self.p.send(ip, self.instances[0]))
                self.notes["honour_wait_s"] = wait

    def _refill(self, ip: str) -> list[Hit]:
        """The flood ended in a window it had begun to use: its last refusal's Retry-After is
        stale (requests after it took the new window's budget). Send until refused again, so
        the Retry-After honoured is the one answered to this client's latest request."""
        for _ in range(self.limit + 1):
            hit = self.p.send(ip, self.instances[0])
            self.hits["honour_fill"].append(hit)
            if self.p.is_limited(hit):
                return [hit]
        return []

    def quiet(self) -> None:
        rate = self.s.quiet_share * self.limit / self.window
        ip = self.client["quiet"]

        def step(i: int) -> None:
            self.hits["quiet"].append(self.p.send(ip, self.instances[i % len(self.instances)]))

        span = _paced(rate, self.s.flood_windows * self.window, step)
        self.notes["quiet"] = {"rate_per_s": rate, "span_s": round(span, 3)}

    def r4(self) -> None:
        if not self.flood_refused.wait(timeout=self.s.flood_windows * self.window):
            return
        ip = self.client["r4"]
        for _ in range(max(1, self.limit // 2)):
            self.hits["r4"].append(self.p.send(ip, self.instances[0]))

    def _burst(self, role: str, spread: bool) -> None:
        """A burst that meets R1's condition (within a tenth of a window), tried up to
        BURST_ATTEMPTS times, each with a fresh client: a slow burst is no evidence either way."""
        instances = self.instances if spread else self.instances[:1]
        slow: list[float] = []
        for attempt in range(BURST_ATTEMPTS):
            ip = self.client[role] if attempt == 0 else self._fresh_client()
            hits = self._burst_once(role, ip, instances)
            if hits is None:
                return
            self.client[role], self.hits[role] = ip, hits
            span = max(h.t1 for h in hits) - min(h.t0 for h in hits)
            if span <= self.window / 10:
                break
            slow.append(round(span, 3))
        self.notes[f"{role}_slow_attempts_s"] = slow

    def _fresh_client(self) -> str:
        if not self.single:
            return client_addresses(1)[0]
        self.settle()
        return ""

    def settle(self) -> None:
        """One client only: make its state clean again. A sliding window needs two full
        windows without requests (R1); a fixed window is reset by the fill before a burst."""
        if self.algorithm == "sliding_window":
            time.sleep(2 * self.window + 0.1)

    def _burst_once(self, role: str, ip: str, instances: list[str]) -> list[Hit] | None:
        if self.algorithm == "fixed_window":
            # Fill the window until refused, then burst right after the announced reset.
            fill_hits = []
            for i in range(3 * self.limit):
                hit = self.p.send(ip, instances[i % len(instances)])
                fill_hits.append(hit)
                if self.p.is_limited(hit):
                    break
            self.notes[f"{role}_fill"] = [h.to_json() for h in fill_hits[-3:]]
            last = fill_hits[-1]
            wait = _retry_after_s(last.retry_after)
            if not self.p.is_limited(last) or wait is None:
                self.notes[f"{role}_no_reset"] = "the fill was never refused with a Retry-After"
                return None
            if not 1 <= wait <= math.ceil(self.window):
                # R3 judges the value; a reset that far away cannot be waited for here
                self.notes[f"{role}_no_reset"] = (
                    f"the fill's Retry-After {last.retry_after!r} is outside 1..{self.window:g} s"
                )
                return None
            time.sleep(max(0.0, last.t1 + wait - time.time()))
        else:
            self._clear_of_window_edges()
        n = math.ceil(self.s.burst_factor * self.limit)
        with ThreadPoolExecutor(max_workers=min(n, 32)) as pool:
            futures = [
                pool.submit(
                    self.p.send,
                    ip,
                    instances[i % len(instances)],
                    # R1's burst carries the counting rule; R5's judges the global total only
                    kind=BURST_KINDS[i % len(BURST_KINDS)] if role == "burst" else "ok",
                )
                for i in range(n)
            ]
            return [f.result() for f in futures]

    def _clear_of_window_edges(self) -> None:
        """Start a sliding-window burst between 20 % and 50 % into an epoch-aligned window.

        Upstash-style limiters align windows to the epoch; a burst that straddles a boundary
        weighs its first part as the previous window and is rightly admitted a little more
        than the limit, which R1 does not judge. Starting inside a window (not at its edge)
        keeps that true with clocks up to a fifth of a window apart, and costs nothing where
        windows start at a client's first request."""
        into = time.time() % self.window
        if not 0.2 * self.window <= into <= 0.5 * self.window:
            time.sleep((1.25 * self.window - into) % self.window)

    def burst(self) -> None:
        self._burst("burst", spread=False)

    def r5(self) -> None:
        if len(self.instances) >= 2:
            self._burst("r5", spread=True)

    def r6(self) -> None:
        ip = self.client["r6"]
        n = self.limit + max(5, self.limit // 2)
        for i in range(n):
            inst = self.instances[i % len(self.instances)]
            self.hits["r6"].append(self.p.send(ip, inst, health=True))

    def sequence(self) -> None:
        # One after the other: bursts that overlap would slow each other past a tenth of a
        # window on a small machine.
        self.r6()
        self.burst()
        self.r5()

    def run(self) -> None:
        if self.single:
            try:
                for step in (self.r6, self.settle, self.quiet, self.settle, self.burst):
                    step()
                for step in (self.settle, self.flood, self.settle, self.r5):
                    step()
            finally:
                self.p.close()
            return
        roles = [self.flood, self.quiet, self.r4, self.sequence]
        try:
            with ThreadPoolExecutor(max_workers=len(roles)) as pool:
                for f in [pool.submit(r) for r in roles]:
                    f.result()
        finally:
            self.p.close()

    # -- the verdicts ----------------------------------------------------------------------
    def _errors(self, *roles: str) -> list[Hit]:
        return [h for r in roles for h in self.hits[r] if h.status == 0]

    def _burst_verdict(self, role: str, clause: str, exact: bool) -> tuple[str, str, dict]:
        hits = self.hits[role]
        if not hits:
            why = self.notes.get(f"{role}_no_reset", "no burst was sent")
            return "inconclusive", why, {"fill": self.notes.get(f"{role}_fill")}
        span = max(h.t1 for h in hits) - min(h.t0 for h in hits)
        admitted = sum(1 for h in hits if not self.p.is_limited(h) and h.status)
        refused = sum(1 for h in hits if self.p.is_limited(h))
        ev = {
            "client": self.client[role],
            "sent": len(hits),
            "admitted": admitted,
            "refused": refused,
            "span_s": round(span, 3),
            "instances": sorted({h.instance for h in hits}),
            "statuses": dict(Counter(h.status for h in hits)),
        }
        if self.notes.get(f"{role}_slow_attempts_s"):
            ev["slow_attempts_s"] = self.notes[f"{role}_slow_attempts_s"]
        if f"{role}_fill" in self.notes:
            ev["fill_last"] = self.notes[f"{role}_fill"]
        if lost := self._errors(role):
            return "inconclusive", f"{len(lost)} burst requests got no answer", ev
        if failing := [h for h in hits if h.status >= 500]:
            # the target's own failure (its limiter's store unreachable, say): whether those
            # requests were counted cannot be told, so the burst proves nothing either way
            return "inconclusive", f"{len(failing)} burst requests answered 5xx", ev
        if span > self.window / 10:
            return "inconclusive", f"the burst took {span:.3f}s, over a tenth of the window", ev
        if admitted == 0 and self.algorithm == "fixed_window":
            # sent after waiting the announced Retry-After, refused throughout: the reset came
            # later than announced, which R3 judges; this burst proves nothing about the count
            return "inconclusive", "the burst after the announced reset was refused whole (R3)", ev
        ok = admitted == self.limit if exact else 0 < admitted <= self.limit
        want = f"exactly {self.limit}" if exact else f"1 to {self.limit}"
        shown = ", ".join(f"{n} x {s}" for s, n in sorted(ev["statuses"].items()))
        msg = (
            f"burst of {len(hits)} in {span:.3f}s ({shown}): {admitted} admitted "
            f"(every non-429 answer{', 401s and 400s included' if role == 'burst' else ''}; "
            f"want {want})"
        )
        return ("passed" if ok else "failed"), msg, ev

    def verdict(self, clause: str) -> tuple[str, str, dict]:
        return getattr(self, f"_{clause.lower()}")()

    def _r1(self) -> tuple[str, str, dict]:
        status, msg, ev = self._burst_verdict("burst", "R1", exact=True)
        flood = self.hits["flood"]
        admitted = sum(1 for h in flood if not self.p.is_limited(h) and h.status)
        span = self.notes.get("flood", {}).get("span_s") or 0.0
        # Whatever the window alignment, a flood spanning `span` seconds meets at most
        # ceil(span / window) + 1 windows (a fixed window lets up to 2 x limit through across
        # a boundary; the average over the flood is what R1 bounds).
        touched = math.ceil(span / self.window) + 1
        bound = self.limit * touched
        ev_flood = {
            "client": self.client["flood"],
            "sent": len(flood),
            "admitted": admitted,
            "windows_touched": touched,
            "bound": bound,
            "per_window": _windows(flood, self.window, self.p),
            "first_refusal": next((h.to_json() for h in flood if self.p.is_limited(h)), None),
        }
        evidence = {"algorithm": self.algorithm, "limit": self.limit, "window_s": self.window}
        evidence |= {"burst": ev, "flood": ev_flood}
        if status != "passed":
            return status, msg, evidence
        if not any(self.p.is_limited(h) for h in flood):
            return "failed", f"a flood of {len(flood)} in {span:.1f}s was never refused", evidence
        if admitted > bound:
            return (
                "failed",
                f"the flood got {admitted} admitted over {touched} windows, over {bound}",
                evidence,
            )
        return "passed", f"{msg}; flood: {admitted} admitted over {touched} windows", evidence

    def _r2(self) -> tuple[str, str, dict]:
        hits = self.hits["quiet"]
        refused = [h for h in hits if self.p.is_limited(h)]
        ev = {
            "client": self.client["quiet"],
            "sent": len(hits),
            "per_window": _windows(hits, self.window, self.p),
            "refusals": [h.to_json() for h in refused[:5]],
            **self.notes.get("quiet", {}),
        }
        if lost := self._errors("quiet"):
            return "inconclusive", f"{len(lost)} requests got no answer", ev
        if refused:
            return "failed", f"a client under the limit was refused {len(refused)} times", ev
        return (
            "passed",
            f"{len(hits)} requests at {self.s.quiet_share:.0%} of the limit, none refused",
            ev,
        )

    def _r3(self) -> tuple[str, str, dict]:
        refused = [h for r in ("flood", "burst", "r5", "r4", "quiet") for h in self.hits[r]]
        refused = [h for h in refused if self.p.is_limited(h)]
        values = Counter(h.retry_after for h in refused)
        ev: dict[str, Any] = {"refusals": len(refused), "retry_after_values": dict(values)}
        if not refused:
            return "inconclusive", "no request was refused, so no Retry-After to check", ev
        top = math.ceil(self.window)
        bad = [h for h in refused if not (1 <= (_retry_after_s(h.retry_after) or 0) <= top)]
        if bad:
            ev["bad"] = [h.to_json() for h in bad[:5]]
            return (
                "failed",
                f"{len(bad)} of {len(refused)} refusals lack a Retry-After in 1..{top}",
                ev,
            )
        codes = Counter(h.code for h in refused)
        ev["codes"] = dict(codes)
        if self.t.expect.get("error_codes", True) and set(codes) != {"RATE_LIMITED"}:
            return "failed", f"refusals carry codes {dict(codes)}, want RATE_LIMITED", ev
        early = [
            r
            for r in ("burst", "r5")
            if self.algorithm == "fixed_window"
            and self.hits[r]
            and all(self.p.is_limited(h) for h in self.hits[r])
        ]
        if early:
            ev["refused_after_reset"] = {r: len(self.hits[r]) for r in early}
            return (
                "failed",
                f"a burst sent after waiting the announced Retry-After was refused whole "
                f"({', '.join(early)}): the client was not served again",
                ev,
            )
        honour = self.hits["honour"]
        ev["honour"] = [h.to_json() for h in honour]
        ev["honour_wait_s"] = self.notes.get("honour_wait_s")
        ev["refilled_before_honour"] = len(self.hits["honour_fill"])
        if not honour:
            return "inconclusive", "the flood's Retry-After could not be honoured", ev
        if honour[0].status == 0:
            return "inconclusive", "the request after Retry-After got no answer", ev
        if self.p.is_limited(honour[0]):
            wait = self.notes.get("honour_wait_s")
            return "failed", f"still refused after waiting the announced Retry-After ({wait}s)", ev
        return (
            "passed",
            f"{len(refused)} refusals, Retry-After {sorted(values)}; served again after waiting",
            ev,
        )

    def _r4(self) -> tuple[str, str, dict]:
        if self.single:
            why = "the profile does not trust X-Forwarded-For: this machine is one client"
            return "skipped", why, {}
        hits = self.hits["r4"]
        refused = [h for h in hits if self.p.is_limited(h)]
        ev = {"client": self.client["r4"], "sent": len(hits), "refused": len(refused)}
        ev["refusals"] = [h.to_json() for h in refused[:5]]
        if not hits:
            return (
                "inconclusive",
                "the flooding client was never refused, so R4 could not be probed",
                ev,
            )
        if lost := self._errors("r4"):
            return "inconclusive", f"{len(lost)} requests got no answer", ev
        if refused:
            return (
                "failed",
                f"while another client was limited, a fresh one was refused "
                f"{len(refused)} of {len(hits)} times",
                ev,
            )
        return (
            "passed",
            f"while another client was limited, a fresh one got {len(hits)} of {len(hits)} through",
            ev,
        )

    def _r5(self) -> tuple[str, str, dict]:
        if len(self.instances) < 2:
            return "skipped", "the profile lists one instance; R5 needs two or more", {}
        status, msg, ev = self._burst_verdict("r5", "R5", exact=False)
        return status, msg + f" over {len(self.instances)} instances", ev

    def _r6(self) -> tuple[str, str, dict]:
        hits = self.hits["r6"] + self.hits["flood_health"]
        bad = [h for h in hits if h.status != 200]
        ev = {
            "sent": len(hits),
            "statuses": dict(Counter(h.status for h in hits)),
            "while_limited": [h.to_json() for h in self.hits["flood_health"]],
            "bad": [h.to_json() for h in bad[:5]],
        }
        if any(self.p.is_limited(h) for h in hits):
            n = sum(1 for h in hits if self.p.is_limited(h))
            return "failed", f"the health endpoint was rate limited {n} of {len(hits)} times", ev
        if bad:
            return "inconclusive", f"{len(bad)} health requests did not answer 200", ev
        return "passed", f"{len(hits)} health requests, none limited (3 while the client was)", ev


def verify_rate_limit(scenario: RateLimitScenario, target: Target):  # -> ScenarioResult
    """Run the protocol against the target and judge each declared clause."""
    from omnidrill.load.runner import ScenarioResult, Verdict

    started = time.time()
    result = ScenarioResult(
        name=scenario.name,
        type="rate_limit",
        target=target.name,
        started_at=started,
        ended_at=started,
    )
    check = Check(scenario, target)
    if check.single:
        result.warnings.append(
            f"profile {target.name!r} does not trust X-Forwarded-For: this machine is one client, "
            "so the roles took turns (R4 cannot be checked) and the check takes longer"
        )
    check.run()
    for clause in scenario.contract:
        status, summary, evidence = check.verdict(clause)
        result.verdicts.append(Verdict(clause, status, summary, evidence))
    inconclusive = [v for v in result.verdicts if v.status == "inconclusive"]
    if inconclusive:
        result.inconclusive = "; ".join(f"{v.clause}: {v.summary}" for v in inconclusive)
    result.ended_at = time.time()
    return result
