"""OAuth 2.1 resource server: access tokens are JWTs checked against the authorization server's JWKS.

Signature (keys from `SOPHIA_HTTP__JWKS_URL`, cached by PyJWT's client), issuer, audience and expiry are
checked; scopes come from the `scope` (space-separated) or `scp` claim. A token that fails any check is no token.
The SDK's middleware then answers 401 (or 403 for missing scopes) and publishes protected-resource metadata.
Accepted tokens are remembered until they expire (a bounded number of them): the per-client limits and the SDK's
middleware both ask about every request, and a client's later requests then cost a lookup.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken

log = logging.getLogger(__name__)
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
REMEMBERED = 4096


class JWTVerifier:
    def __init__(self, jwks_url: str, issuer: str, audience: str) -> None:
        self.keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        self.issuer = issuer
        self.audience = audience
        self.accepted: OrderedDict[str, AccessToken] = OrderedDict()

    def _verify(self, token: str) -> AccessToken | None:
        try:
            key = self.keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            log.info("Refused an access token: %s", type(exc).__name__)
            return None
        scopes = (
            claims.get("scope", "").split() if isinstance(claims.get("scope"), str) else list(claims.get("scp") or [])
        )
        return AccessToken(
            token=token, client_id=str(claims.get("client_id") or claims.get("azp") or claims.get("sub") or ""),
            scopes=scopes, expires_at=int(claims["exp"]), resource=self.audience, subject=claims.get("sub"),
            claims={"iss": claims["iss"]},
        )  # fmt: skip

    def _remembered(self, token: str) -> AccessToken | None:
        known = self.accepted.get(token)
        if known is None:
            return None
        if known.expires_at is not None and known.expires_at <= time.time():
            del self.accepted[token]
            return None
        self.accepted.move_to_end(token)
        return known

    async def verify_token(self, token: str) -> AccessToken | None:
        known = self._remembered(token)
        if known is not None:
            return known
        checked = await anyio.to_thread.run_sync(self._verify, token)
        if checked is not None:
            self.accepted[token] = checked
            while len(self.accepted) > REMEMBERED:
                self.accepted.popitem(last=False)
        return checked
