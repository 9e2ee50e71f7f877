"""The embedded default for web search: none. Searching says how to turn a real one on."""

from __future__ import annotations

from sophia_mcp.domain.web import Recency, WebAnswer
from sophia_mcp.errors import ConfigurationError


class NoWebSearch:
    """The embedded default: no web search. Says how to turn it on."""

    name = "off"

    async def search(
        self, query: str, *, recency: Recency | None = None, max_results: int = 5, news: bool = False
    ) -> WebAnswer:
        raise ConfigurationError(
            "Web search is not configured: set SOPHIA_WEB_SEARCH__BACKEND=tavily with SOPHIA_TAVILY__API_KEY, or "
            "=perplexity with SOPHIA_PERPLEXITY__API_KEY"
        )
