"""Serving over HTTP (Streamable HTTP or SSE): Host and Origin checks on by default, and a bearer token
required whenever the server listens beyond loopback.

The checks are the SDK's DNS-rebinding protection, with the loopback names always allowed and more from
`SOPHIA_HTTP__ALLOWED_HOSTS` / `ALLOWED_ORIGINS`. The token (`SOPHIA_HTTP__BEARER_TOKEN`) is compared in
constant time; a request without it, or with another, is answered 401 before any MCP handling.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from typing import Any

from sophia_mcp.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class NotSafeToServe(Exception):
    """The settings would expose the server without protection; the message says what to set."""


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthorized", "error_description": "a valid bearer token is required"}).encode()
        await send({
            "type": "http.response.start", "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="sophia-mcp"'),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class RateLimit:
    """ASGI middleware: each client (by its Authorization header, else its address) gets a token bucket of
    `per_minute` requests a minute with a burst of a tenth of that; beyond it, 429 with Retry-After."""

    def __init__(self, app: Any, per_minute: float) -> None:
        self.app = app
        self.rate = per_minute / 60
        self.burst = max(5.0, per_minute / 10)
        self.buckets: dict[bytes, tuple[float, float]] = {}

    def _take(self, key: bytes) -> float:
        """0 when the request may go; else the seconds until it could."""
        now = time.monotonic()
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key = headers.get(b"authorization") or str((scope.get("client") or ("?",))[0]).encode()
        if len(self.buckets) > 10_000:  # forget idle clients rather than grow without bound
            self.buckets.clear()
        wait = self._take(key)
        if not wait:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "rate_limited", "error_description": "too many requests; wait and retry"}).encode()
        await send({
            "type": "http.response.start", "status": 429,
            "headers": [(b"content-type", b"application/json"), (b"retry-after", str(math.ceil(wait)).encode()),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def transport_security(settings: Settings, host: str) -> Any:
    from mcp.server.transport_security import TransportSecuritySettings

    http = settings.http
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *http.allowed_hosts]
    if host not in LOOPBACK and host not in ("0.0.0.0", "::"):  # noqa: S104 (a check, not a bind)
        hosts.append(f"{host}:*")
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *http.allowed_origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def oauth_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """The MCPServer arguments that make it an OAuth 2.1 resource server, when a JWKS is configured."""
    http = settings.http
    if not http.jwks_url:
        return {}
    if not (http.issuer and http.audience):
        raise NotSafeToServe("OAuth needs SOPHIA_HTTP__ISSUER and SOPHIA_HTTP__AUDIENCE beside SOPHIA_HTTP__JWKS_URL")
    from mcp.server.auth.settings import AuthSettings

    from sophia_mcp.adapters.jwt_verifier import JWTVerifier

    auth = AuthSettings(
        issuer_url=http.issuer, resource_server_url=http.audience, required_scopes=http.required_scopes or None,
        validate_token_resource=False,  # the verifier checks the audience itself
    )  # fmt: skip
    return {"auth": auth, "token_verifier": JWTVerifier(http.jwks_url, http.issuer, http.audience)}


def check_safe(settings: Settings, host: str) -> None:
    if host in LOOPBACK:
        return
    if settings.http.bearer_token is None and not settings.http.jwks_url:
        raise NotSafeToServe(
            f"Refusing to listen on {host} without authentication: set SOPHIA_HTTP__BEARER_TOKEN (clients send it as "
            "'Authorization: Bearer <token>'), or listen on 127.0.0.1"
        )
    if host in ("0.0.0.0", "::") and not settings.http.allowed_hosts:  # noqa: S104
        raise NotSafeToServe(
            f"Listening on {host} needs SOPHIA_HTTP__ALLOWED_HOSTS: the host names clients reach this server by "
            '(JSON list, e.g. ["mcp.example.com:*"]), which the Host check lets through'
        )


def http_app(server: Any, settings: Settings, transport: str, host: str) -> Any:
    """The server's ASGI app for `transport` ("http" or "sse"), with the checks and, when set, the token."""
    http = settings.http
    security = transport_security(settings, host)
    limit = int(http.max_body_mb * 1024 * 1024)
    if transport == "sse":
        app = server.sse_app(transport_security=security, host=host, max_request_body_size=limit)
    else:
        app = server.streamable_http_app(
            transport_security=security, host=host, stateless_http=http.stateless, max_request_body_size=limit
        )
    token = http.bearer_token
    if token is not None and not http.jwks_url:  # OAuth, when configured, is the SDK's own middleware
        app = BearerAuth(app, token.get_secret_value())
    return RateLimit(app, http.rate_per_minute) if http.rate_per_minute > 0 else app


def serve_http(server: Any, settings: Settings, transport: str, host: str, port: int) -> None:
    import uvicorn

    check_safe(settings, host)
    app = http_app(server, settings, transport, host)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), lifespan="on")
