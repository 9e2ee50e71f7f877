"""The client's own model through MCP sampling, on both protocol eras (asked mid-call on a 2025-11-25 session, in
`InputRequiredResult` rounds on 2026-07-28): used when offered, validated, read in parts, never required, and the
analysis names the analyst that really read the call."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.calls import Transcript
from sophia_mcp.servers.gong import create_server
from tests.fakes.openai import read_transcript
from tests.support.exports import CALL
from tests.support.results import structured
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio
Mode = Literal["auto", "legacy"]
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])


def client_model(answer: str | None = None) -> tuple[Any, list[CreateMessageRequestParams]]:
    """A sampling callback standing in for the client's model: reads the transcript it is sent, or says `answer`."""
    asked: list[CreateMessageRequestParams] = []

    async def sample(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        asked.append(params)
        prompt = params.messages[-1].content.text  # type: ignore[union-attr]
        text = answer if answer is not None else "```json\n" + json.dumps(read_transcript(prompt)) + "\n```"
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=text), model="client-llm")

    return sample, asked


async def analyse(
    data_dir: Path, backend: str, sampling: Any | None, mode: Mode = "legacy", call_id: str = CALL, **settings: Any
) -> dict[str, Any]:
    config = make_settings(data_dir, analyst={"backend": backend}, **settings)
    async with Client(create_server(config), mode=mode, sampling_callback=sampling) as client:
        return structured(await client.call_tool("analyze_call", {"call_id": call_id}))["analysis"]


@MODES
async def test_the_clients_model_reads_the_call(imported: Path, mode: Mode) -> None:
    sample, asked = client_model()
    analysis = await analyse(imported, "sampling", sample, mode)
    assert analysis["analyst"] == "sampling" and analysis["fallback_reason"] is None
    assert [m["competitor"] for m in analysis["competitor_mentions"]] == ["AppFolio"]
    assert {"pricing", "churn_intent"} <= {r["kind"] for r in analysis["risk_factors"]}
    assert analysis["talk"]["internal_ms"] == 12000
    [params] = asked
    assert "JSON schema" in (params.system_prompt or "") and params.max_tokens > 0


@MODES
async def test_prose_instead_of_json_falls_back_and_says_who_read_it(imported: Path, mode: Mode) -> None:
    sample, _ = client_model("The client seems unhappy about pricing.")
    analysis = await analyse(imported, "sampling", sample, mode)
    assert analysis["analyst"] == "local"
    assert analysis["fallback_reason"] == "sampling: the answer was not the JSON asked for"
    assert {"pricing", "churn_intent"} <= {r["kind"] for r in analysis["risk_factors"]}


@MODES
async def test_sampling_chosen_but_not_offered_is_read_locally_never_reported_as_sampling(
    imported: Path,
    mode: Mode,
) -> None:
    analysis = await analyse(imported, "sampling", None, mode)
    assert analysis["analyst"] == "local"
    assert analysis["fallback_reason"] == "sampling: the client does not offer sampling"


@MODES
async def test_auto_prefers_the_clients_model_when_offered(imported: Path, mode: Mode) -> None:
    sample, _ = client_model()
    assert (await analyse(imported, "auto", sample, mode))["analyst"] == "sampling"
    auto_alone = await analyse(imported, "auto", None, mode)
    assert auto_alone["analyst"] == "local" and auto_alone["fallback_reason"] is None


def longest_call(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return str(conn.execute("SELECT call_id FROM transcripts ORDER BY sentence_count DESC LIMIT 1").fetchone()[0])


@MODES
async def test_a_long_call_is_read_in_parts_all_asked_at_once(data_dir: Path, mode: Mode) -> None:
    sample, asked = client_model()
    call_id = longest_call(data_dir)
    analysis = await analyse(data_dir, "sampling", sample, mode, call_id, openai={"max_input_chars": 2000})
    assert analysis["analyst"] == "sampling" and analysis["fallback_reason"] is None
    prompts = [p.messages[-1].content.text for p in asked]  # type: ignore[union-attr]
    assert 2 <= len(prompts) <= 4 and all(f"of {len(prompts)})" in p for p in prompts)
    assert all(len(p) < 2600 for p in prompts)


async def keep_a_long_call(data_dir: Path, times: int) -> str:
    """A copy of the demo's longest call whose transcript is said `times` over, kept in the store; its id."""
    services = build_services(make_settings(data_dir))
    try:
        source = longest_call(data_dir)
        call, transcript = await services.calls.get_call(source), await services.calls.get_transcript(source)
        span = max(s.end_ms for m in transcript.monologues for s in m.sentences)
        monologues = [
            m.model_copy(update={"sentences": [
                s.model_copy(update={"start_ms": s.start_ms + n * span, "end_ms": s.end_ms + n * span})
                for s in m.sentences
            ]})
            for n in range(times) for m in transcript.monologues
        ]  # fmt: skip
        long_id = "9" * 19
        long_call = call.model_copy(update={"id": long_id, "duration_s": call.duration_s * times})
        long_transcript = Transcript(call_id=long_id, monologues=monologues)
        await services.local_calls.keep(long_call, long_transcript, "local")
    finally:
        services.close()
    return long_id


@MODES
async def test_a_call_too_long_for_the_parts_asked_is_read_locally(data_dir: Path, mode: Mode) -> None:
    sample, asked = client_model()
    call_id = await keep_a_long_call(data_dir, 3)  # 9 parts of 2,000 characters
    analysis = await analyse(data_dir, "sampling", sample, mode, call_id, openai={"max_input_chars": 2000})
    assert asked == [] and analysis["analyst"] == "local"
    assert analysis["fallback_reason"] == (
        "sampling: the transcript is 9 parts of 2000 characters, over the 4 asked at most"
    )
