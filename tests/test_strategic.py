"""The strategic query: four sources at once, a named gap for one that fails or is slow, cached answers, a
synthesis from the client's model that cites the evidence; and the web-search adapters on their fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from sophia_mcp.adapters.web_search import PerplexitySearch, TavilySearch
from sophia_mcp.errors import ConfigurationError, RateLimited
from sophia_mcp.servers.composite import create_server
from sophia_mcp.settings import PerplexitySettings, RedisSettings, TavilySettings
from tests.conftest import make_settings, with_web
from tests.fakes.server import serve
from tests.fakes.web_search import PERPLEXITY_KEY, TAVILY_KEY, WebState, perplexity_app, tavily_app
from tests.mcp_helpers import newest_call_ids, structured

pytestmark = pytest.mark.anyio
QUESTION = "Which clients are at risk, and what is AppFolio doing on pricing?"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def analyse_some_calls(client: Client, data_dir: Path) -> None:
    for call_id in newest_call_ids(data_dir, 10):
        structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))


async def test_four_sources_answer_with_citations_and_the_second_ask_is_cached(
    data_dir: Path, tavily: tuple[str, WebState]
) -> None:
    url, state = tavily
    async with Client(create_server(with_web(data_dir, url))) as client:
        await analyse_some_calls(client, data_dir)
        first = structured(await client.call_tool("strategic_query", {"question": QUESTION}))
        again = structured(await client.call_tool("strategic_query", {"question": QUESTION}))
    evidence = first["evidence"]
    assert [s["status"] for s in evidence["sources"]] == ["ok"] * 4 and evidence["gaps"] == []
    letters = {c["id"][0] for c in evidence["citations"]}
    assert letters == {"W", "C", "K", "X"}
    web = [c for c in evidence["citations"] if c["source"] == "web"]
    assert web[0]["locator"].startswith("https://news.example.com/")
    assert first["answer"] is None and first["synthesized_by"] is None  # no sampling, no model configured
    assert all(s["cached"] for s in again["evidence"]["sources"]) and len(state.requests) == 1


async def test_a_failing_source_is_a_named_gap_not_a_failed_answer(
    data_dir: Path, tavily: tuple[str, WebState]
) -> None:
    url, state = tavily
    state.faults = ["500"]
    async with Client(create_server(with_web(data_dir, url))) as client:
        result = structured(await client.call_tool("strategic_query", {"question": QUESTION}))
    evidence = result["evidence"]
    [web] = [s for s in evidence["sources"] if s["source"] == "web"]
    assert web["status"] == "gap" and "Tavily" in web["reason"] and evidence["gaps"] == [f"web: {web['reason']}"]
    assert {s["source"] for s in evidence["sources"] if s["status"] == "ok"} == {"warehouse", "calls", "knowledge"}


async def test_a_slow_source_runs_out_of_its_budget_and_the_rest_answer(
    data_dir: Path, tavily: tuple[str, WebState]
) -> None:
    url, state = tavily
    state.delay_s = 1.5
    async with Client(create_server(with_web(data_dir, url, source_budget_s=0.3))) as client:
        # The first search loads the embedding model, which may itself take longer than 0.3 s: not what is tested.
        await client.call_tool("strategic_query", {"question": QUESTION, "sources": ["knowledge"]})
        result = structured(
            await client.call_tool("strategic_query", {"question": QUESTION, "sources": ["web", "knowledge"]})
        )
    evidence = result["evidence"]
    assert evidence["gaps"] == ["web: no answer within its 0.3 s budget"]
    assert evidence["seconds"] < 1.0 and next(c["source"] for c in evidence["citations"]) == "knowledge"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_clients_model_writes_the_answer_from_the_evidence(data_dir: Path, mode: str) -> None:
    prompts: list[str] = []

    async def sample(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        prompt = params.messages[0].content.text  # type: ignore[union-attr]
        prompts.append(prompt)
        return CreateMessageResult(
            role="assistant", model="client-llm",
            content=TextContent(type="text", text="AppFolio undercuts small portfolios [K1]; web not available."),
        )  # fmt: skip

    async with Client(create_server(make_settings(data_dir)), mode=mode, sampling_callback=sample) as client:
        result = structured(await client.call_tool("strategic_query", {"question": QUESTION}))
    assert result["synthesized_by"] == "sampling" and "[K1]" in result["answer"]
    assert "[K1]" in prompts[0] and "Not available: web: Web search is not configured" in prompts[0]


async def test_tavily_and_perplexity_adapters_on_their_fakes() -> None:
    state = WebState()
    with serve(tavily_app(state)) as t_url, serve(perplexity_app(state)) as p_url:
        tavily = TavilySearch(TavilySettings(base_url=t_url, api_key=TAVILY_KEY, max_retries=1, retry_base_s=0.01))
        perplexity = PerplexitySearch(PerplexitySettings(base_url=p_url, api_key=PERPLEXITY_KEY))
        wrong = TavilySearch(TavilySettings(base_url=t_url, api_key="tvly-wrong-1234", max_retries=0))
        try:
            state.faults = ["429"]  # paced and retried
            news = await tavily.search("AppFolio pricing", recency="week", news=True, max_results=2)
            state.faults = ["432"]
            with pytest.raises(RateLimited, match="plan's limit"):
                await tavily.search("AppFolio pricing")
            with pytest.raises(ConfigurationError, match="refused the credentials"):
                await wrong.search("AppFolio")
            answer = await perplexity.search("Yardi Breeze resident app", recency="month")
        finally:
            for adapter in (tavily, perplexity, wrong):
                await adapter.aclose()
    assert news.results[0].url == "https://news.example.com/appfolio-pricing" and news.results[0].published
    assert news.answer and state.requests[1]["time_range"] == "week" and state.requests[1]["topic"] == "news"
    assert answer.provider == "perplexity" and "resident mobile app" in (answer.answer or "")
    assert answer.results[0].url == "https://news.example.com/yardi-breeze-app"


async def test_replicas_share_answers_through_redis(
    data_dir: Path, tavily: tuple[str, WebState], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fakeredis
    from redis.asyncio import Redis

    from sophia_mcp.wiring import build_services
    from sophia_mcp.workflows.strategic import gather_evidence

    server = fakeredis.FakeServer()
    monkeypatch.setattr(
        Redis, "from_url", classmethod(lambda cls, url, **kw: fakeredis.FakeAsyncRedis(server=server, **kw))
    )
    url, state = tavily
    settings = with_web(data_dir, url).model_copy(update={"redis": RedisSettings(url="redis://127.0.0.1:6390/0")})
    one, two = build_services(settings), build_services(settings)
    try:
        first = await gather_evidence(one, QUESTION)
        second = await gather_evidence(two, QUESTION)
    finally:
        for services in (one, two):
            await services.aclose()
            services.close()
    assert not any(s.cached for s in first.sources) and all(s.cached for s in second.sources)
    assert [c.id for c in second.citations] == [c.id for c in first.citations] and len(state.requests) == 1


async def test_redis_down_is_a_cache_miss_not_a_failure(data_dir: Path, tavily: tuple[str, WebState]) -> None:
    from sophia_mcp.wiring import build_services
    from sophia_mcp.workflows.strategic import gather_evidence

    url, state = tavily
    settings = with_web(data_dir, url).model_copy(update={"redis": RedisSettings(url="redis://127.0.0.1:1/0")})
    services = build_services(settings)
    try:
        answers = [await gather_evidence(services, QUESTION) for _ in range(2)]
    finally:
        await services.aclose()
        services.close()
    assert all(a.gaps == [] and not any(s.cached for s in a.sources) for a in answers) and len(state.requests) == 2


async def test_the_configured_model_writes_the_answer_when_the_client_cannot(data_dir: Path) -> None:
    from tests.fakes.openai import API_KEY, OpenAIState, openai_app

    state = OpenAIState()
    with serve(openai_app(state)) as url:
        settings = make_settings(data_dir, openai={"api_key": API_KEY, "base_url": f"{url}/v1", "max_retries": 0})
        async with Client(create_server(settings)) as client:
            result = structured(await client.call_tool("strategic_query", {"question": QUESTION}))
    assert result["synthesized_by"] == "openai" and result["answer"].startswith("From the evidence [W1]")
    assert "[K1]" in state.requests[-1]["messages"][-1]["content"]
