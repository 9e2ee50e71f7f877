"""The `WebSearch` port: a question to the web, answered with results that cite their pages (Tavily or
Perplexity). Unconfigured, web search is off: `search` says so, and the strategic query reports the gap."""

from __future__ import annotations

from typing import Protocol

from sophia_mcp.domain.web import Recency, WebAnswer


class WebSearch(Protocol):
    name: str

    async def search(
        self, query: str, *, recency: Recency | None = None, max_results: int = 5, news: bool = False
    ) -> WebAnswer: ...
