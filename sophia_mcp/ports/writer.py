"""The `Writer` port: a model that writes text, the client's own (MCP sampling) or the configured one (OpenAI)."""

from __future__ import annotations

from typing import Protocol

from sophia_mcp.domain.writing import WriterName, WritingRequest


class Writer(Protocol):
    name: WriterName

    async def write(self, request: WritingRequest) -> str:
        """The model's answer to `request` (JSON text when it asks for a schema); raises `UnusableAnswer` with the
        reason when there is none to use."""
        ...
