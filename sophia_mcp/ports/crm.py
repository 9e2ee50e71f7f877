"""Client companies and their contacts, as the CRM knows them; the `CRM` port that reads and writes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sophia_mcp.domain.crm import (
    Client,
    ClientPage,
    Contact,
    ContactChanges,
    ContactPage,
    ContactQuery,
)


class CRM(Protocol):
    """Contacts and client companies: HubSpot, or the store's own copies."""

    name: str
    # Most contacts one `update_contacts` request may carry (HubSpot's batch limit).
    batch_size: int

    async def get_contact(self, contact_id: str) -> Contact:
        """The contact, or NotFound."""
        ...

    async def get_contacts(self, contact_ids: list[str]) -> dict[str, Contact]:
        """The contacts that exist among `contact_ids`, by id."""
        ...

    async def search_contacts(self, query: ContactQuery, limit: int, cursor: str | None) -> ContactPage: ...

    async def update_contact(self, contact_id: str, changes: ContactChanges) -> Contact:
        """Write the changed fields of one contact; NotFound, or InvalidInput naming a field it refuses."""
        ...

    async def update_contacts(self, changes: dict[str, ContactChanges]) -> dict[str, str | None]:
        """Write up to `batch_size` contacts at once; per contact id, None when written or why it was not."""
        ...

    async def get_client(self, client_id: str) -> Client | None: ...

    async def get_clients(self, client_ids: list[str]) -> dict[str, Client]:
        """The clients that exist among `client_ids`, by id."""
        ...

    async def list_clients(self, text: str | None, limit: int, cursor: str | None) -> ClientPage: ...


@runtime_checkable
class ContactFeed(Protocol):
    """A CRM that can list the contacts modified since a time (HubSpot's search on `lastmodifieddate`): what the
    hubspot-contacts connector polls."""

    def contacts_modified_since(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of contacts (`id`, `properties`) modified at or after `since`, earliest change first."""
        ...
