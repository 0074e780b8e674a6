"""Turning a step's request spec into requests, sent in rounds, and remembering what was sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from omnidrill.chaos.cleanup import after_trades, before_trades
from omnidrill.chaos.client import Answer
from omnidrill.chaos.models import READ_ONLY_FUNCTIONS, RequestSpec
from omnidrill.chaos.runtime import Runtime

ALL_FUNCTIONS = ("omnilink-agent", "wallet-balance", "execute-trade")


@dataclass
class StepTraffic:
    """Per step execution: the shared transaction and key, and every answer's transaction."""

    shared_tx: str | None = None
    idempotency_key: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # raw_tx, tx_hash, status

    def note(self, answers: list[Answer]) -> None:
        for a in answers:
            if a.raw_tx:
                self.sent.append(
                    {
                        "raw_tx": a.raw_tx,
                        "tx_hash": a.tx_hash,
                        "status": a.status,
                        "instance": a.instance,
                    }
                )


def functions_of(spec: RequestSpec) -> list[str]:
    f = spec.function
    if f is None:
        return []
    if f == "each":
        return list(ALL_FUNCTIONS)
    if f == "read-only":
        return list(READ_ONLY_FUNCTIONS)
    if isinstance(f, list):
        return list(f)
    return [f]


def instances_of(rt: Runtime, spec: RequestSpec) -> list[str]:
    if spec.base == "controls":
        return [(rt.profile.controls.url or rt.profile.base_url).rstrip("/")]
    return list(rt.profile.instances) if spec.instances == "all" else [rt.profile.base_url]


def start_traffic(rt: Runtime, spec: RequestSpec) -> StepTraffic:
    st = StepTraffic()
    if spec.tx == "shared":
        st.shared_tx = rt.client.txs.fresh()
    if spec.idempotency_key == "fresh":
        st.idempotency_key = f"omnidrill-{rt.run_id}-{uuid.uuid4().hex[:12]}"
    elif spec.idempotency_key is not None:
        st.idempotency_key = str(rt.resolve(spec.idempotency_key))
    return st


def send_round(rt: Runtime, spec: RequestSpec, st: StepTraffic, source: str) -> list[Answer]:
    """Every request of one round (functions x instances x count), concurrently."""
    # One batch: the round's fresh transactions get consecutive nonces (txsource's notes).
    with rt.client.txs.batch():
        return _send_round(rt, spec, st, source)


def _send_round(rt: Runtime, spec: RequestSpec, st: StepTraffic, source: str) -> list[Answer]:
    body = rt.resolve(spec.body) if spec.body is not None else None
    extra_headers = {k: str(v) for k, v in rt.resolve(spec.headers).items()}
    headers = {**rt.client.key_headers(spec.key, spec.key_in), **extra_headers}
    if st.idempotency_key:
        headers["Idempotency-Key"] = st.idempotency_key
    jobs: list[dict[str, Any]] = []
    for instance in instances_of(rt, spec):
        if spec.path is not None:
            for _ in range(spec.count):
                jobs.append(
                    {
                        "instance": instance,
                        "method": spec.method or "GET",
                        "path": spec.path,
                        "function": None,
                        "body": body,
                    }
                )
            continue
        for fn in functions_of(spec):
            for _ in range(spec.count):
                if fn == "healthz":
                    jobs.append(
                        {
                            "instance": instance,
                            "method": spec.method or "GET",
                            "path": "/functions/v1/healthz",
                            "function": fn,
                            "body": None,
                        }
                    )
                    continue
                jobs.append(
                    {
                        "instance": instance,
                        "method": spec.method or "POST",
                        "path": f"/functions/v1/{fn}",
                        "function": fn,
                        "body": rt.client.function_body(fn, body, st.shared_tx),
                    }
                )
    check_trade_amounts(rt, jobs)
    before_trades(rt, jobs)
    timeout = spec.timeout
    sequential = spec.count > 1 and not spec.concurrent
    if sequential:
        answers = []
        for job in jobs:
            rt.check_abort()
            answers.append(rt.client.send(headers=headers, timeout=timeout, source=source, **job))
    else:
        futures = [
            rt.pool.submit(rt.client.send, headers=headers, timeout=timeout, source=source, **job)
            for job in jobs
        ]
        answers = rt.gather(futures)
    st.note(answers)
    after_trades(rt, answers)
    return answers


def check_trade_amounts(rt: Runtime, jobs: list[dict[str, Any]]) -> None:
    """Drills never trade more than the profile's trade.max_amount_usd."""
    cap = rt.profile.trade.max_amount_usd
    for job in jobs:
        body = job.get("body") or {}
        if job.get("function") == "execute-trade" and isinstance(body, dict):
            amount = body.get("amount_usd")
            if isinstance(amount, int | float) and amount > cap:
                from omnidrill.chaos.runtime import StepNotRun

                raise StepNotRun(
                    f"amount_usd {amount} exceeds the profile's trade.max_amount_usd ({cap})"
                )


def result_of(answers: list[Answer], st: StepTraffic) -> dict[str, Any]:
    """What `${id.…}` sees: the first answer's status, body, headers and transaction."""
    first = answers[0] if answers else None
    return {
        "status": first.status if first else None,
        "body": first.body if first else None,
        "headers": first.headers if first else {},
        "raw_tx": first.raw_tx if first else st.shared_tx,
        "tx_hash": first.tx_hash if first else None,
        "request": first.request_body if first else None,
        "idempotency_key": st.idempotency_key,
        "sent": st.sent,
        "answers": [a.summary() for a in answers],
    }
