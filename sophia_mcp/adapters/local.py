"""Embedded backends with no store tables of their own: the lexicon analyst, the outbox notifier, and web
search switched off."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from sophia_mcp.analysis.insights import local_insights
from sophia_mcp.domain.calls import Call, Transcript
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.results import CallInsights
from sophia_mcp.domain.web import Recency, WebAnswer
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.errors import ConfigurationError

log = logging.getLogger(__name__)


class LocalAnalyst:
    """Deterministic analysis: VADER sentiment, configured competitor aliases, phrase-based risk factors."""

    name = "local"

    def __init__(self, competitors: Sequence[Competitor]) -> None:
        self.competitors = list(competitors)

    async def read_call(self, call: Call, transcript: Transcript) -> CallInsights:
        return local_insights(call, transcript, self.competitors)


class LocalNotifier:
    """Delivers into the store: the outbox entry itself is the delivered message, shown by `list_alerts`."""

    name = "local"

    async def send(self, alert: Alert) -> str:
        log.info("Alert for %s: %s", alert.channel, alert.title)
        return f"local:{uuid.uuid4().hex[:12]}"

    async def already_sent(self, alert: Alert) -> str | None:
        return None  # delivery and its record are one store transaction: nothing can be half-sent


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


class MemoryCache:
    """The embedded cache: values in this process, each until its time is up, the oldest dropped past `size`."""

    name = "memory"

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._items) >= self.size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (time.monotonic() + ttl_s, value)
