"""Who is calling over HTTP: one token verifier per server, given to the SDK (`token_verifier=`), whichever kind of
token the server takes.

A static token (`SOPHIA_HTTP__BEARER_TOKEN`) is the operator's own: it may call every tool, and identifies no person,
so its clients are told apart by address. An OAuth access token (`SOPHIA_HTTP__JWKS_URL`) carries its scopes and its
subject. The SDK's middleware asks the verifier on every request, answers 401 or 403 before any MCP handling, and
puts the token where the write-scope check (`sophia_mcp.mcp.server.WriteScope`) reads it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from sophia_mcp.settings import Settings

STATIC_CLIENT = "static-token"


class NotSafeToServe(Exception):
    """The settings would expose the server without protection; the message says what to set."""


class Verifier(Protocol):
    async def verify_token(self, token: str) -> AccessToken | None: ...


def subject_finder(verifier: Verifier) -> Callable[[str], Awaitable[str | None]]:
    """Who a bearer token proves its holder to be: an OAuth token's subject; nobody for the static token (shared by
    whoever was given it) or a token the verifier refuses."""

    async def subject(token: str) -> str | None:
        accepted = await verifier.verify_token(token)
        return accepted.subject if accepted is not None else None

    return subject


class StaticToken:
    """The static bearer token, compared in constant time; it carries every scope a tool may ask for."""

    def __init__(self, token: str, scopes: list[str]) -> None:
        self.expected = token.encode()
        self.scopes = scopes

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self.expected):
            return None
        return AccessToken(token=STATIC_CLIENT, client_id=STATIC_CLIENT, scopes=self.scopes)


def auth_options(settings: Settings) -> dict[str, Any]:
    """The MCPServer arguments (`auth`, `token_verifier`) for the configured authentication; none without any."""
    http = settings.http
    if http.jwks_url:
        if not (http.issuer and http.audience):
            raise NotSafeToServe(
                "OAuth needs SOPHIA_HTTP__ISSUER and SOPHIA_HTTP__AUDIENCE beside SOPHIA_HTTP__JWKS_URL"
            )
        auth = AuthSettings(
            issuer_url=http.issuer, resource_server_url=http.audience, required_scopes=http.required_scopes or None,
            validate_token_resource=False,  # the verifier checks the audience itself
        )  # fmt: skip
        # The JWT verifier (PyJWT, cryptography) is a heavy optional client: it loads when OAuth is configured.
        from sophia_mcp.adapters.jwt_verifier import JWTVerifier

        return {"auth": auth, "token_verifier": JWTVerifier(http.jwks_url, http.issuer, http.audience)}
    if http.bearer_token is not None:
        # With no resource URL nothing is published about an authorization server; the SDK still wants its URL.
        auth = AuthSettings(issuer_url="http://localhost", resource_server_url=None)
        scopes = sorted({http.write_scope, *http.required_scopes})
        return {"auth": auth, "token_verifier": StaticToken(http.bearer_token.get_secret_value(), scopes)}
    return {}
