"""A Toxiproxy-API-compatible TCP fault proxy for machines without the Go binary."""

from omnidrill.faults.server.api import VERSION
from omnidrill.faults.server.app import PopulateError, ToxiproxyServer, run_server

__all__ = ["VERSION", "PopulateError", "ToxiproxyServer", "run_server"]
