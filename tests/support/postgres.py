"""A real PostgreSQL server for tests: Debian's binaries (`initdb`, `pg_ctl`) run in a temporary directory on
127.0.0.1 and a free port, one per xdist worker, a fresh database per test (CREATE DATABASE), stopped at the end.

initdb and postgres refuse to run as root (this machine and CI are root), so they run as the `postgres` user that
Debian's package creates, with the data directory owned by it. Without the binaries the tests that need a server
skip with the reason; with `SOPHIA_TEST_POSTGRES=required` (CI sets it) they fail instead.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

REQUIRED = os.environ.get("SOPHIA_TEST_POSTGRES") == "required"
PASSWORD = "s3cret-test-pw"
USER = "sophia"


def bin_dir() -> Path | None:
    """Where Debian's PostgreSQL server binaries are, or None."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(Path(found))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def unavailable(reason: str) -> None:
    """Skip the test for `reason`, or fail it when CI requires PostgreSQL."""
    if REQUIRED:
        pytest.fail(f"SOPHIA_TEST_POSTGRES=required but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server; `url(db)` is a URL with a password, as a user would configure it."""

    bindir: Path
    root: Path
    port: int
    run_as: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args],
            check=True, capture_output=True, text=True,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} -c fsync=off"
        self._pg_ctl("-l", str(self.root / "log"), "-o", options, "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def create_database(self, template: str | None = None) -> str:
        """A new database (a copy of `template`, when given: a file copy, much faster than loading it again)."""
        name = f"t{os.getpid()}_{next(_counter)}"
        copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, closing whatever a test left connected to it."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_counter = itertools.count()


def _run_as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        unavailable("running as root, and there is no `postgres` user to run the server as")
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if runuser is None:
        unavailable("running as root, and neither runuser nor setpriv is there to run the server as `postgres`")
    assert runuser is not None
    if runuser.endswith("runuser"):
        return [runuser, "-u", "postgres", "--"]
    return [runuser, "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a server in a temporary directory (owned by `postgres` when run as root); stop and remove it after."""
    bindir = bin_dir()
    if bindir is None:
        unavailable("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    assert bindir is not None
    run_as = _run_as_postgres()
    root = Path(tempfile.mkdtemp(prefix="sophia-pg-"))
    try:
        if run_as:
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
        (pwfile := root / "pw").write_text(PASSWORD)
        if run_as:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(root / "data"), "-U", USER, f"--pwfile={pwfile}",
             "-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        server = PostgresServer(bindir, root, free_port(), run_as)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
