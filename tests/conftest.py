"""Shared fixtures: a data dir holding the demo store, copied fresh for each test (loading it once per run); the
Gong export imported; the Tavily fake. Shared functions live in tests/support/."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.demo.load import load_demo
from sophia_mcp.settings import Settings
from tests.fakes.linear import LinearState, linear_app
from tests.fakes.server import serve
from tests.fakes.web_search import WebState, tavily_app
from tests.support.exports import EXPORT
from tests.support.postgres import PostgresServer, running_postgres
from tests.support.processes import env_for
from tests.support.redis_server import redis_server
from tests.support.settings import make_settings
from tests.support.store_file import StoreSQL

# Tests never read a developer's own configuration (SOPHIA_TEST_* say how the tests themselves run: kept, so
# xdist's workers see them too).
for key in [k for k in os.environ if k.startswith("SOPHIA_") and not k.startswith("SOPHIA_TEST_")]:
    del os.environ[key]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the servers run on (anyio would also try trio)."""
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this worker (skipped without one, unless SOPHIA_TEST_POSTGRES=required)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL (with its password) of a fresh database of its own for this test."""
    return postgres_server.url(postgres_server.create_database())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides choosing the store's engine: SQLite under the data dir, or a fresh PostgreSQL database
    (the test runs once on each)."""
    if request.param == "sqlite":
        return {}
    return {"store": {"url": request.getfixturevalue("postgres_url")}}


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the demo loaded (not analysed), built once per test session."""
    data_dir = tmp_path_factory.mktemp("demo-template")
    services = build_services(make_settings(data_dir))
    try:
        anyio.run(load_demo, services)
    finally:
        services.close()
    # Fold the WAL into the main file so a plain file copy is complete.
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return data_dir


@pytest.fixture
def data_dir(tmp_path: Path, demo_template: Path) -> Path:
    """A private copy of the demo data dir."""
    target = tmp_path / "data"
    target.mkdir()
    shutil.copy(demo_template / "sophia.db", target / "sophia.db")
    return target


@pytest.fixture(scope="session")
def demo_database(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL database with the demo loaded (not analysed), built once per worker: the template that each
    test's copy is made from."""
    name = postgres_server.create_database()
    settings = make_settings(tmp_path_factory.mktemp("demo-pg"), store={"url": postgres_server.url(name)})
    services = build_services(settings)
    try:
        anyio.run(load_demo, services)
    finally:
        services.close()
    return name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def demo_store(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoreSQL]:
    """The test's demo store, and SQL on it: the data dir's SQLite copy, or a copy of the demo database on
    PostgreSQL that SOPHIA_STORE__URL names for every settings and process the test builds (so the test runs once
    on each engine). A module opts in with `usefixtures("demo_store")`; a test about SQLite itself parametrizes it
    to ["sqlite"] (tests/support/store_file.py's `sqlite_only`)."""
    if request.param == "sqlite":
        yield StoreSQL(data_dir)
        return
    (data_dir / "sophia.db").unlink()  # nothing may read the SQLite copy by mistake
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(template=request.getfixturevalue("demo_database"))
    monkeypatch.setenv("SOPHIA_STORE__URL", server.url(name))
    sql = StoreSQL(data_dir, server.url(name))
    try:
        yield sql
    finally:
        sql.close()
        server.drop_database(name)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def empty_settings(tmp_path: Path) -> Iterator[Settings]:
    yield make_settings(tmp_path / "empty")


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    """A fresh data dir holding only the hand-built Gong export (tests/data/gong_export), imported by the CLI."""
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(app, ["calls", "import", str(EXPORT)], env=env_for(data_dir))
    assert result.exit_code == 0, result.output
    assert "2 new calls, 0 updated, 0 unchanged; 2 transcripts from 2 files" in result.output
    return data_dir


@pytest.fixture
def tavily() -> Iterator[tuple[str, Any]]:
    """The Tavily fake, served for one test: its base URL and its state."""
    state = WebState()
    with serve(tavily_app(state)) as url:
        yield url, state


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Redis (Debian's redis-server on 127.0.0.1) per test process; skipped where it is not installed."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """That Redis, emptied for this test."""
    with socket.create_connection(("127.0.0.1", int(redis_server_url.rsplit(":", 1)[1].split("/")[0]))) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(16).startswith(b"+OK")
    return redis_server_url


@pytest.fixture
def linear() -> Iterator[tuple[str, LinearState]]:
    """The Linear fake, served for one test: its base URL and its state (a "lost" answer comes after 1.5 s)."""
    state = LinearState(slow_seconds=1.5)
    with serve(linear_app(state)) as url:
        yield url, state
