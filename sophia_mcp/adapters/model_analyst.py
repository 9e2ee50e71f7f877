"""The `Analyst` port on a model that writes (`Writer`): read the transcript in parts, check the answers, fall back.

The writer is the configured model (`OpenAIWriter`) or the client's own (`SampledWriter`); both are asked the same
requests (`reading_requests`) and answer with the same JSON, which is validated and checked against the transcript.
Whatever goes wrong, the call is still analysed: by the fallback analyst, with the reason kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from pydantic import ValidationError

from sophia_mcp.analysis.model_reading import ModelReading, reading_requests, reading_to_insights
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.results import CallInsights
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.domain.writing import UnusableAnswer
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.writer import Writer

log = logging.getLogger(__name__)


def reason(exc: Exception) -> str:
    """Why an answer could not be used, in words safe to store and show."""
    if isinstance(exc, UnusableAnswer):
        return str(exc)
    if isinstance(exc, ValidationError | json.JSONDecodeError):
        return "the answer was not the JSON asked for"
    return type(exc).__name__


class ModelAnalyst:
    """An analyst named for the model that reads (`sampling`, `openai`)."""

    def __init__(self, writer: Writer, competitors: Sequence[Competitor], fallback: Analyst, max_chars: int) -> None:
        self.name: str = writer.name
        self.writer = writer
        self.competitors = list(competitors)
        self.fallback = fallback
        self.max_chars = max_chars

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        try:
            requests = reading_requests(call, transcript, self.competitors, self.max_chars)
            readings = [ModelReading.model_validate(json.loads(await self.writer.write(r))) for r in requests]
            return reading_to_insights(call, transcript, readings, self.competitors)
        except Exception as exc:  # whatever the model does, the call still gets analysed
            why = reason(exc)
            log.warning("%s analysis of call %s unusable, using %s: %s", self.name, call.id, self.fallback.name, why)
            insights = await self.fallback.read_call(call, transcript)
            # The fallback may have fallen back in turn (sampling, then openai, then local): keep every reason.
            reasons = "; ".join(r for r in (f"{self.name}: {why}", insights.fallback_reason) if r)
            return insights.model_copy(
                update={"fallback_reason": reasons, "read_by": insights.read_by or self.fallback.name}
            )
