"""`omnidrill up --degrade-last-latency-ms MS --degrade-last-error-rate PCT`: the last functions
instance made worse on purpose, so that a canary verdict can be seen to fail. Off by default;
the instance keeps every clause of the contract, it is only slower or fails now and then, as a
bad release would."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

MESSAGE = "internal error (degraded on purpose by omnidrill up --degrade-last-error-rate)"


@dataclass(frozen=True)
class Degrade:
    latency_ms: float = 0.0  # added to every function request before it is judged
    error_rate: float = 0.0  # share (0-1) of function requests answered 500 INTERNAL_ERROR

    def describe(self) -> str:
        parts = [f"+{self.latency_ms:g} ms"] if self.latency_ms else []
        parts += [f"{self.error_rate * 100:g} % errors"] if self.error_rate else []
        return "made worse on purpose: " + ", ".join(parts)

    async def fails(self) -> bool:
        """Wait the added latency; True when this request is one of the failures."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000.0)
        return self.error_rate > 0 and random.random() < self.error_rate
