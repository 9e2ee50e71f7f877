"""A fake Slack Web API, per ../shared/apis/slack.md.

Bearer bot-token auth; every method answers HTTP 200 with `ok: false` and an error code on failure, except rate
limiting (429, `Retry-After`, `error: ratelimited`); chat.postMessage needs `text`, knows its channels by id
or `#name`, allows about one message per second per channel; conversations.list pages with `cursor`;
conversations.history returns messages with their metadata (a thread's replies, posted with `thread_ts`,
only in conversations.replies, as Slack does). Faults can be queued: 500, 429, slow,
"lost" (the message is posted, then the answer never arrives in time), and "leaky" (an error that quotes the token).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BOT_TOKEN = "xoxb-fake-0000-bot-token-value"
CHANNELS = {
    "C0HEALTH01": "client-health", "C0LEAD0001": "leadership", "C0RANDOM01": "random", "C0BUGS0001": "bugs",
}  # fmt: skip


@dataclass
class SlackState:
    messages: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    slow_seconds: float = 3.0
    per_channel_per_second: float = 1000.0
    retry_after: str = "1"
    calls: list[str] = field(default_factory=list)
    # People's messages by channel id, as conversations.history gives them (oldest first here), paged by `cursor`.
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    history_page: int = 1000
    history_faults: list[str] = field(default_factory=list)
    _last_post: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def posted_to(self, channel_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["channel"] == channel_id]


def _ok(**body: Any) -> JSONResponse:
    return JSONResponse({"ok": True, **body})


def _fail(error: str, status: int = 200, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": extra.pop("retry_after")} if "retry_after" in extra else None
    return JSONResponse({"ok": False, "error": error, **extra}, status, headers=headers)


def slack_app(state: SlackState) -> Starlette:
    async def arguments(request: Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            if request.headers.get("content-type", "").startswith("application/json"):
                args.update(await request.json())
            else:
                args.update(dict(await request.form()))
        return args

    def channel_id(value: str) -> str | None:
        if value in CHANNELS:
            return value
        name = value.lstrip("#")
        return next((cid for cid, n in CHANNELS.items() if n == name), None)

    async def guard(request: Request, method: str) -> Response | dict[str, Any]:
        state.calls.append(method)
        if request.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
            return _fail("invalid_auth")
        fault = state.next_fault() if method == "chat.postMessage" else None
        if fault == "500":
            return Response("upstream error", 500)
        if fault == "429":
            return _fail("ratelimited", 429, retry_after=state.retry_after)
        if fault == "slow":
            await anyio.sleep(state.slow_seconds)
        if fault == "leaky":  # a misbehaving proxy or API that quotes the request, credentials and all
            said = f"invalid_auth for {request.headers.get('authorization')}"
            return _fail(said, response_metadata={"messages": [f"[ERROR] token {BOT_TOKEN} is not allowed here"]})
        args = await arguments(request)
        args["_fault"] = fault
        return args

    async def post_message(request: Request) -> Response:
        args = await guard(request, "chat.postMessage")
        if isinstance(args, Response):
            return args
        if not args.get("text"):
            return _fail("no_text")
        cid = channel_id(str(args.get("channel", "")))
        if cid is None:
            return _fail("channel_not_found")
        now = time.monotonic()
        with state._lock:
            if now - state._last_post.get(cid, -1e9) < 1 / state.per_channel_per_second:
                return _fail("ratelimited", 429, retry_after=state.retry_after)
            state._last_post[cid] = now
            ts = f"{1700000000 + len(state.messages)}.{len(state.messages):06d}"
            message = {
                "type": "message",
                "channel": cid,
                "ts": ts,
                "text": args["text"],
                "blocks": args.get("blocks") or [],
                "metadata": args.get("metadata"),
            }
            if args.get("thread_ts"):
                message["thread_ts"] = str(args["thread_ts"])
            state.messages.append(message)
        if args["_fault"] == "lost":
            await anyio.sleep(state.slow_seconds)  # posted; the client gives up before the answer comes
        return _ok(channel=cid, ts=ts, message=message)

    async def conversations_list(request: Request) -> Response:
        args = await guard(request, "conversations.list")
        if isinstance(args, Response):
            return args
        items = sorted(CHANNELS.items())
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        chunk = items[start : start + min(limit, 2)]  # small pages, so clients must follow the cursor
        following = str(start + len(chunk)) if start + len(chunk) < len(items) else ""
        return _ok(
            channels=[{"id": cid, "name": name, "is_archived": False} for cid, name in chunk],
            response_metadata={"next_cursor": following},
        )

    def people_history(args: dict[str, Any]) -> Response:
        """Newest first, after `oldest` (exclusive) and up to `latest`, a page of `limit` (capped) per `cursor`."""
        with state._lock:
            fault = state.history_faults.pop(0) if state.history_faults else None
        if fault == "429":
            return _fail("ratelimited", 429, retry_after=state.retry_after)
        oldest, latest = Decimal(str(args.get("oldest") or 0)), Decimal(str(args.get("latest") or "9e12"))
        chosen = [m for m in state.history[args["channel"]] if oldest < Decimal(m["ts"]) <= latest]
        chosen.sort(key=lambda m: Decimal(m["ts"]), reverse=True)
        start, limit = int(args.get("cursor") or 0), min(int(args.get("limit") or 100), state.history_page)
        chunk = chosen[start : start + limit]
        more = start + limit < len(chosen)
        return _ok(messages=chunk, has_more=more, response_metadata={"next_cursor": str(start + limit) if more else ""})

    async def listing(request: Request, method: str) -> Response:
        """conversations.history (a channel's messages, newest first, thread replies left out) or
        conversations.replies (the replies in the thread of `ts`)."""
        args = await guard(request, method)
        if isinstance(args, Response):
            return args
        if method == "conversations.history" and args.get("channel") in state.history:
            return people_history(args)
        cid = channel_id(str(args.get("channel", "")))
        if cid is None or cid != args.get("channel"):
            return _fail("channel_not_found")
        if method == "conversations.replies":
            if not args.get("ts"):
                return _fail("thread_not_found")
            chosen = [m for m in state.posted_to(cid) if m.get("thread_ts") == args["ts"]]
        else:
            chosen = [m for m in reversed(state.posted_to(cid)) if m.get("thread_ts", m["ts"]) == m["ts"]]
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [{k: v for k, v in m.items() if k != "metadata" or with_metadata} for m in chosen]
        return _ok(messages=messages[: int(args.get("limit") or 100)], has_more=False)

    async def conversations_history(request: Request) -> Response:
        return await listing(request, "conversations.history")

    async def conversations_replies(request: Request) -> Response:
        return await listing(request, "conversations.replies")

    async def auth_test(request: Request) -> Response:
        args = await guard(request, "auth.test")
        if isinstance(args, Response):
            return args
        return _ok(team="Pay Ready", user="sophia", bot_id="B0SOPHIA")

    return Starlette(
        routes=[
            Route("/api/chat.postMessage", post_message, methods=["POST"]),
            Route("/api/conversations.list", conversations_list, methods=["GET", "POST"]),
            Route("/api/conversations.history", conversations_history, methods=["GET", "POST"]),
            Route("/api/conversations.replies", conversations_replies, methods=["GET", "POST"]),
            Route("/api/auth.test", auth_test, methods=["GET", "POST"]),
        ]
    )
