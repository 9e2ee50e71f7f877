"""The `Enricher` port: what a data provider (Apollo, or the store's firmographics) knows about people and firms."""

from __future__ import annotations

from typing import Protocol

from sophia_mcp.domain.enrich import Organization, Person, PersonQuery


class Enricher(Protocol):
    name: str
    # Most people one `match_people` request may carry (Apollo's bulk match takes 10).
    bulk_size: int

    async def match_people(self, queries: list[PersonQuery]) -> list[Person | None]:
        """One answer per query, in order; None where nothing matched. At most `bulk_size` queries."""
        ...

    async def organizations(self, domains: list[str]) -> dict[str, Organization]:
        """What is known about each domain (lower case); a domain it knows nothing of is absent."""
        ...
