"""The client's own model through MCP sampling: used when offered, validated, and never required."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from sophia_mcp.servers.gong import create_server
from tests.conftest import make_settings
from tests.fakes.openai import read_transcript
from tests.mcp_helpers import structured
from tests.test_gong_export import CALL
from tests.test_openai_analyst import imported  # noqa: F401  (fixture)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_model(answer: str | None = None) -> tuple[Any, list[CreateMessageRequestParams]]:
    """A sampling callback standing in for the client's model: reads the transcript it is sent, or says `answer`."""
    asked: list[CreateMessageRequestParams] = []

    async def sample(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        asked.append(params)
        prompt = params.messages[-1].content.text  # type: ignore[union-attr]
        text = answer if answer is not None else "```json\n" + json.dumps(read_transcript(prompt)) + "\n```"
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=text), model="client-llm")

    return sample, asked


async def analyse(data_dir: Path, backend: str, sampling: Any | None) -> dict[str, Any]:
    settings = make_settings(data_dir, analyst={"backend": backend})
    async with Client(create_server(settings), mode="legacy", sampling_callback=sampling) as client:
        return structured(await client.call_tool("analyze_call", {"call_id": CALL}))["analysis"]


async def test_the_clients_model_reads_the_call(imported: Path) -> None:  # noqa: F811
    sample, asked = client_model()
    analysis = await analyse(imported, "sampling", sample)
    assert analysis["analyst"] == "sampling" and analysis["fallback_reason"] is None
    assert [m["competitor"] for m in analysis["competitor_mentions"]] == ["AppFolio"]
    assert {"pricing", "churn_intent"} <= {r["kind"] for r in analysis["risk_factors"]}
    assert analysis["talk"]["internal_ms"] == 12000
    [params] = asked
    assert "JSON schema" in (params.system_prompt or "") and params.max_tokens > 0


async def test_prose_instead_of_json_falls_back(imported: Path) -> None:  # noqa: F811
    sample, _ = client_model("The client seems unhappy about pricing.")
    analysis = await analyse(imported, "sampling", sample)
    assert analysis["fallback_reason"] == "sampling: the answer was not the JSON asked for"
    assert {"pricing", "churn_intent"} <= {r["kind"] for r in analysis["risk_factors"]}


async def test_sampling_chosen_but_not_offered(imported: Path) -> None:  # noqa: F811
    analysis = await analyse(imported, "sampling", None)
    assert analysis["fallback_reason"] == "sampling: the client does not offer sampling"


async def test_auto_prefers_the_clients_model_when_offered(imported: Path) -> None:  # noqa: F811
    sample, _ = client_model()
    assert (await analyse(imported, "auto", sample))["analyst"] == "sampling"
    assert (await analyse(imported, "auto", None))["analyst"] == "local"
