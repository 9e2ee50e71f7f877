"""The `Writer` port in the strategic answer: the client's model first, then the configured one, then none; the
same on both protocol eras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from sophia_mcp.servers.composite import create_server
from tests.fakes.openai import API_KEY, OpenAIState, openai_app
from tests.fakes.server import serve
from tests.support.results import structured
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio
QUESTION = "Which clients are at risk, and what is AppFolio doing on pricing?"
ASK = {"question": QUESTION, "sources": ["warehouse", "knowledge"]}


def clients_model(text: str, stop_reason: str | None = None) -> Any:
    async def sample(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        content = TextContent(type="text", text=text)
        return CreateMessageResult(role="assistant", model="client-llm", content=content, stop_reason=stop_reason)

    return sample


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_configured_model_writes_when_the_clients_model_answers_with_nothing(
    data_dir: Path, mode: str
) -> None:
    state = OpenAIState()
    with serve(openai_app(state)) as url:
        settings = make_settings(data_dir, openai={"api_key": API_KEY, "base_url": f"{url}/v1", "max_retries": 0})
        async with Client(create_server(settings), mode=mode, sampling_callback=clients_model("  ")) as client:
            result = structured(await client.call_tool("strategic_query", ASK))
    assert result["synthesized_by"] == "openai" and result["answer"].startswith("From the evidence [W1]")
    assert len(state.requests) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_clients_answer_cut_short_in_prose_is_still_the_answer(data_dir: Path, mode: str) -> None:
    cut = "AppFolio undercuts small portfolios [K1], and"
    sample = clients_model(cut, stop_reason="maxTokens")
    async with Client(create_server(make_settings(data_dir)), mode=mode, sampling_callback=sample) as client:
        result = structured(await client.call_tool("strategic_query", ASK))
    assert result["synthesized_by"] == "sampling" and result["answer"] == cut


async def test_asked_not_to_synthesize_no_model_is_asked(data_dir: Path) -> None:
    state = OpenAIState()
    asked: list[object] = []

    async def sample(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        asked.append(params)
        raise AssertionError("the client's model was asked")

    with serve(openai_app(state)) as url:
        settings = make_settings(data_dir, openai={"api_key": API_KEY, "base_url": f"{url}/v1", "max_retries": 0})
        async with Client(create_server(settings), sampling_callback=sample) as client:
            result = structured(await client.call_tool("strategic_query", ASK | {"synthesize": False}))
    assert result["answer"] is None and result["synthesized_by"] is None and result["evidence"]["citations"]
    assert asked == [] and state.requests == []
