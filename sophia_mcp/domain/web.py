"""The `WebSearch` port: a question to the web, answered with results that cite their pages (Tavily or
Perplexity). Unconfigured, web search is off: `search` says so, and the strategic query reports the gap."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

Recency = Literal["day", "week", "month", "year"]


class WebResult(Model):
    title: str
    url: str
    snippet: str = ""
    published: date | None = None
    score: float | None = None


class WebAnswer(Model):
    query: str
    provider: str
    answer: str | None = Field(default=None, description="The provider's own short answer, when it gives one.")
    results: list[WebResult]
