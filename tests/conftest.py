"""Shared fixtures: a data dir holding the demo store, copied fresh for each test (loading it once per run)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from sophia_mcp.settings import Settings, load_settings

# Tests never read a developer's own configuration, and keep their tool-list cache to themselves.
for key in [k for k in os.environ if k.startswith("SOPHIA_")]:
    del os.environ[key]
os.environ["SOPHIA_CACHE_DIR"] = tempfile.mkdtemp(prefix="sophia-test-cache-")


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings(data_dir=data_dir, **overrides)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the demo loaded (not analysed), built once per test session."""
    from sophia_mcp.app.backends import build_services
    from sophia_mcp.demo.load import load_demo

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


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def empty_settings(tmp_path: Path) -> Iterator[Settings]:
    yield make_settings(tmp_path / "empty")


def with_web(data_dir: Path, url: str, **strategic: object) -> Settings:
    """Settings with web search on the Tavily fake at `url`."""
    from tests.fakes.web_search import TAVILY_KEY

    return make_settings(
        data_dir, web_search={"backend": "tavily"}, strategic=strategic,
        tavily={"base_url": url, "api_key": TAVILY_KEY, "timeout_s": 2, "max_retries": 0},
    )  # fmt: skip


@pytest.fixture
def tavily() -> Iterator[tuple[str, Any]]:
    """The Tavily fake, served for one test: its base URL and its state."""
    from tests.fakes.server import serve
    from tests.fakes.web_search import WebState, tavily_app

    state = WebState()
    with serve(tavily_app(state)) as url:
        yield url, state
