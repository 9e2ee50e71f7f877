"""Client companies and their contacts, as the CRM knows them; the `CRM` port that reads and writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

Seniority = Literal["executive", "vp", "director", "manager", "staff"]


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
