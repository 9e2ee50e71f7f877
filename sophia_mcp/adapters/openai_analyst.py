"""The `Analyst` port on an OpenAI-compatible chat model with structured outputs.

The model answers in a JSON schema made from a pydantic model; `base_url` makes the same code serve OpenAI,
Azure OpenAI or a local OpenAI-compatible server. Chunking, checking and falling back are `ModelAnalyst`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sophia_mcp.adapters.model_analyst import ModelAnalyst
from sophia_mcp.analysis.model_reading import SYSTEM_PROMPT, ModelReading, UnusableAnswer
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.errors import ConfigurationError, ServiceUnavailable
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.settings import OpenAISettings

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class OpenAIAnalyst(ModelAnalyst):
    name = "openai"

    def __init__(self, settings: OpenAISettings, competitors: Sequence[Competitor], fallback: Analyst) -> None:
        if settings.api_key is None:
            raise ConfigurationError("The openai analyst needs SOPHIA_OPENAI__API_KEY (and SOPHIA_OPENAI__BASE_URL).")
        super().__init__(competitors, fallback, settings.max_input_chars)
        # Imported here: the openai package takes most of a second to import, paid only when it is configured.
        from openai import AsyncOpenAI

        self.settings = settings
        self.client: AsyncOpenAI = AsyncOpenAI(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,  # the client's own retry of 408/429/5xx; no second loop on top
        )
        self._secret = settings.api_key.get_secret_value()

    async def aclose(self) -> None:
        await self.client.close()

    async def check(self) -> str:
        """The configured model exists and the key may use it, for `doctor`."""
        try:
            await self.client.models.retrieve(self.settings.model)
        except Exception as exc:
            raise ServiceUnavailable(f"OpenAI-compatible API: {self.reason(exc)}") from None
        return f"the model {self.settings.model!r} at {self.settings.base_url} answers"

    async def ask(self, prompt: str) -> ModelReading:
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

    def reason(self, exc: Exception) -> str:
        import openai

        if isinstance(exc, openai.LengthFinishReasonError):
            text = "the answer was cut off (finish_reason length)"
        elif isinstance(exc, openai.ContentFilterFinishReasonError):
            text = "the answer was withheld by the content filter"
        elif isinstance(exc, openai.APIStatusError):
            text = f"HTTP {exc.status_code} {type(exc).__name__}"
        else:
            text = super().reason(exc)
        return text.replace(self._secret, "***")
