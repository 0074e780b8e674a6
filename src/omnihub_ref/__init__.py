"""The reference OmniHub stack: functions, control API, stores and mock RPC providers."""
