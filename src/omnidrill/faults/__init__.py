"""Faults: the Toxiproxy API client used by drill actions, and a compatible server (`server/`)."""

from omnidrill.faults.client import (
    FaultAPIError,
    FaultClient,
    FaultProxyMismatch,
    FaultProxyUnreachable,
    FaultRequestRejected,
)

__all__ = [
    "FaultAPIError",
    "FaultClient",
    "FaultProxyMismatch",
    "FaultProxyUnreachable",
    "FaultRequestRejected",
]
