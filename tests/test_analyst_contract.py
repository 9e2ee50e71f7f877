"""The Analyst contract, on the local lexicon analyst and on the OpenAI-compatible one against its fake: a reading
whose every quote is a transcript sentence, whose competitors are configured ones, and whose risks are the
client's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sophia_mcp.adapters.gong_payloads import parse_call, parse_transcript
from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS
from sophia_mcp.ports.analyst import Analyst
from tests.fakes.openai import API_KEY, OpenAIState, openai_app
from tests.fakes.server import serve
from tests.support.exports import EXPORT
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["local", "openai"])
async def analyst(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Analyst]:
    if request.param == "local":
        services = build_services(make_settings(tmp_path))
        yield services.analyst
        services.close()
        return
    with serve(openai_app(OpenAIState())) as url:
        openai = {"api_key": API_KEY, "base_url": f"{url}/v1", "model": "gpt-test"}
        services = build_services(make_settings(tmp_path, analyst={"backend": "openai"}, openai=openai))
        yield services.analyst
        await services.aclose()
        services.close()


def the_call() -> tuple[Call, Transcript]:
    calls = json.loads((EXPORT / "calls_extensive.json").read_text())["calls"]
    transcripts = json.loads((EXPORT / "calls_transcript.json").read_text())["callTranscripts"]
    parsed = parse_call(calls[0])
    call = parsed.call.model_copy(update={"client_id": parsed.account.id, "client_name": parsed.account.name})
    return call, parse_transcript(transcripts[0])


async def test_contract_reading(analyst: Analyst) -> None:
    call, transcript = the_call()
    insights = await analyst.read_call(call, transcript)
    sentences = {(m.speaker_id, s.text, s.start_ms) for m in transcript.monologues for s in m.sentences}
    assert insights.fallback_reason is None
    assert -1 <= insights.sentiment.overall <= 1 and insights.sentiment.label == "negative"
    assert {s.speaker_id for s in insights.sentiment.speakers} <= {m.speaker_id for m in transcript.monologues}
    for quote in [*insights.competitor_mentions, *insights.risk_factors]:
        assert (quote.speaker_id, quote.text, quote.at_ms) in sentences
    assert {m.competitor for m in insights.competitor_mentions} == {"AppFolio"}
    assert {m.competitor for m in insights.competitor_mentions} <= {c.name for c in DEFAULT_COMPETITORS}
    assert all(r.affiliation != "Internal" for r in insights.risk_factors)
    assert {"pricing", "churn_intent", "competitor_evaluation"} <= {r.kind for r in insights.risk_factors}


async def test_contract_empty_transcript(analyst: Analyst) -> None:
    call, _ = the_call()
    insights = await analyst.read_call(call, Transcript(call_id=call.id, monologues=[]))
    assert insights.competitor_mentions == [] and insights.risk_factors == []
    assert insights.sentiment.label == "neutral"
