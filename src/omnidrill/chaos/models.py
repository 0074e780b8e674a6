"""The drill format (`chaos/*.yaml`): a runbook of steady state, method, rollbacks and guardrails.

Steps are told apart by their `action:` or `check:` key, so a typo in one step gives one error
that names the expected kinds, not a wall of union mismatches.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from omnidrill.load.models import ThresholdExpr
from omnidrill.spec.base import SpecModel
from omnidrill.spec.suggest import did_you_mean
from omnidrill.spec.units import parse_duration

# --- vocabulary of the contract ---------------------------------------------------------------

FUNCTION_OPERATIONS: dict[str, str] = {
    "omnilink-agent": "omnilink_agent",
    "wallet-balance": "wallet_balance",
    "execute-trade": "execute_trade",
}
READ_ONLY_FUNCTIONS = ("omnilink-agent", "wallet-balance")
FunctionName = Literal["omnilink-agent", "wallet-balance", "execute-trade", "healthz"]
FunctionSelector = Literal["each", "read-only"]

# Refusal code -> the profile `expect` key holding its status (CONTRACT.md, top).
REFUSAL_STATUS_KEYS: dict[str, str] = {
    "KILL_SWITCH": "kill_switch_status",
    "OPERATOR_TAKEOVER": "operator_takeover_status",
    "SAFE_MODE": "safe_mode_status",
    "RATE_LIMITED": "rate_limited_status",
    "RPC_UNAVAILABLE": "rpc_unavailable_status",
    "APPROVAL_PENDING": "approval_pending_status",
    "APPROVAL_REJECTED": "approval_rejected_status",
    "APPROVAL_EXPIRED": "approval_expired_status",
    "APPROVAL_MISMATCH": "approval_mismatch_status",
    "IDEMPOTENCY_MISMATCH": "idempotency_mismatch_status",
    "RATE_LIMIT_UNAVAILABLE": "rate_limit_unavailable_status",
    "UNAUTHORIZED": "unauthorized_status",
    "BAD_REQUEST": "bad_request_status",
}
# Statuses whose code the contract leaves to the target: a validation error may carry any code
# (S2: BAD_REQUEST, VALIDATION_ERROR, INVALID_JSON...), S1 fixes only the 401, and a pending
# approval is an answer, not an error. These are judged by status alone.
OPEN_CODES = frozenset({"BAD_REQUEST", "UNAUTHORIZED", "APPROVAL_PENDING"})
# Messages the contract fixes, used where error bodies carry no code (`expect.error_codes: false`).
REFUSAL_MESSAGES: dict[str, str] = {
    "KILL_SWITCH": "OMNIHUB_KILL_SWITCH is enabled - all operations are disabled",
    "OPERATOR_TAKEOVER": "OPERATOR_TAKEOVER is enabled - operation requires manual approval",
}
RefusalCode = Literal[
    "KILL_SWITCH",
    "OPERATOR_TAKEOVER",
    "SAFE_MODE",
    "RATE_LIMITED",
    "RPC_UNAVAILABLE",
    "APPROVAL_PENDING",
    "APPROVAL_REJECTED",
    "APPROVAL_EXPIRED",
    "APPROVAL_MISMATCH",
    "IDEMPOTENCY_MISMATCH",
    "RATE_LIMIT_UNAVAILABLE",
    "UNAUTHORIZED",
    "BAD_REQUEST",
]
CONTROL_COLUMNS = (
    "omnihub_kill_switch",
    "execution_safe_mode",
    "operator_takeover",
    "allowed_operations",
)
CLAUSE_RE = re.compile(r"^(C[1-7]|S[12]|A[1-4]|R[1-7]|I[12]|P[1-4])$")
ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# --- durations -------------------------------------------------------------------------------

Duration = Annotated[float, BeforeValidator(parse_duration)]


def _clause(value: str) -> str:
    if not CLAUSE_RE.match(value):
        raise ValueError(f"expected a contract clause like C2, A1, P3, S1, found {value!r}")
    return value


Clause = Annotated[str, BeforeValidator(_clause)]


# --- requests --------------------------------------------------------------------------------


class RequestSpec(SpecModel):
    """What to send: a function (one, `each`, `read-only`, or a list) or a raw path."""

    function: FunctionName | FunctionSelector | list[FunctionName] | None = Field(
        default=None, description="a function, `each` (all three), `read-only`, or a list"
    )
    path: str | None = Field(default=None, description="raw path, e.g. /rest/v1/audit_logs")
    method: Literal["GET", "POST", "PATCH", "PUT", "DELETE"] | None = Field(
        default=None, description="default POST for functions, GET for a raw path"
    )
    body: dict[str, Any] | None = Field(
        default=None, description="merged over the function's default body"
    )
    key: Literal["anon", "service_role", "none", "wrong"] = Field(
        default="anon", description="which key to send (`wrong`: a made-up one)"
    )
    key_in: Literal["both", "apikey", "authorization"] = Field(
        default="both", description="which header carries `key` (the other gets the anon key)"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    base: Literal["functions", "controls"] = Field(
        default="functions",
        description="`controls`: the path is relative to the profile's controls.url (.../rest/v1)",
    )
    instances: Literal["base", "all"] = Field(
        default="base", description="`all`: send to every instance of the profile"
    )
    count: int = Field(default=1, ge=1, le=200, description="requests per function and instance")
    concurrent: bool = Field(default=False, description="send the `count` requests at once")
    tx: Literal["fresh", "shared"] = Field(
        default="fresh",
        description="trades: a fresh transaction per request, or one shared by this step",
    )
    idempotency_key: str | None = Field(
        default=None, description="`fresh` for a new key per step, or a value (`${id.key}`)"
    )
    timeout: Duration | None = Field(
        default=None, description="per request; default 2 x rpc_timeout_ms + 5 s"
    )

    @model_validator(mode="after")
    def _one_target(self) -> RequestSpec:
        if (self.function is None) == (self.path is None):
            raise ValueError("give exactly one of `function:` or `path:`")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', found {self.path!r}")
        return self


class Expect(SpecModel):
    """What every answer must look like."""

    status: int | list[int] | None = Field(default=None, description="a status or a list")
    refusal: RefusalCode | None = Field(
        default=None, description="a contract refusal: its status comes from the profile"
    )
    body: dict[str, Any] = Field(
        default_factory=dict, description="dotted field -> exact value ('${id.x}' allowed)"
    )
    body_types: dict[str, Literal["integer", "string", "number", "boolean", "present"]] = Field(
        default_factory=dict, description="dotted field -> JSON type"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="header -> exact value")
    provider: Literal["primary", "fallback"] | None = Field(
        default=None, description="X-RPC-Provider of every answer"
    )
    latency_below: Duration | None = Field(default=None, description="every answer faster")
    same_answers: bool = Field(default=False, description="every answer has one status and body")
    no_leaks: bool = Field(default=False, description="no key, DSN or stack trace in answers")
    error_shape: bool = Field(default=False, description='errors are {"error", "code"} JSON')
    trace_id: bool = Field(default=False, description="X-Trace-ID present and unique")

    @model_validator(mode="after")
    def _status_once(self) -> Expect:
        if self.status is not None and self.refusal is not None:
            raise ValueError("give `status` or `refusal`, not both")
        return self


# --- steps: common fields ----------------------------------------------------------------------


class _Step(SpecModel):
    name: str | None = Field(default=None, description="what the step does, in runbook words")
    id: str | None = Field(default=None, description="name its result for later steps: ${id.x}")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not ID_RE.match(v):
            raise ValueError(f"expected an identifier (letters, digits, _), found {v!r}")
        return v


class _Check(_Step):
    clause: Clause | None = Field(default=None, description="the contract clause this proves")


class _Polled(SpecModel):
    within: Duration | None = Field(
        default=None, description="poll until it holds, for at most this long (+ one poll)"
    )
    poll: Duration = Field(default=0.1, description="poll interval; the resolution reported")
    hold: Duration | None = Field(default=None, description="then keep it holding this long")
    measure: Literal["effect", "recovery"] | None = Field(
        default=None, description="report the wait as the drill's time to effect or recover"
    )

    @field_validator("poll")
    @classmethod
    def _poll(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("poll must be > 0")
        return v


# --- checks ------------------------------------------------------------------------------------


class HttpCheck(_Check, RequestSpec, _Polled):
    """Send requests and judge every answer."""

    check: Literal["http"]
    expect: Expect


class TxAbsentCheck(_Check):
    """No transaction of a step's requests reached either provider (asked on rpc_direct)."""

    check: Literal["rpc.tx_absent"]
    of: str = Field(description="id of the step whose transactions must not exist")
    answers: Literal["refused", "all"] = Field(
        default="refused", description="the requests whose answer was a refusal, or all"
    )


class TxPresentCheck(_Check):
    """A step's transaction was broadcast, and exactly `sends` times where countable."""

    check: Literal["rpc.tx_present"]
    of: str
    sends: int | None = Field(
        default=None, ge=0, description="exact number of sends (/__calls); 0 only with `since`"
    )
    since: str | None = Field(
        default=None,
        description="id of an earlier step: count only the sends the providers recorded once "
        "it began (a send before it is an earlier step's to judge)",
    )

    @model_validator(mode="after")
    def _zero_needs_since(self) -> TxPresentCheck:
        if self.sends == 0 and self.since is None:
            raise ValueError("sends: 0 needs `since` (a present transaction was sent)")
        return self


class ServedCheck(_Check):
    """The provider a step's read answers named did answer them: its own record (`/__calls`)
    has at least that many calls of each read method since the last fault began."""

    check: Literal["rpc.served"]
    of: str = Field(description="id of the http step whose answers are judged")
    provider: Literal["primary", "fallback"] = Field(
        description="the provider the answers must have come from"
    )


class AuditChangedCheck(_Check):
    """One audit_logs row recorded a controls change made by a step (C6)."""

    check: Literal["audit.changed"]
    of: str = Field(description="id of the controls.set step")
    count: int = Field(default=1, ge=1)


class ApprovalStatusCheck(_Check, _Polled):
    """The approval row reads a status (and fields)."""

    check: Literal["approval.status"]
    approval: str = Field(description="the approval id, e.g. ${ask.body.approval_id}")
    status: Literal["pending", "approved", "rejected", "expired"]
    fields: dict[str, Any] = Field(default_factory=dict)


class NoApprovalCheck(_Check):
    """No approval_queue row exists for a user (a refused request created none, C7)."""

    check: Literal["approval.none"]
    user_id: str = Field(description="the user_id the step's requests carried")


class ControlsUnchangedCheck(_Check):
    """The controls row equals what it was just before a step."""

    check: Literal["controls.unchanged"]
    since: str = Field(description="id of the step before which the row was read")


class LoadCheck(_Check):
    """Thresholds on the drill's background load, for one phase or the whole drill."""

    check: Literal["load"]
    # the load scenarios' own threshold grammar, so a typo is a load-time error here too
    thresholds: list[ThresholdExpr] = Field(min_length=1, description="e.g. 'error_rate < 1%'")
    phase: Literal["steady", "fault", "recovery"] | None = Field(
        default=None, description="the background load's phase; absent: the whole drill"
    )


# --- actions -----------------------------------------------------------------------------------


class ControlsSet(_Step):
    """Change emergency controls as an operator would; undo restores the previous values."""

    action: Literal["controls.set"]
    set: dict[str, bool | list[str]] = Field(description="columns and their new values")

    @field_validator("set")
    @classmethod
    def _columns(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("give at least one column")
        for col, val in v.items():
            if col not in CONTROL_COLUMNS:
                hint = did_you_mean(col, CONTROL_COLUMNS)
                raise ValueError(
                    f"unknown column {col!r}" + (hint or f"; expected one of {CONTROL_COLUMNS}")
                )
            want_list = col == "allowed_operations"
            if want_list != isinstance(val, list):
                kind = "a list of operation names" if want_list else "true or false"
                raise ValueError(f"{col} expects {kind}, found {val!r}")
        return v


class FaultCut(_Step):
    """Disable a proxy: connections to it are refused."""

    action: Literal["fault.cut"]
    proxy: str


class FaultRestore(_Step):
    """Re-enable a proxy and remove this run's toxics from it."""

    action: Literal["fault.restore"]
    proxy: str


TCP_TOXICS = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer")
# omnidrill's fault proxy only (faults/README.md); a real Toxiproxy rejects them: the drill skips
HTTP_TOXICS = ("http_error", "http_replace")
HTTP_TOXIC_ATTRIBUTES: dict[str, Any] = {
    "status": int,
    "headers": dict,
    "body": str,
    "rpc_error_code": int,
    "rpc_error_message": str,
    "rpc_error_data": object,
    "methods": list,
}


class FaultToxic(_Step):
    """Add a toxic to a proxy: TCP (latency, timeout, reset_peer, ...) or HTTP (http_error,
    http_replace: a status, headers, a body or a JSON-RPC error, for some methods or all)."""

    action: Literal["fault.toxic"]
    proxy: str
    type: Literal[
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "http_error",
        "http_replace",
    ] = "latency"
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = Field(default=1.0, ge=0, le=1)
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description="TCP toxics: integers (latency, ...); HTTP toxics: status, headers, body, "
        "rpc_error_code, rpc_error_message, rpc_error_data, methods",
    )

    @model_validator(mode="after")
    def _attributes(self) -> FaultToxic:
        if self.type not in HTTP_TOXICS:
            for key, value in self.attributes.items():
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(
                        f"attributes.{key}: a {self.type} toxic takes integers, found {value!r}"
                    )
            return self
        for key, value in self.attributes.items():
            want = HTTP_TOXIC_ATTRIBUTES.get(key)
            if want is None:
                raise ValueError(
                    f"attributes.{key}: not an attribute of {self.type}; expected one of "
                    f"{', '.join(HTTP_TOXIC_ATTRIBUTES)}"
                )
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise ValueError(f"attributes.{key}: expected {want.__name__}, found {value!r}")
        return self


class ApprovalSet(_Step):
    """An operator approves or rejects an approval row."""

    action: Literal["approval.set"]
    approval: str
    status: Literal["approved", "rejected"]


class HttpRequest(_Step, RequestSpec):
    """Send requests without judging them (their answers are named by `id`)."""

    action: Literal["http.request"]


class Wait(_Step):
    """Wait; halts and guardrails still interrupt it."""

    action: Literal["wait"]
    duration: Duration = Field(alias="for")


# --- unions keyed on action / check ------------------------------------------------------------

CHECKS: dict[str, type[_Check]] = {
    "http": HttpCheck,
    "rpc.tx_absent": TxAbsentCheck,
    "rpc.tx_present": TxPresentCheck,
    "rpc.served": ServedCheck,
    "audit.changed": AuditChangedCheck,
    "approval.status": ApprovalStatusCheck,
    "approval.none": NoApprovalCheck,
    "controls.unchanged": ControlsUnchangedCheck,
    "load": LoadCheck,
}
ACTIONS: dict[str, type[_Step]] = {
    "controls.set": ControlsSet,
    "fault.cut": FaultCut,
    "fault.restore": FaultRestore,
    "fault.toxic": FaultToxic,
    "approval.set": ApprovalSet,
    "http.request": HttpRequest,
    "wait": Wait,
}
STATE_CHANGING = {"controls.set", "fault.cut", "fault.restore", "fault.toxic", "approval.set"}


def _tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "action" in value and "check" in value:
            return None
        if "action" in value:
            return f"action:{value['action']}"
        if "check" in value:
            return f"check:{value['check']}"
        return None
    if hasattr(value, "action"):
        return f"action:{value.action}"
    if hasattr(value, "check"):
        return f"check:{value.check}"
    return None


_KINDS_TEXT = (
    "a step has exactly one of `action:` ("
    + ", ".join(ACTIONS)
    + ") or `check:` ("
    + ", ".join(CHECKS)
    + ")"
)

_TAGGED_CHECKS = (
    Annotated[HttpCheck, Tag("check:http")]
    | Annotated[TxAbsentCheck, Tag("check:rpc.tx_absent")]
    | Annotated[TxPresentCheck, Tag("check:rpc.tx_present")]
    | Annotated[ServedCheck, Tag("check:rpc.served")]
    | Annotated[AuditChangedCheck, Tag("check:audit.changed")]
    | Annotated[ApprovalStatusCheck, Tag("check:approval.status")]
    | Annotated[NoApprovalCheck, Tag("check:approval.none")]
    | Annotated[ControlsUnchangedCheck, Tag("check:controls.unchanged")]
    | Annotated[LoadCheck, Tag("check:load")]
)
_TAGGED_ACTIONS = (
    Annotated[ControlsSet, Tag("action:controls.set")]
    | Annotated[FaultCut, Tag("action:fault.cut")]
    | Annotated[FaultRestore, Tag("action:fault.restore")]
    | Annotated[FaultToxic, Tag("action:fault.toxic")]
    | Annotated[ApprovalSet, Tag("action:approval.set")]
    | Annotated[HttpRequest, Tag("action:http.request")]
    | Annotated[Wait, Tag("action:wait")]
)
_STEP_KIND = Discriminator(_tag, custom_error_type="step_kind", custom_error_message=_KINDS_TEXT)
Check = Annotated[_TAGGED_CHECKS, _STEP_KIND]
Action = Annotated[_TAGGED_ACTIONS, _STEP_KIND]
Step = Annotated[_TAGGED_CHECKS | _TAGGED_ACTIONS, _STEP_KIND]


# --- drill ---------------------------------------------------------------------------------------


class Background(SpecModel):
    """A scenario from scenarios/ run for the whole drill, its stats split per phase."""

    scenario: str = Field(description="path of a scenario file, e.g. scenarios/steady.yaml")


class Guardrail(SpecModel):
    """Abort the drill (exit 3, after rollbacks) when one of these holds."""

    elapsed_over: Duration | None = Field(default=None, description="the drill's wall time")
    background_error_rate_over: float | None = Field(
        default=None, gt=0, le=100, description="percent errors of the background load"
    )
    monitor_alerts: int | None = Field(default=None, description="a Datadog monitor id")

    @model_validator(mode="after")
    def _one(self) -> Guardrail:
        given = [k for k, v in self.__dict__.items() if v is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of elapsed_over, background_error_rate_over, monitor_alerts"
            )
        return self


class DrillFile(SpecModel):
    """One drill: read it top to bottom as the runbook it replaces."""

    title: str
    description: str
    tags: list[str] = Field(default_factory=list)
    contract: list[Clause] = Field(min_length=1, description="the clauses this drill checks")
    skip: str | None = Field(
        default=None, description="a reason not to run against this target (set by a template)"
    )
    requires: list[str] = Field(
        default_factory=list,
        description="capabilities beyond those the steps imply: rpc_direct, trade, proxy:NAME",
    )
    max_duration: Duration = Field(default=120, description="abort (exit 3) past this")
    recover_within: Duration = Field(
        default=10, description="the steady state must hold again within this after rollbacks"
    )
    steady_state: list[Check] = Field(min_length=1)
    method: list[Step] = Field(min_length=1)
    rollbacks: list[Action] = Field(
        default_factory=list, description="extra actions run before the automatic undos"
    )
    background: Background | None = None
    abort_if: list[Guardrail] = Field(default_factory=list)

    @field_validator("requires")
    @classmethod
    def _requires(cls, v: list[str]) -> list[str]:
        for req in v:
            ok = req in ("rpc_direct", "trade") or re.fullmatch(
                r"proxy:[A-Za-z0-9_.\-]+|instances>=\d+", req
            )
            if not ok:
                raise ValueError(
                    f"unknown requirement {req!r}; expected rpc_direct, trade, proxy:NAME or "
                    "instances>=N"
                )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DrillFile:
        seen: set[str] = set()
        for i, step in enumerate([*self.steady_state, *self.method, *self.rollbacks]):
            sid = getattr(step, "id", None)
            if sid:
                if sid in seen:
                    raise ValueError(f"step id {sid!r} is used twice")
                seen.add(sid)
            for ref in ("of", "since"):
                target = getattr(step, ref, None)
                if isinstance(target, str) and target not in seen:
                    raise ValueError(
                        f"step {i + 1} ({step_label(step)}): {ref}: {target!r} names no earlier "
                        "step id"
                    )
        covered = {getattr(s, "clause", None) for s in [*self.steady_state, *self.method]} - {None}
        stray = covered - set(self.contract)
        if stray:
            raise ValueError(f"checks name clauses not listed in `contract`: {sorted(stray)}")
        missing = [c for c in self.contract if c not in covered]
        if missing:
            raise ValueError(
                f"clauses listed in `contract` that no check proves (add `clause:`): {missing}"
            )
        return self


def step_kind(step: Any) -> str:
    return getattr(step, "action", None) or getattr(step, "check", "?")


def step_label(step: Any) -> str:
    kind = "action" if hasattr(step, "action") else "check"
    return f"{kind} {step_kind(step)}" + (f" {step.name!r}" if step.name else "")
