"""A fake OAuth authorization server for the resource-server tests: a signing key, its JWKS served on 127.0.0.1,
and access tokens signed with it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import serve

ISSUER = "https://auth.example.com"


def signing_key() -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(private.public_key())) | {"kid": "k1", "use": "sig", "alg": "RS256"}
    return private, {"keys": [public]}


class Issuer:
    def __init__(self, jwks_url: str, private: Any) -> None:
        self.jwks_url = jwks_url
        self.private = private

    def token(self, audience: str, scope: str = "sophia:read", key: Any = None, **claims: Any) -> str:
        body = {"iss": ISSUER, "sub": "u1", "client_id": "c1", "aud": audience, "exp": int(time.time()) + 300}
        return jwt.encode(
            body | {"scope": scope} | claims, key or self.private, algorithm="RS256", headers={"kid": "k1"}
        )

    def env(self, audience: str, required_scopes: str = "sophia:read") -> dict[str, str]:
        """The server settings that make it a resource server of this issuer."""
        return {"SOPHIA_HTTP__JWKS_URL": self.jwks_url, "SOPHIA_HTTP__ISSUER": ISSUER,
                "SOPHIA_HTTP__AUDIENCE": audience, "SOPHIA_HTTP__REQUIRED_SCOPES": required_scopes}  # fmt: skip


@contextmanager
def issuer() -> Iterator[Issuer]:
    private, jwks = signing_key()

    async def keys(_: Request) -> JSONResponse:
        return JSONResponse(jwks)

    with serve(Starlette(routes=[Route("/jwks.json", keys)])) as base:
        yield Issuer(f"{base}/jwks.json", private)
