"""The embedded analyst: reads a call with the local lexicon (VADER sentiment, competitor aliases, risk phrases) and
the local embedding model (risks said in other words)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, partial

import anyio.to_thread

from sophia_mcp.analysis.insights import local_insights
from sophia_mcp.analysis.risk_meaning import RiskMeaning
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallInsights
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.settings import Settings


@cache
def shared_meaning() -> RiskMeaning:
    """One model per process, however many analysts (the healing watch builds one per call while an incident lasts)."""
    # Imported here: numpy and the model are for a server that analyses calls, not for every server's start.
    from sophia_mcp.adapters.local_embed import LocalEmbedder

    return RiskMeaning(LocalEmbedder().embed_now)


class LocalAnalyst:
    """Deterministic analysis: VADER sentiment, configured competitor aliases, phrase-based risk factors, and with
    `risk_meaning` the risks close in meaning to written examples (the embedding model loads with the first call
    read, not with the server)."""

    name = "local"

    def __init__(self, competitors: Sequence[Competitor], risk_meaning: bool = False) -> None:
        self.competitors = list(competitors)
        self.risk_meaning = risk_meaning

    @classmethod
    def configured(cls, settings: Settings) -> LocalAnalyst:
        """The local analyst as the settings configure it (their competitors, the risk meaning on or off)."""
        return cls(settings.competitors, settings.analyst.risk_meaning)

    @property
    def meaning(self) -> RiskMeaning:
        return shared_meaning()

    def read_now(self, call: Call, transcript: Transcript) -> CallInsights:
        """The reading in the calling thread (the model's first load takes a moment; later calls a millisecond)."""
        return local_insights(call, transcript, self.competitors, self.meaning if self.risk_meaning else None)

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        if not self.risk_meaning:
            return self.read_now(call, transcript)  # a millisecond of lexicon: less than the trip to a worker
        return await anyio.to_thread.run_sync(partial(self.read_now, call, transcript))
