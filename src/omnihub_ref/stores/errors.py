"""Errors of the control tables, shaped like PostgREST's: code, message, details, hint, status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal the control API answers as-is; `status` is the HTTP status PostgREST would use."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "details": self.details,
            "hint": self.hint,
            "message": self.message,
        }


class StoreUnavailable(ApiError):
    """The database cannot be reached or did not answer in time (PostgREST answers 503)."""

    def __init__(self, details: str | None = None) -> None:
        super().__init__(
            503,
            "PGRST001",
            "Database client error. Retrying the connection.",
            details,
        )


def bad_request(code: str, message: str, details: str | None = None, hint: str | None = None):
    """A 400 with a PostgreSQL-like or PGRST code."""
    return ApiError(400, code, message, details, hint)
