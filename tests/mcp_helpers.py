"""Small helpers for driving servers through a real MCP client session."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from mcp_types import CallToolResult, TextContent


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


def newest_call_ids(data_dir: Path, n: int = 5) -> list[str]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return [r[0] for r in conn.execute("SELECT id FROM calls ORDER BY started DESC LIMIT ?", (n,))]


def outbox_rows(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT key, status FROM outbox ORDER BY id")]
