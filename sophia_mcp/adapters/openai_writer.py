"""The `Writer` port on an OpenAI-compatible chat model (the configured model).

`base_url` makes the same code serve OpenAI, Azure OpenAI or a local OpenAI-compatible server. An answer asked in a
schema uses structured outputs; every failure of the model or its API becomes an `UnusableAnswer` whose reason names
it without the key.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sophia_mcp.domain.writing import UnusableAnswer, WriterName, WritingRequest
from sophia_mcp.errors import ConfigurationError, ServiceUnavailable, of_service
from sophia_mcp.settings import OpenAISettings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

SERVICE = "OpenAI"  # named on its errors, as the HTTP layer names its services


class OpenAIWriter:
    name: WriterName = "openai"

    def __init__(self, settings: OpenAISettings) -> None:
        if settings.api_key is None:
            raise ConfigurationError("The openai model needs SOPHIA_OPENAI__API_KEY (and SOPHIA_OPENAI__BASE_URL).")
        self.settings = settings
        self._secret = settings.api_key.get_secret_value()
        self._client: AsyncOpenAI | None = None

    @property
    def client(self) -> AsyncOpenAI:
        """The API client, built on first use: the openai package takes most of a second to import."""
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                api_key=self._secret,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout_s,
                max_retries=self.settings.max_retries,  # the client's own retry of 408/429/5xx; no second loop on top
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def check(self) -> str:
        """The configured model exists and the key may use it, for `doctor`."""
        try:
            await self.client.models.retrieve(self.settings.model)
        except Exception as exc:
            raise of_service(ServiceUnavailable(f"OpenAI-compatible API: {self.reason(exc)}"), SERVICE) from None
        return f"the model {self.settings.model!r} at {self.settings.base_url} answers"

    async def write(self, request: WritingRequest) -> str:
        import openai

        messages: list[Any] = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": request.prompt})
        options: dict[str, Any] = {"model": self.settings.model, "messages": messages, "max_tokens": request.max_tokens}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        try:
            if request.answer_schema is None:
                completion = await self.client.chat.completions.create(**options)
            else:
                completion = await self.client.chat.completions.parse(response_format=request.answer_schema, **options)
        except (openai.OpenAIError, ValidationError, json.JSONDecodeError) as exc:
            raise UnusableAnswer(self.reason(exc), service=SERVICE) from None
        if not completion.choices:
            raise UnusableAnswer("the model gave no answer")
        choice = completion.choices[0]
        if request.answer_schema is not None and choice.finish_reason == "length":
            raise UnusableAnswer("the answer was cut off (finish_reason length)")
        if choice.message.refusal:
            raise UnusableAnswer("the model refused")
        text = (choice.message.content or "").strip()
        if not text:
            empty = "the answer had no parsable content" if request.answer_schema else "the answer was empty"
            raise UnusableAnswer(empty)
        return text

    def reason(self, exc: Exception) -> str:
        """Why a request failed, in words safe to store and show (never the key)."""
        import openai

        if isinstance(exc, openai.LengthFinishReasonError):
            text = "the answer was cut off (finish_reason length)"
        elif isinstance(exc, openai.ContentFilterFinishReasonError):
            text = "the answer was withheld by the content filter"
        elif isinstance(exc, openai.APIStatusError):
            text = f"HTTP {exc.status_code} {type(exc).__name__}"
        elif isinstance(exc, ValidationError | json.JSONDecodeError):
            text = "the answer was not the JSON asked for"
        else:
            text = type(exc).__name__
        return text.replace(self._secret, "***")
