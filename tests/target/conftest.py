"""Live reference stacks for the contract tests.

Two stacks per session: the embedded backends (PostgreSQL and Redis from their wheels, fixed
window) and the machine's own Postgres + Redis (sliding window), each with two function
instances, one process each, and the --fast values.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stackclient import Target

from omnidrill.launch import launch_stack

_FAST = ["--fast", "--base-port", "0", "--instances", "2"]


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with launch_stack(_FAST, tmp_path_factory.mktemp("embedded")) as (_, profile):
        yield Target("embedded", profile)


@pytest.fixture(scope="session")
def pg_redis_stack(
    tmp_path_factory: pytest.TempPathFactory, pg_dsn: str, redis_url: str, redis_prefix: str
) -> Iterator[Target]:
    args = [
        *_FAST,
        "--postgres",
        pg_dsn,
        "--redis",
        redis_url,
        "--redis-prefix",
        f"{redis_prefix}stack:",
        "--rate-algorithm",
        "sliding_window",
    ]
    with launch_stack(args, tmp_path_factory.mktemp("pgredis")) as (_, profile):
        yield Target("pg_redis", profile)


@pytest.fixture(scope="session", params=["embedded", "pg_redis"])
def stack(request: pytest.FixtureRequest) -> Target:
    return request.getfixturevalue(f"{request.param}_stack")


@pytest.fixture
def target(stack: Target) -> Iterator[Target]:
    """A stack with clear controls and no faults before and after the test."""
    stack.reset_faults()
    stack.clear_controls()
    yield stack
    stack.reset_faults()
    stack.clear_controls()
