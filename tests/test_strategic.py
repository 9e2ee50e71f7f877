"""The strategic query: four sources at once, a named gap for one that fails or is slow, cached answers, a
synthesis from the client's model that cites the evidence; and the web-search adapters on their fakes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

from sophia_mcp.adapters.web_search import PerplexitySearch, TavilySearch
from sophia_mcp.app.backends import build_services
from sophia_mcp.errors import ConfigurationError, RateLimited
from sophia_mcp.servers.composite import create_server
from sophia_mcp.settings import PerplexitySettings, RedisSettings, TavilySettings
from sophia_mcp.workflows.strategic import gather_evidence
from tests.fakes.openai import API_KEY, OpenAIState, openai_app
from tests.fakes.server import serve
from tests.fakes.web_search import PERPLEXITY_KEY, TAVILY_KEY, WebState, perplexity_app, tavily_app
from tests.support.results import structured
from tests.support.settings import make_settings, with_web
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio
QUESTION = "Which clients are at risk, and what is AppFolio doing on pricing?"


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
    state.delay_s = 8  # far past the budget: were the answer to wait for the web, it would take this long
    async with Client(create_server(with_web(data_dir, url, source_budget_s=2))) as client:
        await client.call_tool("knowledge_search_documents", {"query": QUESTION})  # the model is loaded once
        result = structured(
            await client.call_tool("strategic_query", {"question": QUESTION, "sources": ["web", "knowledge"]})
        )
    evidence = result["evidence"]
    assert evidence["gaps"] == ["web: no answer within its 2 s budget"]
    assert evidence["seconds"] < state.delay_s and next(c["source"] for c in evidence["citations"]) == "knowledge"


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
    data_dir: Path, tavily: tuple[str, WebState], redis_url: str
) -> None:
    url, state = tavily
    settings = with_web(data_dir, url).model_copy(update={"redis": RedisSettings(url=redis_url)})
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
    state = OpenAIState()
    with serve(openai_app(state)) as url:
        settings = make_settings(data_dir, openai={"api_key": API_KEY, "base_url": f"{url}/v1", "max_retries": 0})
        async with Client(create_server(settings)) as client:
            result = structured(await client.call_tool("strategic_query", {"question": QUESTION}))
    assert result["synthesized_by"] == "openai" and result["answer"].startswith("From the evidence [W1]")
    assert "[K1]" in state.requests[-1]["messages"][-1]["content"]


def a_client_with_recent_calls(data_dir: Path, days: int) -> tuple[str, str, list[str]]:
    """The client with the most calls in the last `days`, its name, and every call of it, oldest first."""
    since = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        client_id, name = conn.execute(
            "SELECT client_id, client_name FROM calls WHERE started >= ? GROUP BY client_id "
            "ORDER BY count(*) DESC, client_id LIMIT 1",
            (since,),
        ).fetchone()
        calls = [r[0] for r in conn.execute("SELECT id FROM calls WHERE client_id = ? ORDER BY started", (client_id,))]
    return client_id, name, calls


def history_days(data_dir: Path, since: datetime, client_id: str | None = None) -> list[str]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return [r[0] for r in conn.execute(
            "SELECT DISTINCT DATE(as_of) FROM client_health_history WHERE as_of >= ? AND (? IS NULL OR client_id = ?) "
            "ORDER BY 1", (since.isoformat(), client_id, client_id),
        )]  # fmt: skip


def quoted_days(citation: dict[str, Any]) -> list[str]:
    return [line.split(",")[0] for line in citation["quote"].splitlines()[1:]]


async def test_a_named_client_and_period_narrow_the_evidence_to_them(data_dir: Path) -> None:
    client_id, name, calls = a_client_with_recent_calls(data_dir, 14)
    others = [c for c in newest_call_ids(data_dir, 40) if c not in calls]
    question = f"How is {name} doing over the last two weeks?"
    async with Client(create_server(make_settings(data_dir))) as client:
        for call_id in [*calls, *others[::-1]]:
            structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
        asked = datetime.now(UTC)
        evidence = structured(await client.call_tool("strategic_query", {"question": question}))["evidence"]
    scope, cited = evidence["scope"], {c["locator"]: c for c in evidence["citations"]}
    assert (scope["client_id"], scope["client_name"], scope["period"]) == (client_id, name, "the last 14 days")
    assert scope["metrics"] == ["client_health", "health_trend", "competitor_mentions"]
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        (score,) = conn.execute("SELECT score FROM client_health WHERE client_id = ?", (client_id,)).fetchone()
        names = [r[0] for r in conn.execute("SELECT name FROM clients WHERE id != ?", (client_id,))]
    health = cited["metric:client_health"]
    assert health["quote"].splitlines()[1:] and f"{name}," in health["quote"] and f", {score:.1f}," in health["quote"]
    assert not [n for n in names if n in " ".join(c["quote"] for c in cited.values())]  # only its numbers
    trend = cited["metric:health_trend"]
    # Every day of the last 14 with the client's health, up to its newest, and none of the 76 before them.
    days = history_days(data_dir, asked - timedelta(days=14), client_id)
    assert len(days) >= 2 and quoted_days(trend) == days and f"of {name}, the last 14 days" in trend["title"]
    called = [c["locator"].removeprefix("gong://calls/") for c in evidence["citations"] if c["source"] == "calls"]
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        recent = {r[0] for r in conn.execute(
            "SELECT id FROM calls WHERE client_id = ? AND started >= ?",
            (client_id, (asked - timedelta(days=14)).isoformat()),
        )}  # fmt: skip
    assert called and set(called) <= recent


async def test_the_trend_cites_the_newest_points_of_the_window(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        with sqlite3.connect(data_dir / "sophia.db") as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM calls ORDER BY started")]
        for call_id in ids:
            structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
        asked = datetime.now(UTC)
        answers = {
            question: structured(
                await client.call_tool("strategic_query", {"question": question, "sources": ["warehouse"]})
            )["evidence"]
            for question in ("How has health changed over the last 30 days?", "How is client health trending?")
        }
    for question, days_back in [("How has health changed over the last 30 days?", 30),
                                ("How is client health trending?", 90)]:  # fmt: skip
        evidence = answers[question]
        [trend] = [c for c in evidence["citations"] if c["locator"] == "metric:health_trend"]
        days = history_days(data_dir, asked - timedelta(days=days_back))
        shown = quoted_days(trend)
        # As many days as the quote holds, ending with the newest day scored: never the oldest of the window.
        assert len(shown) >= 10 and shown == days[-len(shown) :], (question, shown, days)
        assert evidence["scope"]["period"] == f"the last {days_back} days"
        assert len(days) <= len(shown) or f"most recent of {len(days)} days" in trend["title"]


async def test_a_question_about_a_competitor_cites_its_mentions(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        answers = [
            structured(await client.call_tool("strategic_query", {"question": q, "sources": ["warehouse"]}))["evidence"]
            for q in ("What is AppFolio doing this quarter?", "Are clients talking about Buildium or Yardi Breeze?")
        ]
    appfolio, others = answers
    assert appfolio["scope"]["competitors"] == ["AppFolio"] and appfolio["scope"]["period"] == "this quarter"
    assert appfolio["scope"]["metrics"] == ["competitor_mentions", "health_trend"]
    [mentions] = [c for c in appfolio["citations"] if c["locator"] == "metric:competitor_mentions"]
    assert [line.split(",")[0] for line in mentions["quote"].splitlines()[1:]] == ["AppFolio"]
    assert sorted(others["scope"]["competitors"]) == ["Buildium", "Yardi"]
    assert others["scope"]["metrics"] == ["competitor_mentions"]
