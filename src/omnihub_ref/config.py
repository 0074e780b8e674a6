"""Settings of one functions instance: the knobs of CONTRACT section 8, from flags or env vars."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from omnidrill.errors import UsageError

RateAlgorithm = Literal["fixed_window", "sliding_window"]
RATE_ALGORITHMS: tuple[str, ...] = ("fixed_window", "sliding_window")
CONTROLS_ROW_ID = "00000000-0000-0000-0000-000000000001"

# Contract section 3: risk thresholds of execute_trade, in USD.
APPROVAL_THRESHOLD_USD = 10_000
CRITICAL_THRESHOLD_USD = 100_000


@dataclass(frozen=True)
class FunctionsConfig:
    """Everything a functions instance needs; defaults are the contract's reference values."""

    rpc_primary_url: str = ""
    rpc_fallback_url: str = ""
    control_api_url: str = ""  # ends in /rest/v1
    anon_key: str = ""
    service_role_key: str = ""
    redis_url: str | None = None  # required by the functions; None only in unit tests
    redis_prefix: str = "omnihub:"
    rate_limit: int = 100
    rate_window_s: int = 60
    rate_algorithm: str = "fixed_window"
    approval_ttl_s: float = 3600.0
    rpc_timeout_ms: int = 2000
    controls_ttl_ms: int = 1000
    controls_timeout_ms: int = 1000
    trust_forwarded_for: bool = False
    max_body_bytes: int = 64 * 1024
    idempotency_ttl_s: int = 24 * 3600
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UsageError naming the knob when a value cannot work."""
        positive = {
            "rate_limit": self.rate_limit,
            "rate_window_s": self.rate_window_s,
            "approval_ttl_s": self.approval_ttl_s,
            "rpc_timeout_ms": self.rpc_timeout_ms,
            "controls_timeout_ms": self.controls_timeout_ms,
            "max_body_bytes": self.max_body_bytes,
        }
        for name, value in positive.items():
            if value <= 0:
                raise UsageError(f"{name} must be > 0, got {value!r}")
        if self.controls_ttl_ms < 0:
            raise UsageError(f"controls_ttl_ms must be >= 0, got {self.controls_ttl_ms!r}")
        if self.rate_algorithm not in RATE_ALGORITHMS:
            raise UsageError(
                f"rate_algorithm must be one of {', '.join(RATE_ALGORITHMS)}, "
                f"got {self.rate_algorithm!r}"
            )

    @property
    def rpc_timeout_s(self) -> float:
        return self.rpc_timeout_ms / 1000

    @property
    def controls_ttl_s(self) -> float:
        return self.controls_ttl_ms / 1000

    @property
    def controls_timeout_s(self) -> float:
        return self.controls_timeout_ms / 1000

    def with_(self, **changes: Any) -> FunctionsConfig:
        return replace(self, **changes)
