"""Competitive intelligence: for each competitor, what the web says and what clients say on calls, kept as an
insight in the knowledge base; a significant change alerts the competitive-intel channel.

Per competitor and day: recent news from web search (when configured; otherwise noted), and the mentions on
calls of the last `window_days` beside the window before. The insight is one knowledge-base document per
competitor and day (type `competitor_insight`, tagged with the competitor), so search finds it and a second
run the same day changes nothing. A change is significant when mentions at least double (and are at least
`min_mentions`), or when the web has news the previous insight did not; each alert is sent once per day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

from pydantic import Field

from sophia_mcp.app.services import Services
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.times import utcnow
from sophia_mcp.domain.web import WebResult
from sophia_mcp.domain.weights import Competitor
from sophia_mcp.errors import SophiaError
from sophia_mcp.ports.progress import Progress
from sophia_mcp.workflows.alerts import send_alert
from sophia_mcp.workflows.knowledge import ingest_text
from sophia_mcp.workflows.runs import no_progress, start_run

WINDOW_DAYS = 14
MIN_MENTIONS = 3
QUOTES = 3


class CompetitorInsight(Model):
    competitor: str
    mentions: int = Field(description="Mentions on calls in the last window.")
    mentions_before: int = Field(description="Mentions in the window before it.")
    clients: int
    news: list[WebResult]
    web: str = Field(description="ok, or why there is no news (web search off or failing).")
    significant: list[str] = Field(description="What changed enough to alert; empty when nothing did.")
    document_id: str
    alert: str | None = Field(description="The alert's delivery status, when one was sent.")


class IntelReport(Model):
    run_id: str
    day: date
    competitors: list[CompetitorInsight]


async def _mentions(
    services: Services, competitor: str, start: datetime, end: datetime
) -> tuple[int, int, list[tuple[str, str]]]:
    """Mentions, clients, and a few quotes (call title, words) of `competitor` on calls started in [start, end)."""
    mentions, clients, analyses = await services.competition.mentions(competitor, start, end, QUOTES)
    said = []
    for title, analysis in analyses:
        said += [(title, m.text) for m in analysis.competitor_mentions if m.competitor == competitor][:1]
    return mentions, clients, said


async def _news(services: Services, competitor: Competitor) -> tuple[list[WebResult], str]:
    try:
        answer = await services.web.search(f"{competitor.name} property management software news", recency="week",
                                           news=True, max_results=5)  # fmt: skip
    except SophiaError as exc:
        return [], str(exc)
    return answer.results, "ok"


def _document(competitor: str, day: date, counts: tuple[int, int, int], said: list[tuple[str, str]],
              news: list[WebResult], web: str) -> str:  # fmt: skip
    mentions, before, clients = counts
    lines = [f"# Competitive insight: {competitor}, {day.isoformat()}", "", "## On our calls", "",
             f"{plural(mentions, 'mention')} on calls with {plural(clients, 'client')} in the last {WINDOW_DAYS} days "
             f"({before} in the {WINDOW_DAYS} days before)."]  # fmt: skip
    lines += [f'- {title}: "{text}"' for title, text in said]
    lines += ["", "## In the news", ""]
    if news:
        lines += [f"- {r.title} ({r.published or 'undated'}): {r.snippet} <{r.url}>" for r in news]
    else:
        lines.append(f"No news read: {web}" if web != "ok" else "Nothing new this week.")
    return "\n".join(lines)


async def competitive_intelligence(
    services: Services, day: date | None = None, progress: Progress | None = None
) -> IntelReport:
    """For each configured competitor: the week's news and what clients said on calls, kept as an insight document,
    and an alert when something changed significantly; `progress` hears of each competitor in turn."""
    report_progress = progress or no_progress
    now = utcnow()
    day = day or now.date()
    end = now if day >= now.date() else datetime.combine(day + timedelta(days=1), time(), UTC)
    window = timedelta(days=WINDOW_DAYS)
    async with start_run(services.runs, "competitive_intelligence", day.isoformat(), {"day": day.isoformat()}) as run:
        insights = []
        competitors = services.settings.competitors
        for n, competitor in enumerate(competitors):
            await report_progress(n, len(competitors), f"reading the news and calls about {competitor.name}")
            mentions, clients, said = await _mentions(services, competitor.name, end - window, end)
            before, _, _ = await _mentions(services, competitor.name, end - 2 * window, end - window)
            news, web = await run.step(f"news {competitor.name}", partial(_news, services, competitor))
            slug = competitor.name.casefold().replace(" ", "-")
            previous = await services.competition.previous_insight(slug, day)
            known_urls = set()
            if previous is not None:
                chunks = await services.documents.chunks(previous)
                known_urls = {r.url for r in news if any(r.url in c.text for c in chunks)}
            significant = []
            if mentions >= MIN_MENTIONS and mentions >= 2 * max(before, 1):
                significant.append(f"mentions on calls {before} -> {mentions} in {WINDOW_DAYS} days")
            fresh = [r for r in news if r.url not in known_urls]
            if fresh and previous is not None:
                significant.append(f"{plural(len(fresh), 'new news item')}: {fresh[0].title}")
            document_id = f"intel-{slug}-{day.isoformat()}"
            text = _document(competitor.name, day, (mentions, before, clients), said, news, web)
            title = f"Competitive insight: {competitor.name}, {day.isoformat()}"
            await ingest_text(
                services, title, text, document_id=document_id, type="competitor_insight", tags=[slug], doc_date=day
            )
            alert = None
            if significant:
                sent = await send_alert(
                    services, f"{competitor.name}: " + "; ".join(significant) + f". Insight: kb://documents/{document_id}",
                    severity="warning", topic="competitive", title=f"{competitor.name} is moving",
                    key=f"competitive:{slug}:{day.isoformat()}",
                )  # fmt: skip
                alert = sent.entry.status
            insights.append(CompetitorInsight(
                competitor=competitor.name, mentions=mentions, mentions_before=before, clients=clients, news=news,
                web=web, significant=significant, document_id=document_id, alert=alert,
            ))  # fmt: skip
        run.output = {"competitors": len(insights), "alerts": sum(1 for i in insights if i.alert)}
    await report_progress(len(insights), max(len(insights), 1), "done")
    return IntelReport(run_id=run.id, day=day, competitors=insights)


def summary(report: IntelReport) -> dict[str, Any]:
    return {"day": report.day.isoformat(), "competitors": len(report.competitors),
            "alerts": [i.competitor for i in report.competitors if i.alert]}  # fmt: skip
