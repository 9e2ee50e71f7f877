"""The `Analyst` port on an OpenAI-compatible chat model with structured outputs.

The model reads the transcript and answers in a JSON schema made from a pydantic model; `base_url` makes the same
code serve OpenAI, Azure OpenAI or a local OpenAI-compatible server. Long transcripts are read in chunks that fit
`max_input_chars`. Whatever the model answers is checked against the transcript (speakers, competitors, kinds);
an answer that cannot be used (an error, a refusal, a cut-off or invalid answer) falls back to the local analyst,
with the reason kept in the analysis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from sophia_mcp.analysis.model_reading import (
    SYSTEM_PROMPT,
    ModelReading,
    UnusableAnswer,
    chunk_prompt,
    reading_to_insights,
    transcript_chunks,
)
from sophia_mcp.analysis.results import CallInsights
from sophia_mcp.errors import ConfigurationError
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.ports.calls import Call, Transcript
from sophia_mcp.settings import Competitor, OpenAISettings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)


class OpenAIAnalyst:
    name = "openai"

    def __init__(self, settings: OpenAISettings, competitors: Sequence[Competitor], fallback: Analyst) -> None:
        if settings.api_key is None:
            raise ConfigurationError("The openai analyst needs SOPHIA_OPENAI__API_KEY (and SOPHIA_OPENAI__BASE_URL).")
        # Imported here: the openai package takes most of a second to import, paid only when it is configured.
        from openai import AsyncOpenAI

        self.settings = settings
        self.competitors = list(competitors)
        self.fallback = fallback
        self.client: AsyncOpenAI = AsyncOpenAI(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,  # the client's own retry of 408/429/5xx; no second loop on top
        )
        self._secret = settings.api_key.get_secret_value()

    async def aclose(self) -> None:
        await self.client.close()

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        try:
            return await self._read(call, transcript)
        except Exception as exc:  # any failure of the model path leaves the call to the local analyst
            reason = self._reason(exc)
            log.warning("OpenAI analysis of call %s unusable, using the local analyst: %s", call.id, reason)
            insights = await self.fallback.read_call(call, transcript)
            return insights.model_copy(update={"fallback_reason": f"openai: {reason}"})

    def _reason(self, exc: Exception) -> str:
        import openai

        if isinstance(exc, UnusableAnswer):
            text = str(exc)
        elif isinstance(exc, openai.LengthFinishReasonError):
            text = "the answer was cut off (finish_reason length)"
        elif isinstance(exc, openai.ContentFilterFinishReasonError):
            text = "the answer was withheld by the content filter"
        elif isinstance(exc, openai.APIStatusError):
            text = f"HTTP {exc.status_code} {type(exc).__name__}"
        elif isinstance(exc, openai.APIError):
            text = type(exc).__name__
        elif isinstance(exc, ValidationError):
            text = f"the answer did not match the schema ({exc.error_count()} errors)"
        else:
            text = f"{type(exc).__name__}"
        return text.replace(self._secret, "***")

    async def _ask(self, prompt: str) -> ModelReading:
        names = ", ".join(c.name for c in self.competitors)
        completion = await self.client.chat.completions.parse(
            model=self.settings.model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT.format(competitors=names)},
                {"role": "user", "content": prompt},
            ],
            response_format=ModelReading,
        )
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            raise UnusableAnswer("the answer was cut off (finish_reason length)")
        if choice.message.refusal:
            raise UnusableAnswer("the model refused")
        if choice.message.parsed is None:
            raise UnusableAnswer("the answer had no parsable content")
        return choice.message.parsed

    async def _read(self, call: Call, transcript: Transcript) -> CallInsights:
        chunks = transcript_chunks(call, transcript, self.settings.max_input_chars)
        readings = [await self._ask(chunk_prompt(call, c, i, len(chunks))) for i, c in enumerate(chunks, start=1)]
        return reading_to_insights(call, transcript, readings, self.competitors)
