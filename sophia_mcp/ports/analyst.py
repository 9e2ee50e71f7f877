"""The `Analyst` port: who reads a transcript and says what it means."""

from __future__ import annotations

from typing import Protocol

from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallInsights


class Analyst(Protocol):
    name: str

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        """Sentiment, competitor mentions and risk factors of one call."""
        ...
