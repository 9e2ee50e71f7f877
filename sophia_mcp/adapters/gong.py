"""The `CallSource` port on Gong API v2 (`/v2/calls/extensive`, `/v2/calls/transcript`).

Basic auth with the access key and secret, the base URL from settings, 3 requests per second by default (Gong's
company-wide limit), cursor pagination followed to the end. Gong answers 404 when a filter matches nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from sophia_mcp.adapters.gong_payloads import parse_call, parse_transcript
from sophia_mcp.adapters.http import ServiceClient
from sophia_mcp.domain.calls import Call, CallFilter, CallPage, Transcript
from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.errors import ConfigurationError, InvalidInput, NotFound
from sophia_mcp.settings import GongSettings

CONTENT_SELECTOR = {
    "context": "Extended",
    "exposedFields": {
        "parties": True,
        "content": {"topics": True, "trackers": True, "brief": True, "pointsOfInterest": True},
        "interaction": {"speakers": True, "questions": True, "personInteractionStats": True},
    },
}


def gong_client(settings: GongSettings, transport: httpx.AsyncBaseTransport | None = None) -> ServiceClient:
    if settings.access_key is None or settings.access_key_secret is None:
        raise ConfigurationError(
            "The gong backend needs SOPHIA_GONG__ACCESS_KEY and SOPHIA_GONG__ACCESS_KEY_SECRET "
            "(Gong: Company settings > Ecosystem > API)."
        )
    key, secret = settings.access_key.get_secret_value(), settings.access_key_secret.get_secret_value()
    return ServiceClient(
        "Gong", settings, auth=httpx.BasicAuth(key, secret), secrets=[key, secret], transport=transport
    )


class GongCalls:
    name = "gong"

    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def aclose(self) -> None:
        await self.http.aclose()

    async def check(self) -> str:
        """One small authenticated request, for `doctor`."""
        now = utcnow()
        await self._post("/v2/calls/extensive", {"filter": self.call_filter(now - timedelta(minutes=1), now)})
        return f"Gong at {self.http.settings.base_url} accepted the credentials"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """One page; None when Gong says the filter matched nothing (its 404)."""
        response, payload = await self.http.request("POST", path, json=body, ok={404})
        if response.status_code == 404:
            return None
        if not isinstance(payload, dict):
            raise InvalidInput(f"Gong answered {path} with something other than a JSON object")
        return payload

    async def pages(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every page of a paged POST, following `records.cursor` until it is absent."""
        cursor: str | None = None
        while True:
            page = await self._post(path, {**body, **({"cursor": cursor} if cursor else {})})
            if page is None:
                return
            yield page
            cursor = (page.get("records") or {}).get("cursor")
            if not cursor:
                return

    @staticmethod
    def call_filter(
        since: datetime | None = None, until: datetime | None = None, call_ids: Sequence[str] = ()
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if since:
            out["fromDateTime"] = iso(since)
        if until:
            out["toDateTime"] = iso(until)
        if call_ids:
            out["callIds"] = list(call_ids)
        return out

    async def list_calls(self, filter: CallFilter, limit: int, cursor: str | None) -> CallPage:
        if filter.competitor:
            raise InvalidInput(
                "Gong cannot filter calls by competitor; run `sophia-mcp calls sync` and use the local backend "
                "(SOPHIA_GONG__BACKEND=local) to filter synced calls by competitor"
            )
        if filter.unlinked:
            raise InvalidInput(
                "Gong does not know which calls the store could not link to a client; run `sophia-mcp calls sync` "
                "and use the local backend (SOPHIA_GONG__BACKEND=local) to list unlinked calls"
            )
        gong_cursor, offset = decode_cursor(cursor, "calls", (str, type(None)), int) if cursor else (None, 0)
        body: dict[str, Any] = {
            "filter": self.call_filter(filter.started_from, filter.started_to),
            "contentSelector": CONTENT_SELECTOR,
        }
        if gong_cursor:
            body["cursor"] = gong_cursor
        page = await self._post("/v2/calls/extensive", body)
        if page is None:
            return CallPage(calls=[])
        # Gong's own order, page after page: sorting one page would not order the whole list.
        calls = [self._to_call(raw) for raw in page.get("calls") or []]
        if filter.client:
            wanted = filter.client.casefold()
            # Gong has no client filter; this narrows the page, so a page may hold fewer than `limit` calls.
            calls = [c for c in calls if c.client_id == filter.client or wanted in (c.client_name or "").casefold()]
        chosen = calls[offset : offset + limit]
        if offset + limit < len(calls):
            return CallPage(calls=chosen, next_cursor=encode_cursor("calls", gong_cursor, offset + limit))
        following = (page.get("records") or {}).get("cursor")
        return CallPage(calls=chosen, next_cursor=encode_cursor("calls", str(following), 0) if following else None)

    @staticmethod
    def _to_call(raw: dict[str, Any]) -> Call:
        parsed = parse_call(raw)
        return parsed.call.model_copy(update={"client_id": parsed.account.id, "client_name": parsed.account.name})

    async def get_call(self, call_id: str) -> Call:
        page = await self._post(
            "/v2/calls/extensive", {"filter": self.call_filter(call_ids=[call_id]), "contentSelector": CONTENT_SELECTOR}
        )
        for raw in (page or {}).get("calls") or []:
            if str(raw.get("metaData", {}).get("id")) == call_id:
                return self._to_call(raw)
        raise NotFound(f"No call with id {call_id!r} in Gong. Use list_calls to find call ids.")

    async def get_transcript(self, call_id: str) -> Transcript:
        page = await self._post("/v2/calls/transcript", {"filter": self.call_filter(call_ids=[call_id])})
        for raw in (page or {}).get("callTranscripts") or []:
            if str(raw.get("callId")) == call_id:
                return parse_transcript(raw)
        await self.get_call(call_id)  # an unknown call is NotFound; a known one just has no transcript yet
        return Transcript(call_id=call_id, monologues=[])

    async def calls_started_since(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Every call that started at or after `since`, as `/v2/calls/extensive` gives it (with the content an
        analysis reads), a page at a time in Gong's order; nothing when no call did (Gong's 404)."""
        body = {"filter": self.call_filter(since), "contentSelector": CONTENT_SELECTOR}
        async for page in self.pages("/v2/calls/extensive", body):
            yield list(page.get("calls") or [])
