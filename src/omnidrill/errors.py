"""Exit codes and the exceptions that map onto them, the same for every command."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; see README "Exit codes"."""

    OK = 0  # every check passed
    FAILED = 1  # a check failed (a steady state that does not hold before a drill included)
    BAD_INPUT = 2  # bad input or usage, or a run refused (lock, ledger, production)
    ABORTED = 3  # guardrail, halt, Ctrl-C, SIGTERM, after rollbacks ran
    ROLLBACK_FAILED = 4  # the system may be left changed
    INCONCLUSIVE = 5  # an outside service failed or a fault did not take effect


class OmnidrillError(Exception):
    """Base of every error the CLI turns into a message and an exit code."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class UsageError(OmnidrillError):
    """Bad input or usage: a flag, a file, a profile."""

    exit_code = ExitCode.BAD_INPUT


class RunRefused(OmnidrillError):
    """A run was refused before anything was touched (lock, ledger, production)."""

    exit_code = ExitCode.BAD_INPUT


class Inconclusive(OmnidrillError):
    """An outside service failed, so no verdict could be given."""

    exit_code = ExitCode.INCONCLUSIVE
