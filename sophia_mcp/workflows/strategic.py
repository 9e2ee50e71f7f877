"""The strategic query: one question asked of the warehouse, the calls, the knowledge base and the web at once.

Each source runs in parallel within its own time budget; an answer is kept in the cache for a while (in the
process, or in Redis shared by replicas), so the same question again is answered at once. A source that fails
or runs out of time leaves a named gap instead of failing the answer. The result is an evidence bundle with
numbered citations (W warehouse, C calls, K knowledge, X web) for a synthesis to quote; the server adds the
synthesis, from the client's own model (MCP sampling) or the configured OpenAI-compatible model, when one is
available.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
from pydantic import Field

from sophia_mcp.analysis.results import CallAnalysis
from sophia_mcp.errors import InvalidInput, SophiaError
from sophia_mcp.model import Model
from sophia_mcp.runs import describe_error
from sophia_mcp.services import Services
from sophia_mcp.workflows import analytics
from sophia_mcp.workflows.knowledge import search as search_knowledge

SourceName = Literal["warehouse", "calls", "knowledge", "web"]
SOURCES: tuple[SourceName, ...] = ("warehouse", "calls", "knowledge", "web")
QUOTE_CHARS = 400
CALLS_CITED = 8
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


class Evidence(Model):
    question: str
    sources: list[SourceReport]
    citations: list[Citation]
    gaps: list[str] = Field(description="Sources that could not answer, with why.")
    seconds: float


def _cite(letter: str, source: SourceName, items: list[tuple[str, str, str]]) -> list[Citation]:
    return [
        Citation(id=f"{letter}{n}", source=source, title=title, locator=locator, quote=quote[:QUOTE_CHARS])
        for n, (title, locator, quote) in enumerate(items, 1)
    ]


def _rows_text(result: analytics.TableResult, rows: int = 10) -> str:
    lines = [", ".join(result.columns)]
    lines += [", ".join("" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v) for v in r)
              for r in result.rows[:rows]]  # fmt: skip
    return "\n".join(lines)


async def from_warehouse(services: Services, question: str, client_id: str | None) -> list[Citation]:
    args = analytics.MetricArgs(client_id=client_id)
    names = ["at_risk_clients", "revenue_by_segment", "competitor_mentions", "health_trend"]
    results: dict[str, analytics.TableResult] = {}

    async def one(name: str) -> None:
        results[name] = await analytics.run_metric(services, name, args, limit=20)

    async with anyio.create_task_group() as group:
        for name in names:
            group.start_soon(one, name)
    return _cite("W", "warehouse", [
        (analytics.METRICS[n].description, f"metric:{n}", _rows_text(results[n])) for n in names if results[n].rows
    ])  # fmt: skip


async def from_calls(services: Services, question: str, client_id: str | None) -> list[Citation]:
    words = question.casefold()
    named = [c.name for c in services.settings.competitors if any(n.casefold() in words for n in c.names)]
    sql = "SELECT call_id, client_id, started, analysis FROM call_analyses WHERE (? IS NULL OR client_id = ?) "
    sql += "ORDER BY started DESC LIMIT 200"
    rows = (await services.warehouse.read(sql, [client_id, client_id], services.settings.analytics.timeout_s)).rows
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


async def from_knowledge(services: Services, question: str, client_id: str | None) -> list[Citation]:
    hits = await search_knowledge(services, question, limit=5)
    return _cite("K", "knowledge", [(h.citation, f"kb://documents/{h.document_id}", h.text) for h in hits])


async def from_web(services: Services, question: str, client_id: str | None) -> list[Citation]:
    answer = await services.web.search(question, recency="month", max_results=5)
    return _cite("X", "web", [(r.title, r.url, r.snippet) for r in answer.results])


Source = Callable[[Services, str, str | None], Awaitable[list[Citation]]]
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

    async def ask(name: SourceName) -> None:
        began = time.perf_counter()
        key = (
            "strategic:"
            + hashlib.sha256(f"{name}\n{' '.join(question.casefold().split())}\n{client_id or ''}".encode()).hexdigest()
        )
        kept = await cache.get(key)
        cached = [Citation.model_validate(c) for c in json.loads(kept)] if kept else None
        reason = None
        if cached is None:
            with anyio.move_on_after(settings.source_budget_s) as scope:
                try:
                    cached = await ASK[name](services, question, client_id)
                    await cache.put(key, json.dumps([c.model_dump() for c in cached]), settings.cache_ttl_s)
                except SophiaError as exc:
                    reason = str(exc)
                except Exception as exc:  # one source's bug is a gap in the answer, not a failed answer
                    reason = describe_error(exc)
            if scope.cancelled_caught:
                reason = f"no answer within its {settings.source_budget_s:g} s budget"
            hit = False
        else:
            hit = True
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
        question=question, sources=ordered, citations=[c for n in wanted for c in found[n]],
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
