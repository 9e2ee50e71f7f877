"""The embedded analyst: reads a call with the local lexicon (VADER sentiment, competitor aliases, risk phrases),
the local embedding model (risks said in other words) and the weights fitted on labelled calls (the learned
reading, sophia_mcp/data/learned_analyst.json)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from sophia_mcp.analysis.insights import learned_insights, local_insights
from sophia_mcp.analysis.learned_reading import LearnedWeights
from sophia_mcp.analysis.risk_meaning import RiskMeaning
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallInsights
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.errors import ConfigurationError
from sophia_mcp.settings import Settings

if TYPE_CHECKING:
    from sophia_mcp.adapters.local_embed import LocalEmbedder

WEIGHTS = Path(__file__).parent.parent / "data" / "learned_analyst.json"
log = logging.getLogger(__name__)


@cache
def shared_embedder() -> LocalEmbedder:
    """One model per process, however many analysts (the healing watch builds one per call while an incident lasts)."""
    # Imported here: numpy and the model are for a server that analyses calls, not for every server's start.
    from sophia_mcp.adapters.local_embed import LocalEmbedder

    return LocalEmbedder()


@cache
def shared_meaning() -> RiskMeaning:
    return RiskMeaning(shared_embedder().embed_now)


@cache
def shared_weights() -> LearnedWeights:
    """The learned reading's weights (bench/fit_analyst.py writes them), read once per process."""
    return LearnedWeights.from_json(json.loads(WEIGHTS.read_text()))


class LocalAnalyst:
    """Deterministic analysis: VADER sentiment, configured competitor aliases, phrase-based risk factors; with
    `learned` the sentiment label and the risks the fitted weights add (analysis/learned_reading.py), or with
    `risk_meaning` the risks close in meaning to written examples. The embedding model loads with the first call
    read, not with the server."""

    name = "local"

    def __init__(self, competitors: Sequence[Competitor], risk_meaning: bool = False, learned: bool = False) -> None:
        self.competitors = list(competitors)
        self.risk_meaning = risk_meaning
        self.learned = learned

    @classmethod
    def configured(cls, settings: Settings) -> LocalAnalyst:
        """The local analyst as the settings configure it (their competitors, the learned reading and the risk
        meaning on or off)."""
        return cls(settings.competitors, settings.analyst.risk_meaning, settings.analyst.learned)

    @property
    def meaning(self) -> RiskMeaning:
        return shared_meaning()

    def read_now(self, call: Call, transcript: Transcript) -> CallInsights:
        """The reading in the calling thread (the model's first load takes a moment; later calls a millisecond)."""
        if self.learned:
            embed = shared_embedder().embed_now
            try:
                return learned_insights(call, transcript, self.competitors, embed, self.meaning, shared_weights())
            except ConfigurationError as exc:  # the embedding model would not load: the lexicon still reads the call
                log.warning("learned reading of call %s unusable, using the lexicon and rules: %s", call.id, exc)
                insights = local_insights(call, transcript, self.competitors)
                return insights.model_copy(update={"fallback_reason": f"learned reading: {exc}"})
        return local_insights(call, transcript, self.competitors, self.meaning if self.risk_meaning else None)

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        if not (self.risk_meaning or self.learned):
            return self.read_now(call, transcript)  # a millisecond of lexicon: less than the trip to a worker
        return await anyio.to_thread.run_sync(partial(self.read_now, call, transcript))
