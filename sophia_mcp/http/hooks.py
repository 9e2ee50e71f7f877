"""Webhook receivers: `POST /hooks/slack`, `/hooks/hubspot`, `/hooks/linear`, `/hooks/gong`, `/hooks/github` and
`/hooks/vercel`.

Each request is checked against its provider's signature over the raw body bytes, before anything parses them
(../shared/apis/webhooks.md): Slack's v0 HMAC and HubSpot's v3 HMAC with a five-minute timestamp window, Linear's
HMAC of the body with its `webhookTimestamp` within a minute, Gong's RS256 JWT (expiry, URL, body hash), GitHub's
HMAC-SHA256 and Vercel's HMAC-SHA1 of the body (neither signs a time: a replay is the same delivery id). A refused
request is answered 401 with a short reason and nothing is kept; a provider whose secret is not set is a 404.

A verified request becomes `Incoming` events (only those an action exists for), kept by one `Inbox.record` call,
then the worker is woken, and only then is the provider answered 200: an answered event is never lost, and the
provider's retries (Slack's `X-Slack-Retry-Num`, HubSpot's `attemptNumber`) are only counted as more deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import jwt
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, Router

from sophia_mcp.app.services import Services
from sophia_mcp.domain.inbox import Incoming
from sophia_mcp.errors import SophiaError
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.events import InboxWorker

log = logging.getLogger(__name__)

PROVIDERS = ("slack", "hubspot", "linear", "gong", "github", "vercel")
# Each provider's secret, as the setting that holds it is named.
SETTING = {
    "slack": "SOPHIA_SLACK__SIGNING_SECRET",
    "hubspot": "SOPHIA_HUBSPOT__WEBHOOK_SECRET",
    "linear": "SOPHIA_LINEAR__WEBHOOK_SECRET",
    "gong": "SOPHIA_GONG__WEBHOOK_PUBLIC_KEY",
    "github": "SOPHIA_GITHUB__WEBHOOK_SECRET",
    "vercel": "SOPHIA_VERCEL__WEBHOOK_SECRET",
}
# How far a signed timestamp may be from now: Slack and HubSpot say five minutes, Linear one.
WINDOW_S = 300.0
LINEAR_WINDOW_S = 60.0
HUBSPOT_KINDS = ("contact.creation", "contact.propertyChange")
# The characters HubSpot decodes in the URI before it signs it (its v3 signature documentation).
HUBSPOT_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(", "%29": ")",
    "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
# How long a stopping server waits for the event under way before leaving it to its lease.
STOP_GRACE_S = 5.0


class Refused(Exception):
    """The request is not what its provider signed (or not signed at all); the text says why, briefly."""


class Malformed(Exception):
    """The request is signed but not the JSON its provider sends."""


def _secret(value: SecretStr | None) -> bytes | None:
    return value.get_secret_value().encode() if value is not None and value.get_secret_value() else None


def configured(settings: Settings) -> dict[str, bool]:
    """Which providers' receivers have their secret set."""
    gong_key = settings.gong.webhook_public_key
    return {
        "slack": _secret(settings.slack.signing_secret) is not None,
        "hubspot": _secret(settings.hubspot.webhook_secret) is not None,
        "linear": _secret(settings.linear.webhook_secret) is not None,
        "gong": bool(gong_key and gong_key.strip()),
        "github": _secret(settings.github.webhook_secret) is not None,
        "vercel": _secret(settings.vercel.webhook_secret) is not None,
    }


def _timestamp(value: str | None, header: str, scale: float, window_s: float, now: float) -> None:
    if not value:
        raise Refused(f"missing {header}")
    try:
        sent = float(value) / scale
    except ValueError:
        raise Refused(f"{header} is not a number") from None
    if abs(now - sent) > window_s:
        raise Refused(f"{header} is more than {window_s:g} s from now (a replay?)")


def verify_slack(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Slack's v0 signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, the timestamp within 5 minutes."""
    stamp = headers.get("x-slack-request-timestamp")
    _timestamp(stamp, "X-Slack-Request-Timestamp", 1, WINDOW_S, now)
    given = headers.get("x-slack-signature", "")
    expected = "v0=" + hmac.new(secret, b"v0:" + str(stamp).encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused("bad X-Slack-Signature")


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: with some percent-encoded characters decoded first."""
    for encoded, char in HUBSPOT_DECODED.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def verify_hubspot(secret: bytes, method: str, uri: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method + URI + body + timestamp (ms), within 5 minutes."""
    stamp = headers.get("x-hubspot-request-timestamp")
    _timestamp(stamp, "X-HubSpot-Request-Timestamp", 1000, WINDOW_S, now)
    message = method.encode() + hubspot_uri(uri).encode() + body + str(stamp).encode()
    expected = base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest())
    if not hmac.compare_digest(headers.get("x-hubspot-signature-v3", "").encode(), expected):
        raise Refused("bad X-HubSpot-Signature-v3")


def verify_linear(secret: bytes, headers: Mapping[str, str], body: bytes, now: float) -> dict[str, Any]:
    """Linear's signature (hex HMAC-SHA256 of the body), then its `webhookTimestamp` within a minute; the body."""
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(headers.get("linear-signature", "").encode(), expected.encode()):
        raise Refused("bad Linear-Signature")
    parsed = _object(body)
    stamp = parsed.get("webhookTimestamp")
    _timestamp(str(stamp) if stamp is not None else None, "webhookTimestamp", 1000, LINEAR_WINDOW_S, now)
    return parsed


def verify_gong(public_key: str, headers: Mapping[str, str], body: bytes, url: str, now: float) -> None:
    """Gong's signed JWT (the `Authorization` header, RS256, by the rule's public key): not expired, for this
    URL (`webhook_url`), over this body (`body_sha256`, hex)."""
    token = headers.get("authorization", "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Refused("missing Authorization (Gong's signed JWT)")
    try:
        claims = jwt.decode(
            token, public_key, algorithms=["RS256"], options={"require": ["exp", "webhook_url", "body_sha256"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise Refused("the JWT has expired") from None
    except jwt.PyJWTError as exc:
        raise Refused(f"bad JWT: {exc}") from None
    if not hmac.compare_digest(str(claims["body_sha256"]).lower().encode(), hashlib.sha256(body).hexdigest().encode()):
        raise Refused("the body is not the one the JWT signs (body_sha256)")
    if not hmac.compare_digest(str(claims["webhook_url"]).encode(), url.encode()):
        raise Refused("the JWT was signed for another URL (webhook_url)")


def verify_github(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    """GitHub's signature: `sha256=` + hex HMAC-SHA256 of the body. GitHub signs no timestamp: a replay is the
    same `X-GitHub-Delivery`, which the inbox keeps once and acts on once."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(headers.get("x-hub-signature-256", "").encode(), expected.encode()):
        raise Refused("bad X-Hub-Signature-256")


def verify_vercel(secret: bytes, headers: Mapping[str, str], body: bytes) -> None:
    """Vercel's signature: hex HMAC-SHA1 of the body. A replay is the same event `id`, kept and acted on once."""
    expected = hmac.new(secret, body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(headers.get("x-vercel-signature", "").encode(), expected.encode()):
        raise Refused("bad x-vercel-signature")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the body is not JSON") from None


def _object(body: bytes) -> dict[str, Any]:
    parsed = _json(body)
    if not isinstance(parsed, dict):
        raise Malformed("the body is not a JSON object")
    return parsed


def slack_events(envelope: dict[str, Any]) -> list[Incoming]:
    """A Slack `event_callback` carrying a `message` event, as the inbox keeps it (by `{channel}/{ts}`)."""
    event = envelope.get("event")
    if envelope.get("type") != "event_callback" or not isinstance(event, dict) or event.get("type") != "message":
        return []
    channel, ts = event.get("channel"), event.get("ts")
    if not isinstance(channel, str) or not isinstance(ts, str):
        return []
    payload = {**event, "event_id": envelope.get("event_id"), "team_id": envelope.get("team_id")}
    return [Incoming("slack", f"{channel}/{ts}", "slack.message", payload)]


def hubspot_events(events: Any) -> list[Incoming]:
    """A HubSpot delivery (an array of up to 100 events): its contact creations and property changes."""
    if not isinstance(events, list):
        raise Malformed("the body is not a JSON array of events")
    kept = []
    for event in events:
        if isinstance(event, dict) and event.get("subscriptionType") in HUBSPOT_KINDS and "eventId" in event:
            kept.append(Incoming("hubspot", str(event["eventId"]), "hubspot.contact", event))
    return kept


def linear_events(body: dict[str, Any], delivery: str | None) -> list[Incoming]:
    """A Linear webhook about an issue, by its `Linear-Delivery` (else the issue and when it changed)."""
    data = body.get("data")
    if body.get("type") != "Issue" or not isinstance(data, dict):
        return []
    event_id = delivery or f"{data.get('id')}:{data.get('updatedAt')}"
    return [Incoming("linear", event_id, "linear.issue", body)]


def gong_events(body: dict[str, Any]) -> list[Incoming]:
    """A call an automation rule sent (`callData`, in the /v2/calls/extensive shape), unless a test delivery."""
    call = body.get("callData", body)
    if body.get("isTest") or not isinstance(call, dict):
        return []
    meta = call.get("metaData")
    if not isinstance(meta, dict) or meta.get("id") is None:
        raise Malformed("the call has no metaData.id")
    return [Incoming("gong", f"call:{meta['id']}", "gong.call", call)]


def github_events(event: str, delivery: str | None, body: dict[str, Any]) -> list[Incoming]:
    """A `pull_request` delivery, by its `X-GitHub-Delivery`; other events are not kept."""
    if event != "pull_request":
        return []
    if not delivery:
        raise Malformed("missing X-GitHub-Delivery")
    if not isinstance(body.get("pull_request"), dict):
        raise Malformed("a pull_request event without its pull_request")
    return [Incoming("github", delivery, "github.pull_request", body)]


def vercel_events(body: dict[str, Any]) -> list[Incoming]:
    """A `deployment.*` event, by its `id`; other events are not kept."""
    if not str(body.get("type") or "").startswith("deployment."):
        return []
    if not body.get("id"):
        raise Malformed("the event has no id")
    return [Incoming("vercel", str(body["id"]), "vercel.deployment", body)]


class Receivers:
    """The four receivers over one inbox, and the worker that processes what they keep while they serve.

    `services` gives the services to keep events with (the composite server's own, or the hooks command's);
    `public_url` is the base URL providers reach us by, which HubSpot and Gong sign (else the request's own)."""

    def __init__(
        self,
        settings: Settings,
        services: Callable[[], Services],
        security: TransportSecuritySettings,
        public_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.checks = TransportSecurityMiddleware(security)
        self.public_url = public_url.rstrip("/") if public_url else None
        self.worker: InboxWorker | None = None
        self.clock: Callable[[], float] = time.time

    def router(self) -> Router:
        """The routes, as one ASGI app."""
        return Router(routes=self.routes())

    def routes(self) -> list[Route]:
        handlers: dict[str, Callable[[Request, bytes], Awaitable[Response | list[Incoming]]]] = {
            "slack": self._slack, "hubspot": self._hubspot, "linear": self._linear, "gong": self._gong,
            "github": self._github, "vercel": self._vercel,
        }  # fmt: skip
        return [
            Route(f"/hooks/{name}", self._endpoint(name, handler), methods=["POST"])
            for name, handler in handlers.items()
        ]

    def _endpoint(
        self, name: str, handler: Callable[[Request, bytes], Awaitable[Response | list[Incoming]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            refused = await self.checks.validate_request(request)
            if refused is not None:
                return refused
            if not configured(self.settings)[name]:
                return PlainTextResponse(f"not configured: set {SETTING[name]} to receive {name} webhooks", 404)
            body = await request.body()
            try:
                outcome = await handler(request, body)
            except Refused as why:
                log.warning("refused a %s webhook from %s: %s", name, request.client and request.client.host, why)
                return PlainTextResponse(f"refused: {why}", 401)
            except Malformed as why:
                return PlainTextResponse(f"bad request: {why}", 400)
            if isinstance(outcome, Response):
                return outcome
            return await self._keep(name, outcome)

        return receive

    async def _keep(self, name: str, events: list[Incoming]) -> Response:
        """Keep the events, wake the worker, and only then answer: the provider retries whatever is not answered."""
        if not events:
            return JSONResponse({"ok": True, "kept": 0})
        try:
            fresh = await self.services().inbox.record(events)
        except SophiaError as exc:
            log.warning("could not keep a %s webhook's %d events: %s", name, len(events), exc)
            return PlainTextResponse("could not keep the events now; retry later", 503)
        if self.worker is not None:
            self.worker.wake()
        return JSONResponse({"ok": True, "kept": len(events), "new": sum(fresh)})

    def url(self, request: Request) -> str:
        """The URL the provider sent this request to: under `public_url` when set, else the request's own."""
        if self.public_url is None:
            return str(request.url)
        query = request.url.query
        return f"{self.public_url}{request.url.path}" + (f"?{query}" if query else "")

    async def _slack(self, request: Request, body: bytes) -> Response | list[Incoming]:
        secret = _secret(self.settings.slack.signing_secret)
        assert secret is not None
        verify_slack(secret, request.headers, body, self.clock())
        envelope = _object(body)
        if envelope.get("type") == "url_verification":
            return JSONResponse({"challenge": envelope.get("challenge")})
        return slack_events(envelope)

    async def _hubspot(self, request: Request, body: bytes) -> list[Incoming]:
        secret = _secret(self.settings.hubspot.webhook_secret)
        assert secret is not None
        verify_hubspot(secret, request.method, self.url(request), request.headers, body, self.clock())
        return hubspot_events(_json(body))

    async def _linear(self, request: Request, body: bytes) -> list[Incoming]:
        secret = _secret(self.settings.linear.webhook_secret)
        assert secret is not None
        parsed = verify_linear(secret, request.headers, body, self.clock())
        return linear_events(parsed, request.headers.get("linear-delivery"))

    async def _gong(self, request: Request, body: bytes) -> list[Incoming]:
        key = self.settings.gong.webhook_public_key
        assert key is not None
        verify_gong(key.strip(), request.headers, body, self.url(request), self.clock())
        return gong_events(_object(body))

    async def _github(self, request: Request, body: bytes) -> Response | list[Incoming]:
        secret = _secret(self.settings.github.webhook_secret)
        assert secret is not None
        verify_github(secret, request.headers, body)
        parsed = _object(body)
        event = request.headers.get("x-github-event", "")
        if event == "ping":
            return JSONResponse({"ok": True, "pong": parsed.get("zen") or "ping"})
        return github_events(event, request.headers.get("x-github-delivery"), parsed)

    async def _vercel(self, request: Request, body: bytes) -> list[Incoming]:
        secret = _secret(self.settings.vercel.webhook_secret)
        assert secret is not None
        verify_vercel(secret, request.headers, body)
        return vercel_events(_object(body))

    @asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        """While in it, an inbox worker processes what the receivers keep (woken by each), and what other
        processes kept; on the way out it finishes the event under way, or leaves it to its lease."""
        worker = InboxWorker(self.services())
        stop, stopped = anyio.Event(), anyio.Event()

        async def serve() -> None:
            try:
                await worker.serve(stop)
            finally:
                stopped.set()

        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            self.worker = worker
            try:
                yield
            finally:
                self.worker = None
                stop.set()
                with anyio.move_on_after(STOP_GRACE_S):
                    await stopped.wait()
                group.cancel_scope.cancel()
