"""Serving over HTTP: a bearer token when one is set (none reaches a tool without it), Origin and Host checks,
and no listening beyond loopback without authentication."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_helpers import structured
from tests.processes import SCRIPT, env_for, free_port, http_server

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-token-for-tests-0123456789"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_requests_without_the_token_are_refused_and_with_it_served(data_dir: Path) -> None:
    with http_server(data_dir, "http", SOPHIA_HTTP__BEARER_TOKEN=TOKEN) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            missing = await http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT)
            wrong = await http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT | {"Authorization": "Bearer nope"})
            foreign = await http.post(
                f"{base}/mcp", json=INITIALIZE,
                headers=ACCEPT | {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example.com"},
            )  # fmt: skip
        authorised = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
        async with Client(streamable_http_client(f"{base}/mcp", http_client=authorised)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            calls = structured(await client.call_tool("list_calls", {"limit": 1}))
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    assert foreign.status_code in (400, 403)
    assert "list_calls" in tools and len(calls["calls"]) == 1


def test_no_listening_beyond_loopback_without_a_token(data_dir: Path) -> None:
    port = str(free_port())
    refused = subprocess.run(
        [SCRIPT, "serve", "gong", "--transport", "http", "--host", "0.0.0.0", "--port", port],
        env=env_for(data_dir), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    hosts = subprocess.run(
        [SCRIPT, "serve", "gong", "--transport", "http", "--host", "0.0.0.0", "--port", port],
        env=env_for(data_dir, SOPHIA_HTTP__BEARER_TOKEN=TOKEN), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "SOPHIA_HTTP__BEARER_TOKEN" in refused.stderr
    assert hosts.returncode == 2 and "SOPHIA_HTTP__ALLOWED_HOSTS" in hosts.stderr
