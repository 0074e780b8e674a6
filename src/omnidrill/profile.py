"""Target profiles (`targets/*.yaml`): where a system is and how the harness reaches it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from omnidrill import secrets
from omnidrill.errors import UsageError
from omnidrill.spec.base import SpecModel

CONTROLS_ROW_ID = "00000000-0000-0000-0000-000000000001"
PROXY_NAMES = ("rpc_primary", "rpc_fallback", "control_plane", "redis")


class SecretRef(SpecModel):
    """`{env: NAME}` everywhere; `{value: ...}` only in a dev profile."""

    env: str | None = Field(default=None, description="name of the environment variable")
    value: str | None = Field(default=None, description="the literal value (dev profiles only)")

    @model_validator(mode="after")
    def _one_of(self) -> SecretRef:
        if (self.env is None) == (self.value is None):
            raise ValueError("give exactly one of `env: NAME` or `value: ...`")
        return self


class Keys(SpecModel):
    anon: SecretRef
    service_role: SecretRef


class Clients(SpecModel):
    """How drills stay clear of the rate limit (CONTRACT section 4)."""

    forwarded_for: bool = Field(
        default=False, description="the target trusts X-Forwarded-For (one machine, many clients)"
    )
    bypass_headers: dict[str, SecretRef] = Field(
        default_factory=dict, description="headers that the edge lets skip the rate limit"
    )


class Controls(SpecModel):
    kind: Literal["postgrest", "postgres"] = "postgrest"
    url: str | None = Field(default=None, description="PostgREST base, e.g. .../rest/v1")
    dsn: SecretRef | None = Field(default=None, description="Postgres DSN (kind: postgres)")
    row_id: str = CONTROLS_ROW_ID

    @model_validator(mode="after")
    def _needs(self) -> Controls:
        if self.kind == "postgrest" and not self.url:
            raise ValueError(
                "controls.kind postgrest needs `url` (the PostgREST base, .../rest/v1)"
            )
        if self.kind == "postgres" and self.dsn is None:
            raise ValueError("controls.kind postgres needs `dsn: {env: NAME}`")
        return self


class ProxySpec(SpecModel):
    name: str
    listen: str
    upstream: str
    enabled: bool = True


class Faults(SpecModel):
    toxiproxy_url: str = "http://127.0.0.1:8474"
    populate: bool = Field(
        default=True,
        description="create or correct the proxies before a run; false: only verify them",
    )
    proxies: list[ProxySpec] = Field(default_factory=list)


class RpcDirect(SpecModel):
    """Uncut routes to the providers, for side-effect checks."""

    primary: str | SecretRef | None = None
    fallback: str | SecretRef | None = None


class Trade(SpecModel):
    """How drills make transactions; without allow_broadcast no drill may send one."""

    raw_tx: Literal["random"] | None = "random"
    signer_key: SecretRef | None = None
    max_amount_usd: float = Field(default=150000, gt=0)
    allow_broadcast: bool = False

    @model_validator(mode="after")
    def _one_way(self) -> Trade:
        if self.signer_key is not None:
            self.raw_tx = None
        if self.raw_tx is None and self.signer_key is None:
            raise ValueError("give `raw_tx: random` or `signer_key: {env: NAME}`")
        return self


class Limits(SpecModel):
    rate_limit: int = Field(default=100, gt=0)
    rate_window_s: float = Field(default=60, gt=0)
    rate_algorithm: Literal["fixed_window", "sliding_window"] = "fixed_window"
    approval_ttl_s: float = Field(default=3600, gt=0)
    rpc_timeout_ms: int = Field(default=2000, gt=0)
    rpc_recovery_s: float = Field(default=0, ge=0)
    controls_ttl_ms: int = Field(default=1000, ge=0)
    controls_timeout_ms: int = Field(default=1000, gt=0)
    detect_timeout_s: float = Field(
        default=300, gt=0, description="O1: a monitor must alert this long after the fault starts"
    )
    resolve_timeout_s: float = Field(
        default=600, gt=0, description="O1: and be OK again this long after the rollbacks"
    )


class Expect(SpecModel):
    """The contract's answers; a profile overrides those its target answers differently."""

    kill_switch_status: int = 503
    operator_takeover_status: int = 403
    safe_mode_status: int = 503
    rate_limited_status: int = 429
    rpc_unavailable_status: int = 503
    approval_pending_status: int = 202
    approval_rejected_status: int = 403
    approval_expired_status: int = 410
    approval_mismatch_status: int = 409
    idempotency_mismatch_status: int = 422
    rate_limit_unavailable_status: int = 503
    unauthorized_status: int = 401
    bad_request_status: int = 400
    error_codes: bool = Field(default=True, description="false where error bodies carry no code")
    redis_outage_reads: Literal["serve", "refuse"] = "serve"


class SentryApi(SpecModel):
    """O2 through the Sentry API: events are searched by their trace_id tag."""

    url: str = Field(default="https://sentry.io", description="Sentry's base URL")
    org: str = Field(min_length=1, description="organization slug")
    project: str = Field(min_length=1, description="project slug")
    token: SecretRef = Field(
        description="an auth token with event:read, e.g. {env: SENTRY_AUTH_TOKEN}"
    )


class Observe(SpecModel):
    """Where the target's telemetry goes, for CONTRACT O1 and O2; without it they are skipped."""

    intake: str | None = Field(
        default=None, description="URL of an omnidrill intake the target sends to"
    )
    datadog: bool = Field(
        default=False, description="live monitor states from Datadog (DD_API_KEY, DD_APP_KEY)"
    )
    env: str | None = Field(
        default=None,
        description="monitors/env/<env>.yaml of the monitors; default the profile's name, "
        "else its environment",
    )
    sentry: SentryApi | None = Field(
        default=None, description="O2 through the Sentry API instead of the intake"
    )
    poll_s: float | None = Field(
        default=None, gt=0, description="how often states are read (0.2 s intake, 10 s Datadog)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Observe:
        if (self.intake is None) == (not self.datadog):
            raise ValueError("give exactly one of `intake: URL` or `datadog: true`")
        if self.intake is not None and not self.intake.startswith(("http://", "https://")):
            raise ValueError(f"intake must be an http(s):// URL, found {self.intake!r}")
        return self

    @property
    def source(self) -> str:
        return "intake" if self.intake else "datadog"


class TargetProfile(SpecModel):
    """A target profile, exactly the keys the README lists."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    environment: Literal["dev", "staging", "production"] = "dev"
    base_url: str
    instances: list[str] = Field(default_factory=list)
    keys: Keys
    headers: dict[str, SecretRef] = Field(default_factory=dict)
    verify_tls: bool | str = True
    clients: Clients = Field(default_factory=Clients)
    controls: Controls
    faults: Faults = Field(default_factory=Faults)
    rpc_direct: RpcDirect = Field(default_factory=RpcDirect)
    trade: Trade = Field(default_factory=Trade)
    limits: Limits = Field(default_factory=Limits)
    expect: Expect = Field(default_factory=Expect)
    watch_secrets: list[SecretRef] = Field(
        default_factory=list,
        description="credentials the target holds that no answer may carry (S2), e.g. "
        "the providers' keys: [{env: NAME}, ...]",
    )
    observe: Observe | None = Field(
        default=None, description="where the target's telemetry goes (O1, O2); none: skipped"
    )

    @model_validator(mode="after")
    def _checks(self) -> TargetProfile:
        self.base_url = self.base_url.rstrip("/")
        if not self.instances:
            self.instances = [self.base_url]
        self.instances = [u.rstrip("/") for u in self.instances]
        if self.environment != "dev":
            literal = [path for path, ref in self.secret_refs() if ref.value is not None]
            if literal:
                raise ValueError(
                    f"`value:` secrets are only allowed when environment is dev; use `env: NAME`"
                    f" for {', '.join(literal)}"
                )
        return self

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every secret reference in the profile, with its field path."""
        refs: list[tuple[str, SecretRef]] = [
            ("keys.anon", self.keys.anon),
            ("keys.service_role", self.keys.service_role),
        ]
        refs += [(f"headers.{k}", v) for k, v in self.headers.items()]
        refs += [(f"clients.bypass_headers.{k}", v) for k, v in self.clients.bypass_headers.items()]
        if self.controls.dsn is not None:
            refs.append(("controls.dsn", self.controls.dsn))
        for which in ("primary", "fallback"):
            ref = getattr(self.rpc_direct, which)
            if isinstance(ref, SecretRef):
                refs.append((f"rpc_direct.{which}", ref))
        if self.trade.signer_key is not None:
            refs.append(("trade.signer_key", self.trade.signer_key))
        refs += [(f"watch_secrets.{i}", ref) for i, ref in enumerate(self.watch_secrets)]
        if self.observe is not None and self.observe.sentry is not None:
            refs.append(("observe.sentry.token", self.observe.sentry.token))
        return refs

    def proxy(self, name: str) -> ProxySpec | None:
        return next((p for p in self.faults.proxies if p.name == name), None)


@dataclass
class Resolved:
    """A profile with every secret read from the environment (and registered for scrubbing)."""

    profile: TargetProfile
    values: dict[str, str] = field(default_factory=dict)

    def secret(self, path: str) -> str:
        return self.values[path]

    @property
    def anon_key(self) -> str:
        return self.values["keys.anon"]

    @property
    def service_role_key(self) -> str:
        return self.values["keys.service_role"]

    @property
    def headers(self) -> dict[str, str]:
        return {k: self.values[f"headers.{k}"] for k in self.profile.headers}

    @property
    def bypass_headers(self) -> dict[str, str]:
        names = self.profile.clients.bypass_headers
        return {k: self.values[f"clients.bypass_headers.{k}"] for k in names}

    @property
    def watched(self) -> dict[str, str]:
        """`watch_secrets` values by the name they come from (env NAME, or their index)."""
        out = {}
        for i, ref in enumerate(self.profile.watch_secrets):
            out[ref.env or f"watch_secrets[{i}]"] = self.values[f"watch_secrets.{i}"]
        return out

    def rpc_url(self, which: Literal["primary", "fallback"]) -> str | None:
        ref = getattr(self.profile.rpc_direct, which)
        if isinstance(ref, SecretRef):
            return self.values[f"rpc_direct.{which}"]
        return ref


def resolve(profile: TargetProfile, environ: Mapping[str, str] | None = None) -> Resolved:
    """Read every secret; a missing environment variable is an error that lists them all."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    missing: list[str] = []
    for path, ref in profile.secret_refs():
        if ref.value is not None:
            values[path] = ref.value
        elif ref.env in env and env[ref.env] != "":
            values[path] = env[ref.env]
        else:
            missing.append(f"{ref.env} (for {path})")
    if missing:
        raise UsageError(
            f"target profile {profile.name!r} needs environment variables that are not set: "
            + ", ".join(missing)
        )
    secrets.register(*values.values())
    return Resolved(profile=profile, values=values)


def profile_path(arg: str, root: Path | None = None) -> Path:
    """A profile argument is a path, or a name resolved as targets/<name>.yaml.

    A bare file name that is not in the working folder is looked for under targets/ too
    (`--target staging.yaml` finds targets/staging.yaml). Returns the first candidate that
    exists, else the path a name stands for (which does not exist)."""
    candidates = _profile_candidates(arg, root or Path.cwd())
    default = candidates[1] if len(candidates) == 3 else candidates[0]  # targets/<name>.yaml
    return next((c for c in candidates if c.is_file()), default)


def _profile_candidates(arg: str, root: Path) -> list[Path]:
    given = Path(arg)
    if "/" in arg or given.is_absolute():
        return [given]
    targets = root / "targets"
    if given.suffix in {".yaml", ".yml"}:
        return [given, targets / arg]
    return [given, targets / f"{arg}.yaml", targets / f"{arg}.yml"]


def missing_profile_message(arg: str, root: Path | None = None) -> str:
    """Why a profile argument names no file, what there is instead, and how to get one."""
    from omnidrill.spec.errors import display_path
    from omnidrill.spec.suggest import did_you_mean

    root = root or Path.cwd()
    folder = root / "targets"
    shown = display_path(folder)
    if Path(arg).is_dir():
        head = f"target profile {arg!r} is a folder: give a profile file or a name under {shown}/"
    else:
        # the bare name and the .yml spelling are tried too; naming them adds nothing
        tried = [c for c in _profile_candidates(arg, root) if c.suffix != ".yml" or "/" in arg]
        named = [display_path(c) for c in (tried if "/" in arg or "." in arg else tried[1:])]
        head = f"target profile {arg!r} not found (no {' nor '.join(named)})"
    have = sorted(p.stem for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if have:
        head += did_you_mean(Path(arg).stem, have)
        parts = [head, f"The profiles under {shown}/: {', '.join(have)}"]
    elif folder.is_dir():
        parts = [head, f"{shown}/ holds no profile"]
    else:
        parts = [head, f"There is no {shown}/ here: run from the project folder or give a path"]
    if "local" not in have:
        parts.append("`omnidrill up` starts the reference stack and writes targets/local.yaml")
    return "".join(p + ("" if p.endswith("?") else ".") + " " for p in parts).strip()


def development_profile() -> TargetProfile:
    """The built-in profile of contract defaults, used to render templates without --target."""
    return TargetProfile(
        name="development",
        environment="dev",
        base_url="http://127.0.0.1:54321",
        keys=Keys(anon=SecretRef(value="dev-anon-key"), service_role=SecretRef(value="dev-sr-key")),
        controls=Controls(kind="postgrest", url="http://127.0.0.1:54321/rest/v1"),
        clients=Clients(forwarded_for=True),
        faults=Faults(
            proxies=[
                ProxySpec(name=n, listen=f"127.0.0.1:{18000 + i}", upstream=f"127.0.0.1:{8000 + i}")
                for i, n in enumerate(PROXY_NAMES)
            ]
        ),
        rpc_direct=RpcDirect(primary="http://127.0.0.1:8545", fallback="http://127.0.0.1:8546"),
        trade=Trade(allow_broadcast=True),
    )


class TemplateFields(dict[str, Any]):
    """A profile section as templates see it: `target.keys.anon` reads the field `keys`, not the
    dict method, so every field is reachable under its own name (`target["keys"]` works too)."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        return super().__getattribute__(name)


def _fields(value: Any) -> Any:
    if isinstance(value, dict):
        return TemplateFields({k: _fields(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_fields(v) for v in value]
    return value


def template_variables(profile: TargetProfile, extra: Mapping[str, Any]) -> dict[str, Any]:
    """What a YAML template sees: `target` (the profile, secrets as references) and every --var."""
    return {"target": _fields(profile.model_dump(mode="json")), **extra}
