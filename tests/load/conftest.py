"""Fixtures of the load tests: the fake target and the reference stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import fake_target


@pytest.fixture(scope="module")
def fake_pair() -> Iterator[list[int]]:
    """Two instances of the fake target, no rate limit, 1 ms of work per function call."""
    with fake_target(instances=2, delay_ms=1) as ports:
        yield ports


@pytest.fixture(scope="module")
def reference_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The reference stack, embedded backends, default limits (100 per 60 s): yields its profile."""
    from omnidrill.launch import launch_stack

    with launch_stack(["--base-port", "0"], tmp_path_factory.mktemp("stack")) as (_, profile):
        yield profile
