"""Shared fixtures: a Postgres database and a Redis key prefix of this test session's own."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator

import pytest

from facilities import missing

PG_ADMIN_DSN = os.environ.get("OMNIDRILL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OMNIDRILL_TEST_REDIS", "redis://127.0.0.1:6379/0")
SESSION_TAG = f"od{os.getpid()}{uuid.uuid4().hex[:6]}"


def _unavailable(what: str, why: object) -> None:
    """Outside CI a missing service skips with a reason; under CI it fails the test."""
    missing(f"{what} (start it as .ci/run does)", why)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh database for this test session, dropped at the end."""
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # any connect failure means "not there"
        _unavailable("PostgreSQL", exc)
        raise  # unreachable: _unavailable raised
    dbname = f"omnidrill_{SESSION_TAG}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    try:
        yield f"{base}/{dbname}"
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        admin.close()


@pytest.fixture
def pg_admin(pg_dsn: str) -> str:
    """The admin DSN (the session database exists, so PostgreSQL answers)."""
    return PG_ADMIN_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis, checked to answer PING."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this session's own; its keys are deleted at the end."""
    import redis

    prefix = f"{SESSION_TAG}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session", autouse=True)
def _locust_stays_out_of_this_process() -> Iterator[None]:
    """Locust monkey-patches with gevent; it must only ever run in child processes."""
    yield
    leaked = [m for m in ("locust", "gevent.monkey") if m in sys.modules]
    assert not leaked, f"imported into the pytest process: {leaked}; run Locust as a child process"


@pytest.fixture
def omnidrill_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `omnidrill ARGS...` in-process through the real entry point (in `cwd` when given);
    returns (exit code, stdout, stderr)."""
    from pathlib import Path

    from omnidrill.cli import main

    def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["omnidrill", *args])
        monkeypatch.setenv("COLUMNS", "2000")  # one message, one line: no wrapping by rich
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
