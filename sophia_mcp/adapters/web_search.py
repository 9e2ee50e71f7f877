"""The `WebSearch` port on Tavily's search API and on Perplexity's sonar chat completions, over the shared HTTP
layer.

Perplexity's API is OpenAI-compatible, but its citations and search results are extra fields of the answer;
one POST through `ServiceClient` reads them directly and gets the shared pacing, retries and redaction.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from sophia_mcp.adapters.http import ServiceClient
from sophia_mcp.domain.web import Recency, WebAnswer, WebResult
from sophia_mcp.errors import ConfigurationError, RateLimited
from sophia_mcp.settings import PerplexitySettings, TavilySettings

# Tavily's answers for a plan's or an account's limits (not retryable: wait for the plan, or add credits).
PLAN_LIMITS = {432: "the plan's limit", 433: "the account's credits"}


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _client(service: str, settings: TavilySettings | PerplexitySettings, transport: Any) -> ServiceClient:
    if settings.api_key is None:
        raise ConfigurationError(f"{service} web search needs SOPHIA_{service.upper()}__API_KEY")
    key = settings.api_key.get_secret_value()
    headers = {"Authorization": f"Bearer {key}"}
    return ServiceClient(service, settings, headers=headers, secrets=[key], transport=transport)


class _HTTPSearch:
    """A web search spoken over the shared HTTP layer with a Bearer key."""

    service = ""

    def __init__(
        self, settings: TavilySettings | PerplexitySettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.http = _client(self.service, settings, transport)

    async def aclose(self) -> None:
        await self.http.aclose()


class TavilySearch(_HTTPSearch):
    name = "tavily"
    service = "Tavily"

    async def search(
        self, query: str, *, recency: Recency | None = None, max_results: int = 5, news: bool = False
    ) -> WebAnswer:
        body: dict[str, Any] = {
            "query": query, "topic": "news" if news else "general", "search_depth": "basic",
            "max_results": max(1, min(max_results, 20)), "include_answer": True, "include_raw_content": False,
        }  # fmt: skip
        if recency:
            body["time_range"] = recency
        response, data = await self.http.request("POST", "/search", json=body, ok=PLAN_LIMITS)
        if response.status_code in PLAN_LIMITS:
            raise RateLimited(f"Tavily refused the search: {PLAN_LIMITS[response.status_code]} is used up")
        results = [
            WebResult(
                title=str(r.get("title") or r.get("url")), url=str(r.get("url")), snippet=str(r.get("content") or ""),
                published=_day(r.get("published_date")), score=r.get("score"),
            )
            for r in (data or {}).get("results") or []
            if r.get("url")
        ]  # fmt: skip
        return WebAnswer(query=query, provider=self.name, answer=(data or {}).get("answer"), results=results)


class PerplexitySearch(_HTTPSearch):
    name = "perplexity"
    service = "Perplexity"
    model = "sonar"

    async def search(
        self, query: str, *, recency: Recency | None = None, max_results: int = 5, news: bool = False
    ) -> WebAnswer:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": "Answer briefly and factually, citing sources."},
                {"role": "user", "content": query},
            ],
            "return_related_questions": False,
        }
        if recency:
            body["search_recency_filter"] = recency
        _, data = await self.http.request("POST", "/chat/completions", json=body)
        data = data or {}
        choices = data.get("choices") or [{}]
        answer = ((choices[0] or {}).get("message") or {}).get("content")
        found = data.get("search_results") or [{"title": url, "url": url} for url in data.get("citations") or []]
        results = [
            WebResult(title=str(r.get("title") or r.get("url")), url=str(r.get("url")), published=_day(r.get("date")))
            for r in found[:max_results]
            if r.get("url")
        ]
        return WebAnswer(query=query, provider=self.name, answer=answer, results=results)
