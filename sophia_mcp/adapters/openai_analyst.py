"""The `Analyst` port on the configured OpenAI-compatible model, with structured outputs.

How the model is asked is `OpenAIWriter`'s; reading in parts, checking and falling back are `ModelAnalyst`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from sophia_mcp.adapters.model_analyst import ModelAnalyst
from sophia_mcp.adapters.openai_writer import OpenAIWriter
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.errors import ConfigurationError
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.settings import OpenAISettings


class OpenAIAnalyst(ModelAnalyst):
    def __init__(self, settings: OpenAISettings, competitors: Sequence[Competitor], fallback: Analyst) -> None:
        if settings.api_key is None:
            raise ConfigurationError("The openai analyst needs SOPHIA_OPENAI__API_KEY (and SOPHIA_OPENAI__BASE_URL).")
        self.model = OpenAIWriter(settings)
        super().__init__(self.model, competitors, fallback, settings.max_input_chars)

    async def aclose(self) -> None:
        await self.model.aclose()

    async def check(self) -> str:
        """The configured model exists and the key may use it, for `doctor`."""
        return await self.model.check()
