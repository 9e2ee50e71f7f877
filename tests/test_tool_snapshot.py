"""The tool list (names, descriptions, input and output schemas, annotations) is pinned: a change shows in review.

After an intended change, regenerate with: UPDATE_SNAPSHOTS=1 pytest tests/test_tool_snapshot.py
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import anyio
import pytest
from mcp import Client

from sophia_mcp.settings import Settings

SNAPSHOTS = Path(__file__).parent / "snapshots"


def tool_list(server: str, settings: Settings) -> list[dict[str, object]]:
    create_server = importlib.import_module(f"sophia_mcp.servers.{server}").create_server

    async def fetch() -> list[dict[str, object]]:
        async with Client(create_server(settings)) as client:
            tools = (await client.list_tools()).tools
        return [
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in sorted(tools, key=lambda t: t.name)
        ]

    return anyio.run(fetch)


@pytest.mark.parametrize("server", ["composite", "gong", "crm", "knowledge", "alerts", "linear"])
def test_tool_list_matches_snapshot(server: str, empty_settings: Settings) -> None:
    path = SNAPSHOTS / f"{server}_tools.json"
    current = json.dumps(tool_list(server, empty_settings), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(current)
    assert path.exists(), f"no snapshot yet: run UPDATE_SNAPSHOTS=1 pytest {__file__}"
    assert current == path.read_text(), f"the {server} tool list changed; review it and update the snapshot"
