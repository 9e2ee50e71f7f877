"""The `Writer` port on the connected MCP client's own model, through sampling (`sampling/createMessage`).

A tool's questions are asked before its body runs: `sample_of` turns each `WritingRequest` into the SDK's `Sample`,
the MCP surface hands them to the SDK's resolvers (asked mid-call on a 2025-11-25 session, all in one
`InputRequiredResult` round on 2026-07-28), and this writer hands out the answers, by prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from mcp.server.mcpserver import Sample
from mcp_types import CreateMessageResult, SamplingMessage, TextContent

from sophia_mcp.domain.writing import UnusableAnswer, WriterName, WritingRequest

SCHEMA_NOTE = "\n\nAnswer with one JSON object and nothing else, matching this JSON schema:\n{schema}"
FENCED = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


def json_of(text: str) -> str:
    """The JSON object in a model's answer, which may come fenced as a code block."""
    fenced = FENCED.search(text)
    return fenced.group(1) if fenced else text.strip()


def sample_of(request: WritingRequest) -> Sample:
    """The sampling request for `request`, rendered the same way on every retry round; a schema is asked for in the
    system prompt, as sampling has no structured outputs."""
    system = request.system
    if request.answer_schema is not None:
        note = SCHEMA_NOTE.format(schema=json.dumps(request.answer_schema.model_json_schema()))
        system = (system or "") + note
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=request.prompt))],
        system_prompt=system,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
    )


def prompt_of(sample: Sample) -> str:
    """The user message of a request made by `sample_of`."""
    content = sample.params.messages[-1].content
    assert isinstance(content, TextContent)
    return content.text


class SampledWriter:
    """The client's model, as the answers it gave to the requests asked before the tool ran."""

    name: WriterName = "sampling"

    def __init__(self, answers: Mapping[str, CreateMessageResult], unavailable: str | None = None) -> None:
        self.answers = answers  # the client's answer to each request, by the request's prompt
        self.unavailable = unavailable  # why the client's model was not asked, when it was not

    async def write(self, request: WritingRequest) -> str:
        if self.unavailable is not None:
            raise UnusableAnswer(self.unavailable)
        result = self.answers.get(request.prompt)
        if result is None:
            raise UnusableAnswer("the question changed while the client's model answered it")
        content = result.content
        if not isinstance(content, TextContent):
            raise UnusableAnswer("the client's model answered with something other than text")
        if request.answer_schema is None:
            if not content.text.strip():
                raise UnusableAnswer("the client's model answered with nothing")
            return content.text.strip()
        # Prose cut short is still an answer; JSON cut short is not.
        if result.stop_reason == "maxTokens":
            raise UnusableAnswer("the answer was cut off (maxTokens)")
        return json_of(content.text)
