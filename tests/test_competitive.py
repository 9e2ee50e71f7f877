"""Competitive intelligence: an insight per competitor and day in the knowledge base (what the web says and
what clients said on calls), the same day again changes nothing, and new news alerts #competitive-intel once."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.times import utcnow
from sophia_mcp.servers.composite import create_server
from sophia_mcp.workflows.competitive import competitive_intelligence
from tests.fakes import web_search
from tests.fakes.web_search import WebState
from tests.support.results import structured
from tests.support.settings import make_settings, with_web
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio


def intel_alerts(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        rows = conn.execute("SELECT json_extract(payload, '$.text') FROM outbox WHERE target = '#competitive-intel'")
        return [r[0] for r in rows]


async def test_insights_land_in_the_knowledge_base_once_a_day(data_dir: Path, tavily: tuple[str, WebState]) -> None:
    url, _ = tavily
    async with Client(create_server(with_web(data_dir, url))) as client:
        for call_id in newest_call_ids(data_dir, 40):
            structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
        first = structured(await client.call_tool("competitive_intelligence", {}))
        again = structured(await client.call_tool("competitive_intelligence", {}))
        search = {"query": "AppFolio minimum monthly fee news", "types": ["competitor_insight"]}
        found = structured(await client.call_tool("knowledge_search_documents", search))
    names = [c["competitor"] for c in first["competitors"]]
    assert names == ["AppFolio", "Yardi", "RealPage", "Buildium", "Entrata"]
    appfolio = first["competitors"][0]
    assert appfolio["web"] == "ok" and appfolio["news"][0]["url"] == "https://news.example.com/appfolio-pricing"
    assert [c["document_id"] for c in again["competitors"]] == [c["document_id"] for c in first["competitors"]]
    assert found["hits"][0]["document_id"] == appfolio["document_id"]
    assert any(c["mentions"] > 0 for c in first["competitors"])
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        kept = conn.execute("SELECT count(*) FROM documents WHERE type = 'competitor_insight'").fetchone()[0]
    assert kept == 5 and len(intel_alerts(data_dir)) == sum(1 for c in first["competitors"] if c["alert"])


async def test_new_news_alerts_once_and_web_off_is_noted(
    data_dir: Path, tavily: tuple[str, WebState], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = tavily
    services = build_services(with_web(data_dir, url))
    try:
        yesterday = (utcnow() - timedelta(days=1)).date()
        await competitive_intelligence(services, yesterday)
        fresh: dict[str, Any] = {"title": "AppFolio acquires a screening company",
                                 "url": "https://news.example.com/appfolio-acquires",
                                 "content": "AppFolio property management adds tenant screening.",
                                 "published_date": "2026-11-24"}  # fmt: skip
        monkeypatch.setattr(web_search, "PAGES", [fresh, *web_search.PAGES])
        today = await competitive_intelligence(services)
        again = await competitive_intelligence(services)
    finally:
        await services.aclose()
        services.close()
    appfolio = today.competitors[0]
    assert any("1 new news item: AppFolio acquires" in s for s in appfolio.significant)
    assert appfolio.alert == "delivered" and again.competitors[0].alert is not None
    assert sum("AppFolio is moving" in t or "AppFolio:" in t for t in intel_alerts(data_dir)) == 1

    off = build_services(make_settings(data_dir))
    try:
        quiet = await competitive_intelligence(off)
    finally:
        off.close()
    assert all(c.web.startswith("Web search is not configured") and c.news == [] for c in quiet.competitors)
