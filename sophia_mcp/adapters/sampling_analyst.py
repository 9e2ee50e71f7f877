"""The `Analyst` port on the connected MCP client's own model, through sampling (`sampling/createMessage`).

The questions are asked before the analysis runs: `sampling_requests` turns the transcript into one `Sample` per
part, the MCP surface hands them to the SDK's resolvers (asked mid-call on a 2025-11-25 session, all in one
`InputRequiredResult` round on 2026-07-28), and this analyst reads the answers. It asks the same as the OpenAI
analyst and must be answered with the same JSON, which is validated and checked against the transcript. Anything
else (no sampling, a part without an answer, prose instead of JSON) leaves the call to the fallback analyst, with
the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from mcp.server.mcpserver import Sample
from mcp_types import CreateMessageResult, SamplingMessage, TextContent

from sophia_mcp.adapters.model_analyst import ModelAnalyst
from sophia_mcp.analysis.model_reading import (
    SYSTEM_PROMPT,
    ModelReading,
    UnusableAnswer,
    chunk_prompt,
    transcript_chunks,
)
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.ports.analyst import Analyst

SCHEMA_NOTE = "\n\nAnswer with one JSON object and nothing else, matching this JSON schema:\n{schema}"
MAX_TOKENS = 4000
# Parts of one transcript asked of the client's model at most (each MAX_INPUT_CHARS long); a longer call is read
# by the fallback analyst. The MCP surface declares one resolver per part.
MAX_PARTS = 4
FENCED = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


def _json_of(text: str) -> str:
    """The JSON object in a model's answer, which may come fenced as a code block."""
    fenced = FENCED.search(text)
    return fenced.group(1) if fenced else text.strip()


def sampling_requests(
    call: Call, transcript: Transcript, competitors: Sequence[Competitor], max_chars: int
) -> list[Sample]:
    """One sampling request per part of the transcript, each rendered the same way on every retry round."""
    names = ", ".join(c.name for c in competitors)
    system = SYSTEM_PROMPT.format(competitors=names) + SCHEMA_NOTE.format(
        schema=json.dumps(ModelReading.model_json_schema())
    )
    chunks = transcript_chunks(call, transcript, max_chars)
    prompts = [chunk_prompt(call, chunk, part, len(chunks)) for part, chunk in enumerate(chunks, 1)]
    return [
        Sample(
            [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            system_prompt=system,
            max_tokens=MAX_TOKENS,
            temperature=0,
        )
        for prompt in prompts
    ]


def prompt_of(request: Sample) -> str:
    """The user message of a request made by `sampling_requests`."""
    content = request.params.messages[-1].content
    assert isinstance(content, TextContent)
    return content.text


class SamplingAnalyst(ModelAnalyst):
    name = "sampling"

    def __init__(
        self,
        answers: Mapping[str, CreateMessageResult],
        competitors: Sequence[Competitor],
        fallback: Analyst,
        max_chars: int,
        unavailable: str | None = None,
    ) -> None:
        super().__init__(competitors, fallback, max_chars)
        self.answers = answers  # the client's answer to each part, by the part's prompt
        self.unavailable = unavailable  # why the client's model was not asked, when it was not

    async def ask(self, prompt: str) -> ModelReading:
        if self.unavailable is not None:
            raise UnusableAnswer(self.unavailable)
        result = self.answers.get(prompt)
        if result is None:
            raise UnusableAnswer("the transcript changed while the client's model read it")
        content = result.content
        if not isinstance(content, TextContent):
            raise UnusableAnswer("the client's model answered with something other than text")
        if result.stop_reason == "maxTokens":
            raise UnusableAnswer("the answer was cut off (maxTokens)")
        return ModelReading.model_validate(json.loads(_json_of(content.text)))
