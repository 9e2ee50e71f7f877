"""What a model is asked to write, and the one way its answer can fail: the records of the `Writer` port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

# Who writes, as results name it: the client's own model (MCP sampling), or the configured OpenAI-compatible one.
WriterName = Literal["sampling", "openai"]


@dataclass(frozen=True)
class WritingRequest:
    """One request to a model: the prompt, its instructions, and the answer's size and shape."""

    prompt: str
    system: str | None = None
    max_tokens: int = 800
    temperature: float | None = None
    # When set, the answer is one JSON object of this schema (structured outputs, or asked for in the system prompt).
    answer_schema: type[BaseModel] | None = None


class UnusableAnswer(Exception):
    """The model answered, but not with something that can be used; the message says why, safe to store and show.
    `service` names the model's API when it was the API that failed (the healing watch groups by it)."""

    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service
