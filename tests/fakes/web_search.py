"""Fakes of Tavily's search API and Perplexity's sonar chat completions, per ../shared/apis/web-search.md.

Bearer auth (401 with Tavily's `{"detail": {"error": ...}}`, or Perplexity's OpenAI-style error); Tavily's
request fields checked (max_results at most 20, topic and time_range from their sets) with 400 otherwise;
faults can be queued: "429" (with Retry-After), "432" (plan limit), "500"; every answer can be delayed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TAVILY_KEY = "tvly-fake-0000000000000000"
PERPLEXITY_KEY = "pplx-fake-0000000000000000"

PAGES = [
    {"title": "AppFolio raises prices for small portfolios", "url": "https://news.example.com/appfolio-pricing",
     "content": "AppFolio announced a new minimum monthly fee for portfolios under 50 units.",
     "published_date": "2026-11-20"},
    {"title": "Yardi Breeze adds resident app", "url": "https://news.example.com/yardi-breeze-app",
     "content": "Yardi Breeze now ships a resident mobile app with online rent payments.",
     "published_date": "2026-11-12"},
    {"title": "Property management software trends", "url": "https://blog.example.com/pm-trends",
     "content": "Operators consolidate onto fewer platforms; integrations and payments drive choices."},
]  # fmt: skip


@dataclass
class WebState:
    delay_s: float = 0.0
    faults: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None


def _matching(query: str) -> list[dict[str, Any]]:
    words = {w for w in query.casefold().split() if len(w) > 3}
    found = [p for p in PAGES if words & set((p["title"] + " " + p["content"]).casefold().split())]
    return found or PAGES[-1:]


async def _fault(state: WebState, body: dict[str, Any]) -> JSONResponse | None:
    state.requests.append(body)
    if state.delay_s:
        await anyio.sleep(state.delay_s)
    fault = state.next_fault()
    if fault == "429":
        return JSONResponse({"detail": {"error": "Rate limit exceeded"}}, 429, headers={"Retry-After": "0"})
    if fault == "432":
        return JSONResponse({"detail": {"error": "This request exceeds your plan's set usage limit."}}, 432)
    if fault == "500":
        return JSONResponse({"detail": {"error": "Internal error"}}, 500)
    return None


def tavily_app(state: WebState) -> Starlette:
    async def search(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TAVILY_KEY}":
            return JSONResponse({"detail": {"error": "Unauthorized: missing or invalid API key."}}, 401)
        body = await request.json()
        if (answer := await _fault(state, body)) is not None:
            return answer
        problems = []
        if not isinstance(body.get("query"), str) or not body["query"].strip():
            problems.append("query is required")
        if not 0 < int(body.get("max_results", 5)) <= 20:
            problems.append("max_results must be between 1 and 20")
        if body.get("topic", "general") not in ("general", "news"):
            problems.append("topic must be general or news")
        if body.get("time_range") not in (None, "day", "week", "month", "year"):
            problems.append("time_range must be day, week, month or year")
        if problems:
            return JSONResponse({"detail": {"error": "; ".join(problems)}}, 400)
        pages = _matching(body["query"])[: int(body.get("max_results", 5))]
        results = [
            {k: v for k, v in p.items() if k != "published_date" or body.get("topic") == "news"}
            | {"score": 0.9 - i / 10}
            for i, p in enumerate(pages)
        ]
        answer = pages[0]["content"] if body.get("include_answer") else None
        return JSONResponse({"query": body["query"], "answer": answer, "results": results, "response_time": 0.1})

    return Starlette(routes=[Route("/search", search, methods=["POST"])])


def perplexity_app(state: WebState) -> Starlette:
    async def completions(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {PERPLEXITY_KEY}":
            error = {"message": "Invalid API key", "type": "invalid_request_error", "code": 401}
            return JSONResponse({"error": error}, 401)
        body = await request.json()
        if (answer := await _fault(state, body)) is not None:
            return answer
        if body.get("model") not in ("sonar", "sonar-pro") or not body.get("messages"):
            return JSONResponse({"error": {"message": "model and messages are required", "code": 400}}, 400)
        question = body["messages"][-1]["content"]
        pages = _matching(question)
        return JSONResponse({
            "id": "fake-1", "model": body["model"], "object": "chat.completion", "created": 0,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"{pages[0]['content']} [1]"}}],
            "citations": [p["url"] for p in pages],
            "search_results": [{"title": p["title"], "url": p["url"], "date": p.get("published_date")} for p in pages],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        })  # fmt: skip

    return Starlette(routes=[Route("/chat/completions", completions, methods=["POST"])])
