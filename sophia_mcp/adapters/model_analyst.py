"""What the model-backed analysts share: read the transcript in chunks, check the answers, and fall back.

A subclass says only how to ask its model one chunk (`ask`) and, if it has errors of its own, how to name them
(`reason`). Whatever goes wrong, the call is still analysed: by the fallback analyst, with the reason kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from pydantic import ValidationError

from sophia_mcp.analysis.model_reading import (
    ModelReading,
    UnusableAnswer,
    chunk_prompt,
    reading_to_insights,
    transcript_chunks,
)
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallInsights
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.ports.analyst import Analyst

log = logging.getLogger(__name__)


class ModelAnalyst:
    name = "model"

    def __init__(self, competitors: Sequence[Competitor], fallback: Analyst, max_chars: int) -> None:
        self.competitors = list(competitors)
        self.fallback = fallback
        self.max_chars = max_chars

    async def ask(self, prompt: str) -> ModelReading:
        """The model's reading of one chunk of the transcript."""
        raise NotImplementedError

    def reason(self, exc: Exception) -> str:
        """Why an answer could not be used, in words safe to store and show."""
        if isinstance(exc, UnusableAnswer):
            return str(exc)
        if isinstance(exc, ValidationError | json.JSONDecodeError):
            return "the answer was not the JSON asked for"
        return type(exc).__name__

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        try:
            chunks = transcript_chunks(call, transcript, self.max_chars)
            readings = [await self.ask(chunk_prompt(call, c, i, len(chunks))) for i, c in enumerate(chunks, 1)]
            return reading_to_insights(call, transcript, readings, self.competitors)
        except Exception as exc:  # whatever the model does, the call still gets analysed
            reason = self.reason(exc)
            log.warning("%s analysis of call %s unusable, using %s: %s", self.name, call.id, self.fallback.name, reason)
            insights = await self.fallback.read_call(call, transcript)
            # The fallback may have fallen back in turn (sampling, then openai, then local): keep every reason.
            reasons = "; ".join(r for r in (f"{self.name}: {reason}", insights.fallback_reason) if r)
            return insights.model_copy(
                update={"fallback_reason": reasons, "read_by": insights.read_by or self.fallback.name}
            )
