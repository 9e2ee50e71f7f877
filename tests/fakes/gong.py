"""A fake Gong API v2 that behaves like the real one, per ../shared/apis/gong.md.

Basic auth with an access key and secret (401 otherwise); POST /v2/calls/extensive and /v2/calls/transcript
with `filter` (fromDateTime, toDateTime, callIds) and `cursor` in the body; pages of at most `page_size`;
404 with an `errors` entry when a filter matches nothing; a request-rate limit answered with 429 and
`Retry-After`; every answer carries `requestId`. Faults can be queued: 500, 429, slow, malformed, reset.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCESS_KEY = "gong-access-key-fake"
ACCESS_SECRET = "gong-secret-fake-value"


@dataclass
class GongState:
    calls: list[dict[str, Any]]
    transcripts: dict[str, list[dict[str, Any]]]
    page_size: int = 100
    rate_per_second: float = 1000.0
    retry_after: str = "1"
    faults: list[str] = field(default_factory=list)
    slow_seconds: float = 2.0
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    throttled: int = 0
    arrivals: list[float] = field(default_factory=list)  # when each request was counted (time.monotonic)
    _stamps: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def over_limit(self) -> bool:
        """A sliding one-second window, as a company-wide per-second limit behaves."""
        now = time.monotonic()
        with self._lock:
            self.arrivals.append(now)
            self._stamps = [t for t in self._stamps if now - t < 1.0]
            if len(self._stamps) >= self.rate_per_second:
                self.throttled += 1
                return True
            self._stamps.append(now)
            return False

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None


class Truncated(Response):
    """Promises a body and drops the connection halfway, as a reset mid-answer looks to the client."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"requestId": "', "more_body": False})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"requestId": uuid.uuid4().hex[:19], "errors": [message]}, status, headers=headers)


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def gong_app(state: GongState) -> Starlette:
    expected = "Basic " + base64.b64encode(f"{ACCESS_KEY}:{ACCESS_SECRET}".encode()).decode()

    async def guard(request: Request) -> Response | dict[str, Any]:
        if request.headers.get("authorization") != expected:
            return _error(401, "Authentication failed: invalid access key or secret")
        fault = state.next_fault()
        if fault == "500":
            return _error(500, "Internal server error")
        if fault == "429" or state.over_limit():
            return _error(429, "Too many requests", {"Retry-After": state.retry_after})
        if fault == "slow":
            await anyio.sleep(state.slow_seconds)
        if fault == "malformed":
            return Response('{"requestId": "x", "calls": [', 200, media_type="application/json")
        if fault == "reset":
            return Truncated()
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Malformed JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("filter", {}), dict):
            return _error(400, "filter must be an object")
        state.requests.append((request.url.path, body))
        return body

    def select(body: dict[str, Any]) -> list[dict[str, Any]]:
        flt = body.get("filter") or {}
        since, until, ids = _when(flt.get("fromDateTime")), _when(flt.get("toDateTime")), flt.get("callIds")
        chosen = []
        for call in state.calls:
            meta = call["metaData"]
            started = _when(meta["started"])
            assert started is not None
            if ids is not None and meta["id"] not in ids:
                continue
            if (since and started < since) or (until and started >= until):
                continue
            chosen.append(call)
        return chosen

    def page(items: list[Any], body: dict[str, Any], key: str) -> Response:
        try:
            start = int(body.get("cursor") or 0)
        except ValueError:
            return _error(400, "Invalid cursor")
        if not items:
            return _error(404, "No calls found corresponding to the provided filters")
        chunk = items[start : start + state.page_size]
        records: dict[str, Any] = {
            "totalRecords": len(items),
            "currentPageSize": len(chunk),
            "currentPageNumber": start // state.page_size,
        }
        if start + state.page_size < len(items):
            records["cursor"] = str(start + state.page_size)
        return JSONResponse({"requestId": uuid.uuid4().hex[:19], "records": records, key: chunk})

    async def extensive(request: Request) -> Response:
        body = await guard(request)
        if isinstance(body, Response):
            return body
        return page(select(body), body, "calls")

    async def transcript(request: Request) -> Response:
        body = await guard(request)
        if isinstance(body, Response):
            return body
        items = [
            {"callId": c["metaData"]["id"], "transcript": state.transcripts.get(c["metaData"]["id"], [])}
            for c in select(body)
        ]
        return page(items, body, "callTranscripts")

    return Starlette(
        routes=[
            Route("/v2/calls/extensive", extensive, methods=["POST"]),
            Route("/v2/calls/transcript", transcript, methods=["POST"]),
        ]
    )


def state_from_demo(calls_extensive: dict[str, Any], transcripts: dict[str, Any], **kwargs: Any) -> GongState:
    by_id = {t["callId"]: t["transcript"] for t in transcripts["callTranscripts"]}
    return GongState(calls=json.loads(json.dumps(calls_extensive["calls"])), transcripts=by_id, **kwargs)
