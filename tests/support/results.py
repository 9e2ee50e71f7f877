"""Reading what a tool call answers, as a client receives it."""

from __future__ import annotations

from typing import Any

from mcp_types import CallToolResult, TextContent


def text_of(result: CallToolResult) -> str:
    """The result's text blocks, joined by newlines."""
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    """The result's structured content; fails the test, with the result's text, if the call was an error."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content
