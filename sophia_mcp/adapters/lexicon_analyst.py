"""The embedded analyst: reads a call with the local lexicon (VADER sentiment, competitor aliases, risk phrases)."""

from __future__ import annotations

from collections.abc import Sequence

from sophia_mcp.analysis.insights import local_insights
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallInsights
from sophia_mcp.domain.weights import Competitor


class LocalAnalyst:
    """Deterministic analysis: VADER sentiment, configured competitor aliases, phrase-based risk factors."""

    name = "local"

    def __init__(self, competitors: Sequence[Competitor]) -> None:
        self.competitors = list(competitors)

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        return local_insights(call, transcript, self.competitors)
