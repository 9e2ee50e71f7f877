"""The SDK's share of a read tool's call: a bare MCPServer whose tool answers, at once, a record our server gave.

`python bench/record_server.py RECORDS.json` serves over stdio one tool per entry of the file ({tool: {"server":
name, "record": structured content}}), named as the tool, declared with the tool's own return type (so the same
output schema, the same validation and serialisation by the SDK) and returning the record built once at start.
What such a call costs beyond the bare echo is what the SDK spends on a reply of that size; the rest of a read
tool's ratio is ours. Its text copy is the SDK's indented JSON (ours is compact), so it is a little larger.
"""

import importlib
import json
import sys
import typing
from typing import Any

from mcp.server.mcpserver import MCPServer

server = MCPServer("records", log_level="INFO")


def answering(record: Any, returns: type) -> Any:
    async def answer() -> returns:  # type: ignore[valid-type]
        return record

    return answer


for tool, entry in json.loads(open(sys.argv[1]).read()).items():
    returns = typing.get_type_hints(getattr(importlib.import_module(f"sophia_mcp.servers.{entry['server']}"), tool))[
        "return"
    ]
    server.add_tool(answering(returns.model_validate(entry["record"]), returns), name=tool, description=tool)

if __name__ == "__main__":
    server.run()
