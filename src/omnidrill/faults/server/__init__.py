"""A Toxiproxy-API-compatible TCP fault proxy for machines without the Go binary.

Speaks Toxiproxy 2.12.0's HTTP API (routes, status codes, error bodies, Go json decoding,
populate, PATCH) with the toxics latency, bandwidth, slow_close, timeout, reset_peer, slicer,
limit_data and noop, applied to open connections, and omnidrill's HTTP toxics http_error and
http_replace (an extension: see ../README.md). Known differences from the Go server:
no /metrics (Toxiproxy serves it only with its metrics flags), no -seed flag (unused there),
no 25 s handler timeout, and the HTTP API answers wrong methods with an empty 405 as mux does.
Like Toxiproxy, a reset_peer added to an already open connection ends it with a FIN: only
connections accepted while the toxic exists get SO_LINGER 0 and so a reset.
"""

from omnidrill.faults.server.api import VERSION
from omnidrill.faults.server.app import PopulateError, ToxiproxyServer, run_server

__all__ = ["VERSION", "PopulateError", "ToxiproxyServer", "run_server"]
