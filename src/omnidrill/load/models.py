"""Load and rate-limit scenarios (`type: load`, `type: rate_limit`); `omnidrill.scenarios`
tells the kinds of `scenarios/*.yaml` apart by their `type` field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from omnidrill.load.generators import unknown_placeholders
from omnidrill.load.thresholds import ThresholdError, parse_threshold
from omnidrill.spec.base import SpecModel
from omnidrill.spec.suggest import did_you_mean
from omnidrill.spec.units import parse_duration

# Contract defaults of the answers a task may name instead of a number (CONTRACT.md).
NAMED_STATUSES: dict[str, int] = {
    "ok": 200,
    "kill_switch": 503,
    "operator_takeover": 403,
    "safe_mode": 503,
    "rate_limited": 429,
    "rpc_unavailable": 503,
    "approval_pending": 202,
    "approval_rejected": 403,
    "approval_expired": 410,
    "approval_mismatch": 409,
    "idempotency_mismatch": 422,
    "rate_limit_unavailable": 503,
    "unauthorized": 401,
    "bad_request": 400,
}
FUNCTIONS = ("healthz", "omnilink-agent", "wallet-balance", "execute-trade")
RATE_CLAUSES = ("R1", "R2", "R3", "R4", "R5", "R6")


class Pacing(SpecModel):
    """How fast users send: exactly one of the three."""

    per_user_rps: float | None = Field(None, gt=0, description="requests per second per user")
    arrival_rate: float | None = Field(
        None, gt=0, description="requests per second in total, spread over the users"
    )
    think_time_s: float | None = Field(None, ge=0, description="pause after each request")

    @model_validator(mode="after")
    def _exactly_one(self) -> Pacing:
        given = [
            k
            for k in ("per_user_rps", "arrival_rate", "think_time_s")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of per_user_rps, arrival_rate, think_time_s, "
                f"found {', '.join(given) or 'none'}"
            )
        return self


class Task(SpecModel):
    """One weighted kind of request."""

    name: str | None = Field(
        None, description="label in stats and thresholds; default the function or path"
    )
    function: str | None = Field(
        None, description="a function under /functions/v1/, e.g. wallet-balance"
    )
    path: str | None = Field(
        None, description="a raw path such as /rest/v1/emergency_controls?select=*"
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] | None = None
    weight: int = Field(1, ge=1)
    body: Any = Field(
        None, description="JSON body; strings may hold ${raw_tx}, ${address}, ${uuid}, ..."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    key: Literal["anon", "service_role", "none"] = "anon"
    expect: list[int | str] = Field(default_factory=lambda: [200], min_length=1)

    @model_validator(mode="after")
    def _target(self) -> Task:
        if (self.function is None) == (self.path is None):
            raise ValueError("expected exactly one of 'function' or 'path'")
        if self.function is not None and self.function not in FUNCTIONS:
            hint = did_you_mean(self.function, FUNCTIONS)
            raise ValueError(
                f"unknown function {self.function!r}"
                + (hint or f": expected one of {', '.join(FUNCTIONS)}")
            )
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', found {self.path!r}")
        bad = unknown_placeholders(self.body) + unknown_placeholders(self.headers)
        if bad:
            from omnidrill.load.generators import GENERATORS

            raise ValueError(
                f"unknown generator(s) {', '.join('${' + b + '}' for b in bad)}: "
                f"expected one of {', '.join('${' + g + '}' for g in GENERATORS)}"
            )
        for s in self.expect:
            if isinstance(s, int) and not 100 <= s <= 599:
                raise ValueError(f"expected status must be 100-599, found {s}")
            if isinstance(s, str) and s.removesuffix("_status") not in NAMED_STATUSES:
                names = ", ".join(NAMED_STATUSES)
                raise ValueError(f"unknown status name {s!r}: expected a number or one of {names}")
        return self

    @property
    def label(self) -> str:
        return self.name or self.function or self.path or "?"

    @property
    def http_method(self) -> str:
        if self.method:
            return self.method
        if self.function == "healthz" or (self.path and self.body is None):
            return "GET"
        return "POST"


def _check_threshold(expr: str) -> str:
    try:
        parse_threshold(expr)
    except ThresholdError as exc:
        raise ValueError(str(exc)) from None
    return expr


# Checked item by item so that an error points at the very line of the bad threshold.
ThresholdExpr = Annotated[str, AfterValidator(_check_threshold)]


def repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    return sorted({x for x in names if names.count(x) > 1})


class LoadShape(SpecModel):
    """What load is sent: users, pacing, identities and the weighted tasks (a load scenario's
    and a canary's)."""

    users: int = Field(ge=1, description="concurrent simulated users")
    spawn_rate: float | None = Field(
        None, gt=0, description="users started per second (default: all in 1 s)"
    )
    duration: float = Field(description="'20s', '5m', '1h30m' or seconds")
    pacing: Pacing | None = Field(
        None, description="absent: every user sends as fast as answers come"
    )
    clients: int = Field(
        1, ge=1, le=131072, description="distinct client identities (X-Forwarded-For)"
    )
    timeout_s: float = Field(10.0, gt=0, description="per-request timeout")
    tasks: list[Task] = Field(min_length=1)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        seconds = parse_duration(v)
        if seconds <= 0:
            raise ValueError(f"expected a positive duration, found {v!r}")
        return seconds

    @model_validator(mode="after")
    def _names(self) -> LoadShape:
        dupes = repeated([t.label for t in self.tasks])
        if dupes:
            raise ValueError(
                f"task names must be unique; give 'name:' to tell apart {', '.join(dupes)}"
            )
        return self


class LoadScenario(LoadShape):
    """Declared load with thresholds that judge it."""

    type: Literal["load"]
    name: str
    description: str = ""
    thresholds: dict[str, list[ThresholdExpr]] = Field(
        default_factory=dict,
        description="{all: [...], <task name>: [...]}, e.g. all: ['p95 < 300ms']",
    )

    @field_validator("thresholds")
    @classmethod
    def _scopes(cls, v: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        tasks = info.data.get("tasks")
        if tasks is None:  # the tasks are wrong themselves; that error is enough
            return v
        labels = [t.label for t in tasks]
        unknown = [s for s in v if s != "all" and s not in labels]
        if unknown:
            raise ValueError(
                f"thresholds for unknown task(s) {', '.join(unknown)}: "
                f"expected 'all' or one of {', '.join(labels)}"
            )
        return v


class RateLimitScenario(SpecModel):
    """A verification of the rate-limit clauses R1-R6 (CONTRACT 4) against a profile."""

    type: Literal["rate_limit"]
    name: str
    description: str = ""
    contract: list[Literal["R1", "R2", "R3", "R4", "R5", "R6"]] = Field(min_length=1)
    function: str = Field("wallet-balance", description="the limited function that floods use")
    body: Any = Field(default_factory=lambda: {"address": "${address}"})
    flood_windows: int = Field(3, ge=2, le=20, description="how many windows the flood lasts")
    flood_factor: float = Field(
        3.0, gt=1, le=20, description="flood rate as a multiple of the limit"
    )
    quiet_share: float = Field(
        0.8, gt=0, le=0.8, description="the quiet client's share of the limit"
    )
    burst_factor: float = Field(
        1.5, gt=1, le=5, description="burst size as a multiple of the limit"
    )
    limit: int | None = Field(None, ge=1, description="override the profile's limits.rate_limit")
    window_s: float | None = Field(None, gt=0, description="override limits.rate_window_s")

    @model_validator(mode="after")
    def _check(self) -> RateLimitScenario:
        if len(set(self.contract)) != len(self.contract):
            raise ValueError("contract clauses must not repeat")
        if self.function not in FUNCTIONS or self.function == "healthz":
            allowed = ", ".join(f for f in FUNCTIONS if f != "healthz")
            raise ValueError(
                f"function must be a rate-limited one ({allowed}), found {self.function!r}"
            )
        bad = unknown_placeholders(self.body)
        if bad:
            raise ValueError(f"unknown generator(s) {', '.join(bad)} in body")
        return self
