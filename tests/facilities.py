"""A facility a test needs (a service, IPv6, free ports) that this machine does not offer:
outside CI the test skips with the reason; under CI=true it fails, so CI never passes by
skipping what it was meant to run."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(what: str, why: object = "") -> None:
    """Skip (outside CI) or fail (under CI) because `what` is not available here."""
    msg = f"{what} is not available here" + (f" ({why})" if why else "")
    if IN_CI:
        pytest.fail(msg + "; CI must offer it", pytrace=False)
    pytest.skip(msg)
