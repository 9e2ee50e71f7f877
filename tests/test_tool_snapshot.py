"""The tool list (names, descriptions, input and output schemas, annotations) is pinned: a change shows in review.

After an intended change, regenerate with: UPDATE_SNAPSHOTS=1 pytest tests/test_tool_snapshot.py
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any, cast

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


# Strings a parser of a fixed format reads (dates) or a closed list (enums) are bounded without a maxLength.
BOUNDED_BY_FORMAT = {"date", "date-time"}


def unbounded_strings(schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    """Every string in a JSON Schema (nested objects, arrays, anyOf, $defs) without a maxLength."""
    if "$ref" in schema:
        return unbounded_strings(root["$defs"][schema["$ref"].rsplit("/", 1)[-1]], root, where)
    found = [f for key in ("anyOf", "oneOf", "allOf") for part in schema.get(key, [])
             for f in unbounded_strings(part, root, where)]  # fmt: skip
    kinds = schema.get("type")
    if "string" in (kinds if isinstance(kinds, list) else [kinds]) and not (
        "maxLength" in schema or "enum" in schema or "const" in schema or schema.get("format") in BOUNDED_BY_FORMAT
    ):
        found.append(where)
    for name, part in (schema.get("properties") or {}).items():
        found += unbounded_strings(part, root, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        found += unbounded_strings(schema["items"], root, f"{where}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += unbounded_strings(schema["additionalProperties"], root, f"{where}{{}}")
    return found


def test_every_string_a_tool_takes_has_a_max_length(empty_settings: Settings) -> None:
    tools = tool_list("composite", empty_settings)
    schemas = {str(t["name"]): cast(dict[str, Any], t["inputSchema"]) for t in tools}
    unbounded = [where for name, schema in schemas.items() for where in unbounded_strings(schema, schema, name)]
    assert unbounded == [], "give these string inputs a max_length (Field(max_length=...))"
