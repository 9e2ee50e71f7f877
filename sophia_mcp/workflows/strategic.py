"""The strategic query: one question asked of the warehouse, the calls, the knowledge base and the web at once.

Each source runs in parallel within its own time budget; an answer is kept in the cache for a while (in the
process, or in Redis shared by replicas), so the same question again is answered at once. A source that fails
or runs out of time leaves a named gap instead of failing the answer. The result is an evidence bundle with
numbered citations (W warehouse, C calls, K knowledge, X web), and a synthesis that quotes them, written by the
first model given that can (the client's own through MCP sampling, then the configured one), or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal

import anyio
from pydantic import Field

from sophia_mcp.adapters import warehouse_sql
from sophia_mcp.analysis.competitors import find_in_text
from sophia_mcp.analysis.health import format_threshold
from sophia_mcp.analysis.question import Period, Topic, find_client, read_period, topics_of
from sophia_mcp.app.services import Services
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.results import CallAnalysis
from sophia_mcp.domain.strategic import SOURCES, SourceName
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.domain.web import Recency
from sophia_mcp.domain.writing import UnusableAnswer, WriterName, WritingRequest
from sophia_mcp.errors import InvalidInput, SophiaError
from sophia_mcp.ports.writer import Writer
from sophia_mcp.store.runs import describe_error
from sophia_mcp.workflows import analytics
from sophia_mcp.workflows.knowledge import search as search_knowledge
from sophia_mcp.workflows.runs import start_run

log = logging.getLogger(__name__)

QUOTE_CHARS = 400
CALLS_CITED = 8
DEFAULT_DAYS = 90  # the window of a question that names none
DEFAULT_METRICS = ("at_risk_clients", "revenue_by_segment", "competitor_mentions", "health_trend")
METRIC_OF_TOPIC: dict[Topic, str] = {
    "risk": "at_risk_clients", "revenue": "revenue_by_segment", "competitors": "competitor_mentions",
    "trend": "health_trend",
}  # fmt: skip
# What each metric's citation is titled: whose numbers, over which window (the trend's and mentions'), or now.
METRIC_TITLES = {
    "at_risk_clients": "Clients under the health threshold of {threshold} now, lowest first",
    "client_health": "Health{whose} now (threshold {threshold}), with segment, ARR and CSM",
    "health_trend": "Health by day{whose}, {period}",
    "revenue_by_segment": "ARR by segment now, with the ARR of clients under the threshold of {threshold}",
    "competitor_mentions": "Competitors named on calls{whose}, {period}",
}
ANSWER_TOKENS = 800
ANSWER_INSTRUCTIONS = (
    "Answer the question in a few short paragraphs for an executive. Cite every claim with its id, e.g. [W1]. "
    "Say plainly what the evidence does not show, and name any source that was not available."
)


class Citation(Model):
    id: str = Field(description="W1, C2, K3, X1: the source's letter and a number, to quote in the answer.")
    source: SourceName
    title: str
    locator: str = Field(description="Where it is: a resource URI, a metric, or a web address.")
    quote: str


class SourceReport(Model):
    source: SourceName
    status: Literal["ok", "gap"]
    reason: str | None = Field(description="Why it is a gap: not configured, an error, or out of time.")
    seconds: float
    cached: bool
    citations: list[str] = Field(description="The ids of this source's citations.")


class QuestionScope(Model):
    """What the question was read as; the warehouse's numbers and the calls cited are chosen and narrowed by it."""

    client_id: str | None = Field(description="The client the question names (or the one asked for).")
    client_name: str | None
    period: str = Field(description="The window the trend, mentions and calls cover, e.g. 'the last 14 days'.")
    since: datetime
    until: datetime | None = Field(description="The window's end, excluded; null: up to now.")
    period_asked: bool = Field(description="False when the question names no period: the default window.")
    competitors: list[str] = Field(description="The competitors the question names.")
    metrics: list[str] = Field(description="The warehouse metrics cited, chosen from the question.")


class Evidence(Model):
    question: str
    scope: QuestionScope
    sources: list[SourceReport]
    citations: list[Citation]
    gaps: list[str] = Field(description="Sources that could not answer, with why.")
    seconds: float


def _cite(letter: str, source: SourceName, items: list[tuple[str, str, str]]) -> list[Citation]:
    return [
        Citation(id=f"{letter}{n}", source=source, title=title, locator=locator, quote=quote[:QUOTE_CHARS])
        for n, (title, locator, quote) in enumerate(items, 1)
    ]


def choose_metrics(client: bool, topics: set[Topic], period_named: bool) -> list[str]:
    """The metrics that answer a question: a named client's own numbers; else those of the topics it asks
    about (a named period asks for the trend); all of them for a general question."""
    if client:
        return ["client_health", "health_trend", "competitor_mentions"]
    asked = [name for topic, name in METRIC_OF_TOPIC.items() if topic in topics]
    if period_named and "health_trend" not in asked:
        asked.append("health_trend")
    return asked or list(DEFAULT_METRICS)


async def read_question(services: Services, question: str, client_id: str | None, now: datetime) -> QuestionScope:
    """The client (the one given, else the one the question names), period and competitors of a question, and
    the metrics that answer it."""
    if client_id is None:
        client = find_client(question, await services.clients.ids_and_names())
    else:
        found = await services.clients.get_client(client_id)
        client = (client_id, found.name if found else client_id)
    named = read_period(question, now)
    period = named or Period(now - timedelta(days=DEFAULT_DAYS), None, f"the last {DEFAULT_DAYS} days")
    competitors = [name for name, _ in find_in_text(question, services.settings.competitors)]
    topics = topics_of(question)
    if competitors:
        topics.add("competitors")
    return QuestionScope(
        client_id=client and client[0], client_name=client and client[1], period=period.label,
        since=period.since, until=period.until, period_asked=named is not None, competitors=competitors,
        metrics=choose_metrics(client is not None, topics, named is not None),
    )  # fmt: skip


def _value(v: object) -> str:
    return "" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def _rows_text(result: analytics.TableResult, rows: int = 10) -> str:
    return "\n".join([", ".join(result.columns)] + [", ".join(_value(v) for v in r) for r in result.rows[:rows]])


def _recent_text(result: analytics.TableResult) -> tuple[str, int]:
    """Rows that come newest first, as many of the newest as a quote holds, oldest of them first; and how many."""
    lines = [", ".join(result.columns)]
    shown: list[str] = []
    for row in result.rows:
        line = ", ".join(_value(v) for v in row)
        if sum(len(x) + 1 for x in [*lines, *shown, line]) > QUOTE_CHARS:
            break
        shown.append(line)
    return "\n".join(lines + shown[::-1]), len(shown)


def _metric_citation(
    name: str, result: analytics.TableResult, scope: QuestionScope, threshold: float
) -> tuple[str, str, str] | None:
    """A metric's (title, locator, quote), narrowed to the scope; None when it has nothing to say."""
    whose = f" of {scope.client_name}" if scope.client_name else ""
    title = METRIC_TITLES[name].format(whose=whose, threshold=format_threshold(threshold), period=scope.period)
    rows = result.rows
    if name == "competitor_mentions" and scope.competitors:
        rows = [r for r in rows if r[0] in scope.competitors]
        if not rows:
            named = " or ".join(scope.competitors)
            return title, f"metric:{name}", f"No call{whose} in {scope.period} named {named}."
    if not rows:
        return None
    narrowed = result.model_copy(update={"rows": rows})
    if name == "health_trend":
        quote, shown = _recent_text(narrowed)
        if shown < len(rows):
            title += f" (the {shown} most recent of {len(rows)}{'+' if result.truncated else ''} days with scores)"
        return title, f"metric:{name}", quote
    return title, f"metric:{name}", _rows_text(narrowed)


async def from_warehouse(services: Services, question: str, scope: QuestionScope) -> list[Citation]:
    args = analytics.MetricArgs(client_id=scope.client_id, since=scope.since, until=scope.until)
    results: dict[str, analytics.TableResult] = {}
    refused: dict[str, SophiaError] = {}

    async def one(name: str) -> None:
        # Every day of the trend's window (newest first), to say how many there are beside the newest quoted.
        limit = analytics.ROW_LIMIT if name == "health_trend" else 20
        try:
            results[name] = await analytics.run_metric(services, name, args, limit=limit)
        except SophiaError as exc:  # a metric this warehouse cannot answer leaves the others standing
            refused[name] = exc

    async with anyio.create_task_group() as group:
        for name in scope.metrics:
            group.start_soon(one, name)
    if refused and not results:
        raise next(iter(refused.values()))
    for name, exc in refused.items():
        log.warning("The strategic query's metric %s could not be read: %s", name, exc)
    threshold = services.settings.health.threshold
    cited = [_metric_citation(n, results[n], scope, threshold) for n in scope.metrics if n in results]
    return _cite("W", "warehouse", [c for c in cited if c is not None])


async def from_calls(services: Services, question: str, scope: QuestionScope) -> list[Citation]:
    named = scope.competitors
    until = iso(scope.until) if scope.until else None
    params = [scope.client_id, scope.client_id, iso(scope.since), until, until]
    rows = (
        await services.warehouse.read(warehouse_sql.ANALYSES_IN_PERIOD, params, services.settings.analytics.timeout_s)
    ).rows
    naming: list[tuple[str, str, str]] = []
    others: list[tuple[str, str, str]] = []
    for call_id, _, started, raw in rows:
        analysis = CallAnalysis.model_validate_json(raw if isinstance(raw, str) else json.dumps(raw))
        mentions = [m for m in analysis.competitor_mentions if m.competitor in named] or analysis.competitor_mentions
        parts = [f"sentiment {analysis.sentiment.label} ({analysis.sentiment.external:+.2f})"]
        parts += [f'{m.competitor}: "{m.text}"' for m in mentions[:2]]
        parts += [f'risk {r.kind}: "{r.text}"' for r in analysis.risk_factors[:2]]
        item = (f"Call {call_id} on {str(started)[:10]}", f"gong://calls/{call_id}", "; ".join(parts))
        # Calls naming the competitors the question names come first; then the most recent others.
        (naming if any(m.competitor in named for m in analysis.competitor_mentions) else others).append(item)
    items = (naming + others)[:CALLS_CITED]
    return _cite("C", "calls", items)


async def from_knowledge(services: Services, question: str, scope: QuestionScope) -> list[Citation]:
    hits = await search_knowledge(services, question, limit=5)
    return _cite("K", "knowledge", [(h.citation, f"kb://documents/{h.document_id}", h.text) for h in hits])


def _recency(scope: QuestionScope, now: datetime) -> Recency | None:
    """How recent web results should be: news of the window asked (of the last month by default)."""
    if not scope.period_asked:
        return "month"
    days = (now - scope.since).days
    windows: list[tuple[Recency, int]] = [("day", 1), ("week", 7), ("month", 31), ("year", 366)]
    return next((recency for recency, most in windows if days <= most), None)


async def from_web(services: Services, question: str, scope: QuestionScope) -> list[Citation]:
    answer = await services.web.search(question, recency=_recency(scope, utcnow()), max_results=5)
    return _cite("X", "web", [(r.title, r.url, r.snippet) for r in answer.results])


Source = Callable[[Services, str, QuestionScope], Awaitable[list[Citation]]]
ASK: dict[SourceName, Source] = {
    "warehouse": from_warehouse, "calls": from_calls, "knowledge": from_knowledge, "web": from_web,
}  # fmt: skip


async def gather_evidence(
    services: Services, question: str, client_id: str | None = None, sources: list[SourceName] | None = None
) -> Evidence:
    if not question.strip():
        raise InvalidInput("The question is empty; ask what you want to know")
    settings = services.settings.strategic
    wanted = list(dict.fromkeys(sources or SOURCES))
    cache = services.cache
    started = time.perf_counter()
    reports: dict[str, SourceReport] = {}
    found: dict[str, list[Citation]] = {}
    reading = await read_question(services, question, client_id, utcnow())
    # The healing watch pauses a source whose service has an open incident: it is a gap until the incident closes.
    paused = await services.incidents.active_targets("pause_source")

    async def ask(name: SourceName) -> None:
        began = time.perf_counter()
        key = (
            "strategic:"
            + hashlib.sha256(f"{name}\n{' '.join(question.casefold().split())}\n{client_id or ''}".encode()).hexdigest()
        )
        kept = None if name in paused else await cache.get(key)
        cached = [Citation.model_validate(c) for c in json.loads(kept)] if kept else None
        reason = "paused while an incident on its service lasts (sophia://incidents)" if name in paused else None
        if cached is None and reason is None:
            with anyio.move_on_after(settings.source_budget_s) as scope:
                try:
                    cached = await ASK[name](services, question, reading)
                    await cache.put(key, json.dumps([c.model_dump() for c in cached]), settings.cache_ttl_s)
                except SophiaError as exc:
                    reason = str(exc)
                except Exception as exc:  # one source's bug is a gap in the answer, not a failed answer
                    reason = describe_error(exc)
            if scope.cancelled_caught:
                reason = f"no answer within its {settings.source_budget_s:g} s budget"
            hit = False
        else:
            hit = reason is None
        found[name] = cached or []
        reports[name] = SourceReport(
            source=name, status="gap" if reason else "ok", reason=reason, seconds=round(time.perf_counter() - began, 3),
            cached=hit, citations=[c.id for c in found[name]],
        )  # fmt: skip

    async with anyio.create_task_group() as group:
        for name in wanted:
            group.start_soon(ask, name)
    ordered = [reports[n] for n in wanted]
    return Evidence(
        question=question, scope=reading, sources=ordered, citations=[c for n in wanted for c in found[n]],
        gaps=[f"{r.source}: {r.reason}" for r in ordered if r.status == "gap"],
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


def synthesis_prompt(evidence: Evidence) -> str:
    lines = [f"Question: {evidence.question}", "", "Evidence (quote the ids in brackets):"]
    for c in evidence.citations:
        lines.append(f"[{c.id}] {c.title} ({c.locator}): {c.quote}")
    if evidence.gaps:
        lines += ["", "Not available: " + "; ".join(evidence.gaps)]
    lines += ["", ANSWER_INSTRUCTIONS]
    return "\n".join(lines)


def synthesis_request(evidence: Evidence) -> WritingRequest:
    """What a model is asked to write the answer from the evidence."""
    return WritingRequest(synthesis_prompt(evidence), max_tokens=ANSWER_TOKENS)


class StrategicAnswer(Model):
    answer: str | None = Field(description="The synthesis, citing evidence ids; null when no model is available.")
    synthesized_by: WriterName | None = Field(
        description="sampling: the client's own model; openai: the configured OpenAI-compatible model."
    )
    evidence: Evidence


async def gather_recorded(
    services: Services, question: str, client_id: str | None = None, sources: list[SourceName] | None = None
) -> Evidence:
    """The evidence for a question, its gathering recorded as a run of the strategic query."""
    async with start_run(
        services.runs, "strategic_query", client_id, {"question": question, "sources": sources}
    ) as run:
        evidence = await gather_evidence(services, question, client_id, sources)
        run.output = {"citations": len(evidence.citations)}
    return evidence


async def synthesize(evidence: Evidence, writers: Sequence[Writer]) -> StrategicAnswer:
    """The answer written from the evidence by the first of `writers` that can; none when no writer can, or when
    there is no evidence to write from (the evidence then stands alone)."""
    if evidence.citations:
        request = synthesis_request(evidence)
        for writer in writers:
            try:
                answer = await writer.write(request)
            except UnusableAnswer as exc:
                log.warning("The %s model could not write the strategic answer: %s", writer.name, exc)
                continue
            return StrategicAnswer(answer=answer, synthesized_by=writer.name, evidence=evidence)
    return StrategicAnswer(answer=None, synthesized_by=None, evidence=evidence)


async def strategic_query(
    services: Services,
    question: str,
    client_id: str | None = None,
    sources: list[SourceName] | None = None,
    writers: Sequence[Writer] = (),
) -> StrategicAnswer:
    """Gather the evidence for a question (recorded as a run) and have the first of `writers` that can answer it."""
    evidence = await gather_recorded(services, question, client_id, sources)
    return await synthesize(evidence, writers)
