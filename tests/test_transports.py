"""The gong server as a real process: over stdio (the client spawns it), SSE, and Streamable HTTP at /mcp."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from tests.support.processes import SCRIPT, env_for, http_server
from tests.support.results import structured
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio


async def exercise(client: Client, call_id: str) -> None:
    tools = {t.name for t in (await client.list_tools()).tools}
    assert {"list_calls", "get_call", "get_transcript", "analyze_call"} <= tools
    report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    assert 0 <= report["health"]["score"] <= 100
    assert report["analysis"]["talk"]["internal_ratio"] is not None
    bad = await client.call_tool("list_calls", {"limit": 0})
    assert bad.is_error
    assert not (await client.call_tool("list_calls", {"limit": 2})).is_error


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_subprocess(data_dir: Path, mode: str) -> None:
    # Any stray byte on stdout would break the JSON-RPC stream and fail this session.
    params = StdioServerParameters(
        command=SCRIPT, args=["serve", "gong"], env=env_for(data_dir, SOPHIA_LOG_LEVEL="DEBUG")
    )
    async with Client(params, mode=mode) as client:
        await exercise(client, newest_call_ids(data_dir, 1)[0])


async def test_streamable_http(data_dir: Path) -> None:
    with http_server(data_dir, "http") as base:
        async with Client(f"{base}/mcp") as client:
            await exercise(client, newest_call_ids(data_dir, 1)[0])


async def test_sse(data_dir: Path) -> None:
    with http_server(data_dir, "sse") as base:
        async with Client(sse_client(f"{base}/sse"), mode="legacy") as client:
            await exercise(client, newest_call_ids(data_dir, 1)[0])
