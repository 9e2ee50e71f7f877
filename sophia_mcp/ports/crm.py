"""Client companies and their contacts, as the CRM knows them; the `CRM` port that reads and writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import Field

from sophia_mcp.analysis.lead_score import Seniority
from sophia_mcp.model import Model


class Client(Model):
    """A customer company (for the demo: property-management firms)."""

    id: str
    name: str
    domain: str | None = None
    industry: str | None = None
    segment: str | None = Field(default=None, description="SMB, Mid-Market or Enterprise.")
    city: str | None = None
    units_managed: int | None = Field(default=None, ge=0)
    arr: float | None = Field(default=None, ge=0, description="Annual recurring revenue, in USD.")
    csm_name: str | None = None
    csm_email: str | None = None


class Contact(Model):
    id: str
    client_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    title: str | None = None
    phone: str | None = None
    company: str | None = Field(default=None, description="The client's name.")
    city: str | None = None
    state: str | None = None
    country: str | None = None
    linkedin_url: str | None = None
    seniority: Seniority | None = None
    lead_score: float | None = Field(default=None, ge=0, le=100)
    lead_grade: Literal["A", "B", "C", "D"] | None = None
    updated_at: datetime | None = None


# What a user may change on a contact; the rest is the CRM's (id, client, company, updated_at) or the lead
# score's (seniority, lead_score, lead_grade), which enrich_contact and score_lead write.
USER_WRITABLE = ("first_name", "last_name", "email", "title", "phone", "city", "state", "country", "linkedin_url")
WORKFLOW_WRITABLE = (*USER_WRITABLE, "seniority", "lead_score", "lead_grade")

FieldValue = str | float | None
ContactChanges = dict[str, FieldValue]


class ContactQuery(Model):
    text: str | None = Field(default=None, description="Words in the name, email, title or company.")
    client_id: str | None = None
    email: str | None = None
    updated_since: datetime | None = None


class ContactPage(Model):
    contacts: list[Contact]
    next_cursor: str | None = None
    total: int | None = None


class ClientPage(Model):
    clients: list[Client]
    next_cursor: str | None = None


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
