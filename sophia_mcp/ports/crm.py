"""Client companies and their contacts, as the CRM knows them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Client(BaseModel):
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


class Contact(BaseModel):
    id: str
    client_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    title: str | None = None
    phone: str | None = None
