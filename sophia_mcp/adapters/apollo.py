"""The `Enricher` port on Apollo.io API v1: people match, bulk match (10 per request), organization enrich.

`x-api-key` auth; bulk requests paced under Apollo's harder bulk limit (settings `bulk_per_minute`) on top of the
client's overall rate; "no match" is an answer (`person: null`, `organization: {}` or a 404), never an error.
"""

from __future__ import annotations

from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from pydantic import ValidationError

from sophia_mcp.adapters.http import ServiceClient
from sophia_mcp.analysis.lead_score import APOLLO_SENIORITY
from sophia_mcp.domain.enrich import Organization, Person, PersonQuery
from sophia_mcp.errors import ConfigurationError, ServiceUnavailable
from sophia_mcp.settings import ApolloSettings

BULK = 10


def apollo_client(settings: ApolloSettings, transport: httpx.AsyncBaseTransport | None = None) -> ServiceClient:
    if settings.api_key is None:
        raise ConfigurationError(
            "The apollo backend needs SOPHIA_APOLLO__API_KEY (Apollo: Settings > Integrations > API Keys)."
        )
    key = settings.api_key.get_secret_value()
    headers = {"x-api-key": key, "Cache-Control": "no-cache"}
    return ServiceClient("Apollo", settings, headers=headers, secrets=[key], transport=transport)


def _details(query: PersonQuery) -> dict[str, str]:
    fields = query.model_dump(include={"email", "first_name", "last_name", "domain", "organization_name"})
    return {k: v for k, v in fields.items() if v}


def _organization(raw: Any) -> Organization | None:
    if not isinstance(raw, dict) or not raw:
        return None
    domain = raw.get("primary_domain") or None
    try:
        return Organization(
            name=raw.get("name"),
            domain=domain.lower() if domain else None,
            industry=raw.get("industry"),
            employees=raw.get("estimated_num_employees"),
            annual_revenue=raw.get("annual_revenue"),
            city=raw.get("city"),
            state=raw.get("state"),
            country=raw.get("country"),
            founded_year=raw.get("founded_year"),
            linkedin_url=raw.get("linkedin_url"),
            technologies=list(raw.get("technology_names") or []),
        )
    except ValidationError:
        raise ServiceUnavailable("Apollo answered with an organization in a shape this client cannot read") from None


def _person(raw: Any) -> Person | None:
    if not isinstance(raw, dict) or not raw:
        return None
    try:
        return Person(
            email=raw.get("email"),
            first_name=raw.get("first_name"),
            last_name=raw.get("last_name"),
            title=raw.get("title"),
            seniority=APOLLO_SENIORITY.get(str(raw.get("seniority") or "")),
            linkedin_url=raw.get("linkedin_url"),
            city=raw.get("city"),
            state=raw.get("state"),
            country=raw.get("country"),
            email_status=raw.get("email_status"),
            organization=_organization(raw.get("organization")),
            source="apollo",
        )
    except ValidationError:
        raise ServiceUnavailable("Apollo answered with a person in a shape this client cannot read") from None


class ApolloEnricher:
    name = "apollo"
    bulk_size = BULK

    def __init__(self, http: ServiceClient, settings: ApolloSettings) -> None:
        self.http = http
        self._bulk_pace = AsyncLimiter(1, 60 / settings.bulk_per_minute)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def check(self) -> str:
        """One small authenticated request, for `doctor`."""
        await self.http.request("GET", "/organizations/enrich", params={"domain": "apollo.io"}, ok={404})
        return f"Apollo at {self.http.settings.base_url} accepted the key"

    async def match_people(self, queries: list[PersonQuery]) -> list[Person | None]:
        if len(queries) > BULK:
            raise ValueError(f"Apollo matches at most {BULK} people per request")
        if not queries:
            return []
        if len(queries) == 1:
            _, payload = await self.http.request("POST", "/people/match", json=_details(queries[0]))
            return [_person((payload or {}).get("person"))]
        async with self._bulk_pace:
            _, payload = await self.http.request(
                "POST",
                "/people/bulk_match",
                json={"details": [_details(q) for q in queries], "reveal_personal_emails": False},
            )
        matches = list((payload or {}).get("matches") or [])
        if len(matches) != len(queries):
            raise ServiceUnavailable(
                f"Apollo answered {len(matches)} matches for {len(queries)} people; their order cannot be trusted"
            )
        return [_person(m) for m in matches]

    async def organizations(self, domains: list[str]) -> dict[str, Organization]:
        wanted = sorted({d.lower() for d in domains if d})
        found: dict[str, Organization] = {}
        for start in range(0, len(wanted), BULK):
            chunk = wanted[start : start + BULK]
            if len(chunk) == 1:
                response, payload = await self.http.request(
                    "GET", "/organizations/enrich", params={"domain": chunk[0]}, ok={404}
                )
                answers = [(payload or {}).get("organization")] if response.status_code != 404 else []
            else:
                async with self._bulk_pace:
                    _, payload = await self.http.request("POST", "/organizations/bulk_enrich", json={"domains": chunk})
                answers = list((payload or {}).get("organizations") or [])
            for raw in answers:
                org = _organization(raw)
                if org is not None and org.domain in chunk:
                    found[org.domain] = org
        return found
