"""The tool list kept between starts: the same list as building every tool, a tool built when first called,
and a new list when the code changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import Client

from sophia_mcp import tool_cache
from sophia_mcp.servers.composite import create_server
from tests.support.results import structured
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_cached_list_is_the_built_list_and_tools_still_run(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOPHIA_CACHE_DIR", str(tmp_path / "cache"))
    settings = make_settings(data_dir)
    first_server = create_server(settings)
    async with Client(first_server) as client:
        built = [t.model_dump() for t in (await client.list_tools()).tools]
    assert not first_server._pending_tools  # listing without a cache built every tool
    [written] = list((tmp_path / "cache" / "tools").glob("sophia-*.json"))

    second_server = create_server(settings)
    async with Client(second_server) as client:
        cached = [t.model_dump() for t in (await client.list_tools()).tools]
        assert len(second_server._pending_tools) == len(built)  # listed from the cache: nothing built
        clients = structured(await client.call_tool("crm_list_clients", {"limit": 2}))
        bad = await client.call_tool("crm_list_clients", {"limit": "many"})
    assert cached == built and len(clients["clients"]) == 2 and bad.is_error
    assert (
        "crm_list_clients" not in second_server._pending_tools and len(second_server._pending_tools) == len(built) - 1
    )

    # A changed source file is a new key: the next start builds the list again and replaces the old file.
    source = tool_cache.__file__
    stat = os.stat(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        third_server = create_server(settings)
        async with Client(third_server) as client:
            again = [t.model_dump() for t in (await client.list_tools()).tools]
        assert not third_server._pending_tools and again == built
        assert [p.name for p in (tmp_path / "cache" / "tools").glob("sophia-*.json")] != [written.name]
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
