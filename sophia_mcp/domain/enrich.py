"""The `Enricher` port: what a data provider (Apollo, or the store's firmographics) knows about people and firms."""

from __future__ import annotations

from pydantic import Field

from sophia_mcp.domain.crm import Seniority
from sophia_mcp.domain.model import Model


class PersonQuery(Model):
    """Whatever identifies a person; the more given, the better the match."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    domain: str | None = None
    organization_name: str | None = None


class Organization(Model):
    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    employees: int | None = Field(default=None, ge=0)
    units_managed: int | None = Field(default=None, ge=0, description="Rental units managed, when known.")
    annual_revenue: float | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    founded_year: int | None = None
    linkedin_url: str | None = None
    technologies: list[str] = Field(default_factory=list)


class Person(Model):
    """An enricher's answer about one person; a field it does not know stays None (unknown, never guessed)."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    seniority: Seniority | None = None
    linkedin_url: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    email_status: str | None = None
    organization: Organization | None = None
    source: str = Field(description="Who answered: apollo, or local (the store's firmographics).")
