"""The `Analyst` port on the connected MCP client's own model, through sampling (`sampling/createMessage`).

Used only when the client declared the sampling capability; it is asked the same question as the OpenAI analyst
and must answer with the same JSON, which is validated and checked against the transcript. Anything else (no
sampling, a declined request, prose instead of JSON) leaves the call to the fallback analyst, with the reason.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from typing import Any

from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import SamplingMessage, TextContent

from sophia_mcp.adapters.model_analyst import ModelAnalyst
from sophia_mcp.analysis.model_reading import SYSTEM_PROMPT, ModelReading, UnusableAnswer
from sophia_mcp.ports.analyst import Analyst
from sophia_mcp.settings import Competitor

SCHEMA_NOTE = "\n\nAnswer with one JSON object and nothing else, matching this JSON schema:\n{schema}"
MAX_TOKENS = 4000
FENCED = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


def _json_of(text: str) -> str:
    """The JSON object in a model's answer, which may come fenced as a code block."""
    fenced = FENCED.search(text)
    return fenced.group(1) if fenced else text.strip()


class SamplingAnalyst(ModelAnalyst):
    name = "sampling"

    def __init__(
        self,
        session: Any | None,
        competitors: Sequence[Competitor],
        fallback: Analyst,
        max_chars: int,
    ) -> None:
        super().__init__(competitors, fallback, max_chars)
        self.session = session  # None when the client does not offer sampling

    async def ask(self, prompt: str) -> ModelReading:
        if self.session is None:
            raise UnusableAnswer("the client does not offer sampling")
        names = ", ".join(c.name for c in self.competitors)
        schema = json.dumps(ModelReading.model_json_schema())
        with warnings.catch_warnings():
            # Deprecated at the 2026-07-28 revision, still how handshake-era clients lend their model.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            result = await self.session.create_message(
                messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
                system_prompt=SYSTEM_PROMPT.format(competitors=names) + SCHEMA_NOTE.format(schema=schema),
                max_tokens=MAX_TOKENS,
                temperature=0,
            )
        content = result.content
        if not isinstance(content, TextContent):
            raise UnusableAnswer("the client's model answered with something other than text")
        if getattr(result, "stop_reason", None) == "maxTokens":
            raise UnusableAnswer("the answer was cut off (maxTokens)")
        return ModelReading.model_validate(json.loads(_json_of(content.text)))
